"""Completion over LSP: keywords, @names, template variables and setting values."""

from __future__ import annotations

import sys

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from tests.lsp.conftest import open_document, position

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def complete(client, path, text, needle, delta, encoding):
    """Open `path` with `text` and complete after `needle` (+delta): labels and items."""
    await open_document(client, path, text)
    found = await client.text_document_completion_async(
        lsp.CompletionParams(lsp.TextDocumentIdentifier(path.as_uri()), position(text, needle, delta, encoding))
    )
    items = found.items if isinstance(found, lsp.CompletionList) else found
    return [i.label for i in items], items


async def test_statement_keywords_at_line_start(client, workspace):
    text = "aspect 16:9\nsh\n"
    labels, items = await complete(client, workspace / "kw.kvs", text, "sh\n", 2, client.encoding)
    assert {"shot", "image", "element", "let", "use", "model", "aspect", "start", "end"} <= set(labels)
    shot = next(i for i in items if i.label == "shot")
    assert shot.kind == lsp.CompletionItemKind.Keyword
    assert shot.text_edit.range == lsp.Range(lsp.Position(1, 0), lsp.Position(1, 2))


async def test_element_fields_inside_a_block(client, workspace):
    text = "element hero {\n  \n}\n"
    labels, _ = await complete(client, workspace / "block.kvs", text, "{\n  ", 4, client.encoding)
    assert labels == ["front", "refs"]


async def test_bound_names_and_raw_references_after_at(client, workspace):
    original = (workspace / "teaser.kvs").read_text(encoding="utf-8")
    text = original + 'shot extra 1s "then @'
    labels, items = await complete(client, workspace / "at.kvs", text, "then @", 6, client.encoding)
    assert labels[:3] == ["@cafe", "@palette", "@barista"]
    raw = {i.label: i.detail for i in items if i.label.startswith(("@Image", "@Element"))}
    assert raw == {"@Image1": "image @cafe", "@Image2": "image @palette", "@Element1": "element @barista"}
    cafe = next(i for i in items if i.label == "@cafe")
    assert cafe.detail == "image → @Image1"
    assert cafe.text_edit.new_text == "@cafe"
    assert cafe.text_edit.range.start == position(text, "then @", 5, client.encoding)


async def test_library_names_are_offered_after_at(client, workspace):
    original = (workspace / "library.kvs").read_text(encoding="utf-8")
    text = original + 'shot x 1s "meanwhile @p'
    labels, items = await complete(client, workspace / "lib_at.kvs", text, "meanwhile @p", 12, client.encoding)
    assert {"@ada", "@pip", "@workshop", "@rooftop"} <= set(labels)
    assert next(i for i in items if i.label == "@pip").detail == "element (sent once mentioned)"


async def test_let_and_outside_variables_inside_braces(client, workspace):
    original = (workspace / "storyboard.kvs").read_text(encoding="utf-8")
    text = original + 'shot more 0s "at {{ ci'
    labels, items = await complete(client, workspace / "vars.kvs", text, "{{ ci", 5, client.encoding)
    assert {"city", "hour", "tram", "palette", "look"} <= set(labels)
    city = next(i for i in items if i.label == "city")
    assert city.kind == lsp.CompletionItemKind.Variable and "Lisbon" in city.detail
    assert city.text_edit.range.start == position(text, "{{ ci", 3, client.encoding)


async def test_no_completion_in_plain_prompt_text_or_comments(client, workspace):
    text = 'shot a 5s "a quiet morning"\n# aspect \n'
    labels, _ = await complete(client, workspace / "prose.kvs", text, "quiet ", 6, client.encoding)
    assert labels == []
    labels, _ = await complete(client, workspace / "prose.kvs", text, "# aspect ", 9, client.encoding)
    assert labels == []


@pytest.mark.parametrize(
    "setting, expected",
    [
        ("aspect", ["16:9", "9:16", "1:1"]),
        ("format", ["url", "b64", "b64_json"]),
        ("audio", ["on", "off"]),
    ],
)
async def test_setting_values(client, workspace, setting, expected):
    text = f'{setting} \nshot a 5s "dawn"\n'
    labels, _ = await complete(
        client, workspace / f"set_{setting}.kvs", text, f"{setting} ", len(setting) + 1, client.encoding
    )
    assert labels == expected


async def test_resolution_values_come_from_the_model(client, workspace):
    text = 'model kling-video-o3-omni\nresolution \nshot a 5s "dawn"\n'
    labels, items = await complete(client, workspace / "set_res.kvs", text, "resolution ", 11, client.encoding)
    assert labels == ["720p", "1080p", "4k"]
    assert [i.detail for i in items if i.label == "1080p"] == ["resolution of kling-video-o3-omni (default)"]
    text = 'resolution \nshot a 5s "dawn"\n'  # the reference-to-video model has none
    labels, _ = await complete(client, workspace / "set_res2.kvs", text, "resolution ", 11, client.encoding)
    assert labels == []


async def test_model_ids(client, workspace):
    text = 'model kling-video-o3\nshot a 5s "dawn"\n'
    labels, items = await complete(client, workspace / "set_model.kvs", text, "o3\n", 2, client.encoding)
    assert "kling-video-o3-pro-reference-to-video" in labels and "kling-video-o3-omni" in labels
    assert items[0].text_edit.range.start == lsp.Position(0, 6)
    details = {i.label: i.detail for i in items}
    assert details["kling-video-o3-pro-reference-to-video"].endswith("· $0.224/s · documented")
    assert details["kling-video-o3-omni"].endswith("· price unknown · documented")


async def test_completion_after_non_ascii_text(client, workspace):
    text = 'image cafe = "https://a.example.com/x.jpg"\nshot s 5s "🌃 東京 @c'
    labels, items = await complete(client, workspace / "uni_at.kvs", text, "東京 @c", 5, client.encoding)
    assert "@cafe" in labels
    cafe = next(i for i in items if i.label == "@cafe")
    assert cafe.text_edit.range == lsp.Range(
        position(text, "@c", 0, client.encoding), position(text, "@c", 2, client.encoding)
    )


@pytest_lsp.fixture(
    config=ClientServerConfig([sys.executable, "-m", "klingspec", "lsp", "--var", "mood=dusk"]), scope="module"
)
async def client_with_vars(lsp_client: LanguageClient):
    await lsp_client.initialize_session(lsp.InitializeParams(client_capabilities("visual_studio_code")))
    lsp_client.encoding = "utf-16"
    yield
    await lsp_client.shutdown_session()


async def test_outside_variables_are_offered(client_with_vars, workspace):
    text = 'let city = "Lisbon"\nshot a 5s "{{ m'
    labels, items = await complete(client_with_vars, workspace / "outside.kvs", text, "{{ m", 4, "utf-16")
    assert labels == ["city", "mood"]
    assert items[1].detail == "--var/--vars: 'dusk'"
