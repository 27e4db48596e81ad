"""Films in the editor: a film's own mistakes at its lines, `scene` offered at a line's
start, formatting and hover on a film, over a real `klingspec lsp`."""

from __future__ import annotations

import pytest
from lsprotocol import types as lsp

from tests.lsp.conftest import open_document
from tests.lsp.test_completion import complete
from tests.lsp.test_edits import apply

pytestmark = pytest.mark.asyncio(loop_scope="module")

FILM = 'scene opening "teaser.kvs"\nscene later "morph.kvs" continues nowhere\nscene long "long.kvs"\n'


async def test_a_films_mistakes_are_shown_at_its_lines_a_scenes_at_the_scene(client, workspace):
    (workspace / "long.kvs").write_text('shot 20s "too long"\n', encoding="utf-8")
    found = await open_document(client, workspace / "film.kvs", FILM)
    ours = [(d.code, d.range.start.line) for d in found]
    assert ("KVS-scene-name", 1) in ours
    assert ("KVS-shot-duration", 2) in ours  # long.kvs's own error, at the scene that brings it in


async def test_scene_is_offered_at_a_lines_start(client, workspace):
    labels, _ = await complete(client, workspace / "film_kw.kvs", "sce\n", "sce\n", 3, client.encoding)
    assert "scene" in labels


async def test_a_film_is_formatted_and_hovered_without_trouble(client, workspace):
    path = workspace / "messy_film.kvs"
    text = 'scene   opening "teaser.kvs"\nscene b continues opening {\n      shot 5s "x"\n}\n'
    await open_document(client, path, text)
    edits = await client.text_document_formatting_async(
        lsp.DocumentFormattingParams(lsp.TextDocumentIdentifier(path.as_uri()), lsp.FormattingOptions(2, True))
    )
    assert (
        apply(text, edits, client.encoding)
        == 'scene opening "teaser.kvs"\nscene b continues opening {\n  shot 5s "x"\n}\n'
    )
    hover = await client.text_document_hover_async(
        lsp.HoverParams(lsp.TextDocumentIdentifier(path.as_uri()), lsp.Position(2, 8))
    )
    assert hover is None or isinstance(hover, lsp.Hover)
