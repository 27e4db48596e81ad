"""Formatting and quick fixes over LSP: the edits, applied, give the expected script."""

from __future__ import annotations

import pytest
from lsprotocol import types as lsp

from tests.lsp.conftest import open_document, position, units

pytestmark = pytest.mark.asyncio(loop_scope="module")


def apply(text: str, edits: list[lsp.TextEdit], encoding: str) -> str:
    """Apply LSP edits to `text` the way an editor does (positions in `encoding`)."""
    lines = [*text.splitlines(keepends=True), ""]

    def offset(p: lsp.Position) -> int:
        start = sum(len(line) for line in lines[: p.line])
        line = lines[p.line]
        count = 0
        for i, char in enumerate(line):
            if count >= p.character:
                return start + i
            count += units(char, encoding)
        return start + len(line.rstrip("\r\n"))

    for edit in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        text = text[: offset(edit.range.start)] + edit.new_text + text[offset(edit.range.end) :]
    return text


async def actions_at(client, path, text, needle, encoding):
    diagnostics = await open_document(client, path, text)
    at = position(text, needle, 0, encoding)
    return diagnostics, await client.text_document_code_action_async(
        lsp.CodeActionParams(
            lsp.TextDocumentIdentifier(path.as_uri()), lsp.Range(at, at), lsp.CodeActionContext(diagnostics)
        )
    )


async def test_formatting_returns_the_formatted_script(client, workspace):
    formatting = pytest.importorskip("klingspec.formatting")
    path = workspace / "messy.kvs"
    text = 'aspect   9:16\nlet a = "x"\nlet long_name = "y"\nshot  s  5  "🌃 {{ a }} {{ long_name }}"\n'
    await open_document(client, path, text)
    edits = await client.text_document_formatting_async(
        lsp.DocumentFormattingParams(lsp.TextDocumentIdentifier(path.as_uri()), lsp.FormattingOptions(2, True))
    )
    expected = formatting.format_text(text, str(path))
    assert expected != text
    assert apply(text, edits, client.encoding) == expected
    await open_document(client, path.with_name("tidy.kvs"), expected)
    assert await client.text_document_formatting_async(
        lsp.DocumentFormattingParams(
            lsp.TextDocumentIdentifier(path.with_name("tidy.kvs").as_uri()), lsp.FormattingOptions(2, True)
        )
    ) in ([], ())


async def test_unbound_name_is_replaced_by_the_suggestion(client, workspace):
    text = 'image cafe = "https://a.example.com/x.jpg"\nshot s 5s "🌃 inside @cafee"\n'
    _diagnostics, actions = await actions_at(client, workspace / "fix_name.kvs", text, "@cafee", client.encoding)
    assert [a.title for a in actions] == ["Replace `@cafee` with `@cafe`"]
    action = actions[0]
    assert action.kind == lsp.CodeActionKind.QuickFix and action.is_preferred
    assert action.diagnostics[0].code == "KVS-name-unbound"
    edits = action.edit.changes[(workspace / "fix_name.kvs").as_uri()]
    assert apply(text, edits, client.encoding) == text.replace("@cafee", "@cafe")


async def test_fractional_duration_rounds_down_or_up(client, workspace):
    text = 'shot s 2.5s "dawn"\nshot t 3 "dusk"\n'
    _, actions = await actions_at(client, workspace / "fix_duration.kvs", text, "2.5s", client.encoding)
    assert [a.title for a in actions] == ["Round down to 2s", "Round up to 3s"]
    uri = (workspace / "fix_duration.kvs").as_uri()
    assert apply(text, actions[0].edit.changes[uri], client.encoding) == text.replace("2.5s", "2s")
    assert apply(text, actions[1].edit.changes[uri], client.encoding) == text.replace("2.5s", "3s")


async def test_end_without_start_gets_a_start_line(client, workspace):
    text = 'aspect 16:9\nend "https://a.example.com/e.jpg"\nshot s 5s "dawn"\n'
    _, actions = await actions_at(client, workspace / "fix_frame.kvs", text, "end", client.encoding)
    assert [a.title for a in actions] == ["Add a `start` frame above the `end`"]
    uri = (workspace / "fix_frame.kvs").as_uri()
    assert (
        apply(text, actions[0].edit.changes[uri], client.encoding)
        == 'aspect 16:9\nstart "https://"\nend "https://a.example.com/e.jpg"\nshot s 5s "dawn"\n'
    )


async def test_no_actions_where_nothing_is_wrong(client, workspace):
    text = 'shot s 5s "dawn"\n'
    _, actions = await actions_at(client, workspace / "fix_none.kvs", text, "dawn", client.encoding)
    assert not actions


async def test_no_fix_where_a_template_wrote_the_unbound_name(client, workspace):
    # the diagnostic's span is the whole prompt: "replace it with `@cafe`" would be wrong
    text = 'image cafe = "https://a.example.com/x.jpg"\nlet who = "@cafee"\nshot s 5s "{{ who }} walks"\n'
    diagnostics, actions = await actions_at(client, workspace / "fix_templated.kvs", text, "{{ who", client.encoding)
    assert [d.code for d in diagnostics] == ["KVS-name-unbound"]
    assert not actions


async def test_http_url_gets_https(client, workspace):
    text = 'image cafe = "http://a.example.com/🌃.jpg"\nshot s 5s "inside @cafe"\n'
    _, actions = await actions_at(client, workspace / "fix_http.kvs", text, "http:", client.encoding)
    assert [a.title for a in actions] == ["Use https://"]
    uri = (workspace / "fix_http.kvs").as_uri()
    assert apply(text, actions[0].edit.changes[uri], client.encoding) == text.replace("http://", "https://")


async def test_page_link_gets_the_link_to_the_file(client, workspace):
    page = "https://github.com/octo/art/blob/main/🌃/front.png"
    text = f'element hero {{\n  front "{page}"\n}}\nshot s 5s "@hero waves"\n'
    _, actions = await actions_at(client, workspace / "fix_page.kvs", text, "github", client.encoding)
    assert [a.title for a in actions] == ["Use the link to the file itself"]
    assert actions[0].is_preferred and actions[0].diagnostics[0].code == "KVS-url-page"
    uri = (workspace / "fix_page.kvs").as_uri()
    assert apply(text, actions[0].edit.changes[uri], client.encoding) == text.replace(
        page, "https://raw.githubusercontent.com/octo/art/main/🌃/front.png"
    )
