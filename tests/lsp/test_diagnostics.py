"""Diagnostics over LSP: the same as `klingspec check`, at the right UTF-16 positions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from lsprotocol import types as lsp

from tests.lsp.conftest import change_document, close_document, diagnostics, open_document, position, units

pytestmark = pytest.mark.asyncio(loop_scope="module")

BROKEN = """\
image cafe = "https://a.example.com/x.jpg"
image cafe = "https://a.example.com/y.jpg"
shot a 2.5s "@cafee at dawn"
end "https://a.example.com/e.jpg"
"""


def check_json(path: Path) -> list[dict]:
    out = subprocess.run(
        [sys.executable, "-m", "klingspec", "check", "--format", "json", str(path)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return json.loads(out)["diagnostics"]


async def test_clean_example_has_no_diagnostics(client, workspace):
    assert await open_document(client, workspace / "teaser.kvs") == []


async def test_same_codes_messages_and_spans_as_check(client, workspace):
    path = workspace / "broken.kvs"
    path.write_text(BROKEN, encoding="utf-8")
    published = await open_document(client, path)
    expected = check_json(path)
    assert [
        (
            d.code,
            d.message.split("\n= help: ")[0],
            d.range.start.line + 1,
            d.range.start.character + 1,
            d.range.end.line + 1,
            d.range.end.character + 1,
        )
        for d in published
    ] == [(e["code"], e["message"], e["line"], e["column"], e["end_line"], e["end_column"]) for e in expected]
    # the help line: related information where the client shows it, else after the message
    supports_related = client.capabilities.text_document.publish_diagnostics.related_information
    for d, e in zip(published, expected, strict=False):
        helps = [r.message for r in d.related_information or ()] if supports_related else [d.message]
        assert any(f"help: {e['help']}" in h for h in helps)
    for d in published:
        assert d.source == "klingspec"
        assert d.severity == lsp.DiagnosticSeverity.Error
        assert d.code_description.href.endswith(f"docs/codes/{d.code}.md")
    duplicate = published[0]
    related = {r.message: r.location for r in duplicate.related_information}
    assert related["first bound here"].range.start == lsp.Position(0, 6)
    assert related["first bound here"].uri == path.as_uri()


async def test_warnings_are_warnings(client, workspace):
    path = workspace / "unused.kvs"
    text = 'image cafe = "https://a.example.com/x.jpg"\nshot a 5s "dawn"\n'
    published = await open_document(client, path, text)
    assert [(d.code, d.severity) for d in published] == [("KVS-binding-unused", lsp.DiagnosticSeverity.Warning)]


async def test_upstream_multi_shot_rules_are_warnings_where_check_puts_them(client, workspace):
    """Kling's own limits (6 shots, no frames with several shots) reach the editor as warnings,
    at the spans `klingspec check` gives, with their docs pages."""
    path = workspace / "upstream.kvs"
    shots = "".join(f'shot s{i} 2s "scene {i}"\n' for i in range(1, 8))
    path.write_text('start "https://a.example.com/s.jpg"\n' + shots, encoding="utf-8")
    published = await open_document(client, path)
    expected = check_json(path)
    assert [e["code"] for e in expected] == ["KVS-frames-with-multishot", "KVS-shots-beyond-kling"]
    assert [(d.code, d.severity, d.range.start.line + 1, d.range.start.character + 1) for d in published] == [
        (e["code"], lsp.DiagnosticSeverity.Warning, e["line"], e["column"]) for e in expected
    ]
    assert published[1].range.start == lsp.Position(7, 0)  # the 7th shot
    for d in published:
        assert d.code_description.href.endswith(f"docs/codes/{d.code}.md")


async def test_every_change_is_checked_against_the_buffer(client, workspace):
    path = workspace / "edited.kvs"
    path.write_text('shot a 5s "dawn"\n', encoding="utf-8")
    uri = path.as_uri()
    assert await open_document(client, path) == []
    # incremental edit: 5s -> 25s (the disk still says 5s)
    got = await change_document(client, uri, 2, "2", lsp.Range(lsp.Position(0, 7), lsp.Position(0, 7)))
    assert [d.code for d in got] == ["KVS-shot-duration"]
    assert got[0].range == lsp.Range(lsp.Position(0, 7), lsp.Position(0, 10))
    got = await change_document(client, uri, 3, 'shot a 5s "dawn"\n')
    assert got == []
    close_document(client, path)
    assert await diagnostics(client, uri) == []


async def test_a_burst_of_changes_ends_with_the_last_text(client, workspace):
    path = workspace / "burst.kvs"
    uri = path.as_uri()
    await open_document(client, path, 'shot a 5s "dawn"\n')
    for version in range(2, 12):
        client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                lsp.VersionedTextDocumentIdentifier(version, uri),
                [lsp.TextDocumentContentChangeWholeDocument(f'shot a {version + 10}s "dawn"\n')],
            )
        )
    client.diagnostics.pop(uri, None)
    # the last text (21 s) is always checked: a 21 s shot is out of range
    for _ in range(100):
        got = await diagnostics(client, uri)
        if got and "21" in got[0].message:
            break
        client.diagnostics.pop(uri, None)
    assert [d.code for d in got] == ["KVS-shot-duration"] and "21" in got[0].message


async def test_non_ascii_positions_in_the_negotiated_encoding(client, workspace, request):
    # CJK (1 UTF-16 unit, 3 UTF-8 bytes each) and an emoji (2 units, 4 bytes) before the
    # unbound name, on the same line
    expected = {"visual_studio_code": "utf-16", "neovim": "utf-8", "emacs": "utf-32"}
    assert client.encoding == expected[request.node.callspec.params["client"]]
    line = 'shot 夜景 3s "東京の夜 🌃 @nowhere walks"'
    published = await open_document(client, workspace / "unicode.kvs", line + "\n")
    assert [d.code for d in published] == ["KVS-name-unbound"]
    start = {"utf-16": 20, "utf-8": 34, "utf-32": 19}[client.encoding]
    assert start == units(line[: line.index("@nowhere")], client.encoding)
    assert published[0].range == lsp.Range(lsp.Position(0, start), lsp.Position(0, start + 8))


async def test_positions_after_an_emoji_map_back_to_the_right_offset(client, workspace):
    text = 'image cafe = "https://a.example.com/x.jpg"\nshot s 5s "🌃 東京 @cafe at dawn"\n'
    assert await open_document(client, workspace / "emoji.kvs", text) == []
    at = position(text, "@cafe", 2, client.encoding)
    found = await client.text_document_hover_async(
        lsp.HoverParams(lsp.TextDocumentIdentifier((workspace / "emoji.kvs").as_uri()), at)
    )
    assert "`@Image1`" in found.contents.value
    assert found.range == lsp.Range(
        position(text, "@cafe", 0, client.encoding), position(text, "@cafe", 5, client.encoding)
    )


async def test_problems_in_a_used_file_show_on_the_use(client, workspace):
    (workspace / "lib" / "bad.kvs").write_text('image x = "ftp://example.com/path.png"\n', encoding="utf-8")
    path = workspace / "uses_bad.kvs"
    text = 'use "lib/bad.kvs"\nshot a 5s "@x at dawn"\n'
    published = await open_document(client, path, text)
    assert [d.code for d in published] == ["KVS-uri-scheme"]
    d = published[0]
    assert d.range == lsp.Range(lsp.Position(0, 0), lsp.Position(0, 17))
    assert d.message.startswith("lib/bad.kvs:1:11: ")
    assert d.related_information[0].location.uri == (workspace / "lib" / "bad.kvs").as_uri()
    assert d.related_information[0].location.range.start == lsp.Position(0, 10)


async def test_editing_a_used_file_rechecks_its_users(client, workspace):
    lib = workspace / "lib" / "cast.kvs"
    lib.write_text('image hall = "https://a.example.com/hall.jpg"\n', encoding="utf-8")
    scene = workspace / "cast_scene.kvs"
    assert await open_document(client, scene, 'use "lib/cast.kvs"\nshot a 5s "@hall at dawn"\n') == []
    await open_document(client, lib)
    client.diagnostics.pop(scene.as_uri(), None)
    await change_document(client, lib.as_uri(), 2, 'image room = "https://a.example.com/hall.jpg"\n')
    got = await diagnostics(client, scene.as_uri())
    assert [d.code for d in got] == ["KVS-name-unbound"]
