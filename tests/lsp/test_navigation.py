"""Hover, go to definition, references, rename and the outline, across `use`d files."""

from __future__ import annotations

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient, client_capabilities

from klingspec.pipeline import Options, run_pipeline
from klingspec.pricing import usd_quote
from tests.lsp.conftest import SERVER, open_document, position

pytestmark = pytest.mark.asyncio(loop_scope="module")


def doc(path):
    return lsp.TextDocumentIdentifier(path.as_uri())


async def hover_at(client, path, text, needle, delta=1):
    return await client.text_document_hover_async(
        lsp.HoverParams(doc(path), position(text, needle, delta, client.encoding))
    )


async def test_hover_on_a_shot_shows_seconds_cost_and_the_prompt_as_sent(client, workspace):
    path = workspace / "teaser.kvs"
    text = path.read_text(encoding="utf-8")
    await open_document(client, path)
    found = await hover_at(client, path, text, "shot sip", 2)
    value = found.contents.value
    prompt = "Close-up: @Element1 lifts a cup; steam curls up. The AURORA COFFEE logo turns toward the camera."
    assert value.startswith("**shot sip** · 5 s · $1.12 × 2 generations")
    plan = run_pipeline(str(path), Options()).estimate  # the plan's figure for the whole render
    assert f"the whole render: {plan.seconds} s × 2 = {usd_quote(plan.quote)}" in value
    assert f"prompt as sent, {len(prompt)}/512 characters" in value
    assert f"```text\n{prompt}\n```" in value
    assert found.range.start == position(text, "shot sip", 0, client.encoding)


async def test_hover_on_a_mention_shows_the_binding_and_its_uris(client, workspace):
    path = workspace / "teaser.kvs"
    text = path.read_text(encoding="utf-8")
    await open_document(client, path)
    found = await hover_at(client, path, text, "@palette")
    assert found.contents.value.startswith("**@palette** → `@Image2`")
    assert "https://assets.example.com/aurora/refs/palette.png" in found.contents.value
    found = await hover_at(client, path, text, "@barista lifts")
    assert "`@Element1`" in found.contents.value
    assert "front: https://assets.example.com/aurora/barista/front.png" in found.contents.value
    assert "refs: https://assets.example.com/aurora/barista/left.png" in found.contents.value
    assert found.range == lsp.Range(
        position(text, "@barista lifts", 0, client.encoding), position(text, "@barista lifts", 8, client.encoding)
    )


async def test_hover_on_a_raw_reference(client, workspace):
    path = workspace / "raw.kvs"
    text = 'image cafe = "https://a.example.com/x.jpg"\nshot a 5s "inside @Image1"\n'
    await open_document(client, path, text)
    found = await hover_at(client, path, text, "@Image1")
    assert found.contents.value.startswith("**@Image1** → `@cafe`")


async def test_definition_of_a_library_binding_is_in_the_used_file(client, workspace):
    path = workspace / "library.kvs"
    text = path.read_text(encoding="utf-8")
    await open_document(client, path)
    found = await client.text_document_definition_async(
        lsp.DefinitionParams(doc(path), position(text, "@ada,", 2, client.encoding))
    )
    lib = workspace / "lib" / "characters.kvs"
    assert [(loc.uri, loc.range.start) for loc in found] == [(lib.as_uri(), lsp.Position(11, 8))]
    found = await client.text_document_definition_async(
        lsp.DefinitionParams(doc(path), position(text, "{{ studio_look", 5, client.encoding))
    )
    assert [(loc.uri, loc.range.start.line) for loc in found] == [(lib.as_uri(), 8)]
    found = await client.text_document_definition_async(
        lsp.DefinitionParams(doc(path), position(text, '\nuse "lib', 7, client.encoding))
    )
    assert found[0].uri == lib.as_uri()


async def test_references_from_the_library_reach_the_scripts_that_use_it(client, workspace):
    lib = workspace / "lib" / "characters.kvs"
    text = lib.read_text(encoding="utf-8")
    await open_document(client, lib)
    found = await client.text_document_references_async(
        lsp.ReferenceParams(
            text_document=doc(lib),
            position=position(text, "element ada", 9, client.encoding),
            context=lsp.ReferenceContext(True),
        )
    )
    script = workspace / "library.kvs"
    script_text = script.read_text(encoding="utf-8")
    where = {(loc.uri, loc.range.start.line) for loc in found}
    assert (lib.as_uri(), 11) in where
    assert {
        (script.as_uri(), script_text[:i].count("\n"))
        for i in (script_text.index("@ada,"), script_text.index("@ada flips"))
    } <= where
    found = await client.text_document_references_async(
        lsp.ReferenceParams(
            text_document=doc(lib),
            position=position(text, "element ada", 9, client.encoding),
            context=lsp.ReferenceContext(False),
        )
    )
    assert (lib.as_uri(), 11) not in {(loc.uri, loc.range.start.line) for loc in found}


async def test_rename_a_binding_across_files(client, workspace):
    script = workspace / "library.kvs"
    text = script.read_text(encoding="utf-8")
    await open_document(client, script)
    at = position(text, "in @workshop, {{", 6, client.encoding)
    prepared = await client.text_document_prepare_rename_async(lsp.PrepareRenameParams(doc(script), at))
    assert prepared.placeholder == "workshop"
    assert prepared.range.start == position(text, "in @workshop, {{", 4, client.encoding)
    edit = await client.text_document_rename_async(lsp.RenameParams(doc(script), at, "atelier"))
    lib = workspace / "lib" / "characters.kvs"
    lib_text = lib.read_text(encoding="utf-8")
    assert [(e.range.start, e.new_text) for e in edit.changes[lib.as_uri()]] == [
        (position(lib_text, "workshop =", 0, client.encoding), "atelier")
    ]
    mentions = edit.changes[script.as_uri()]
    assert len(mentions) == 2 and all(e.new_text == "atelier" for e in mentions)
    assert mentions[0].range == lsp.Range(
        position(text, "in @workshop, {{", 4, client.encoding), position(text, "in @workshop, {{", 12, client.encoding)
    )


async def test_rename_a_let_renames_its_template_uses(client, workspace):
    path = workspace / "storyboard.kvs"
    text = path.read_text(encoding="utf-8")
    await open_document(client, path)
    edit = await client.text_document_rename_async(
        lsp.RenameParams(doc(path), position(text, "{{ hour }}", 4, client.encoding), "time_of_day")
    )
    edits = edit.changes[path.as_uri()]
    lines = sorted(e.range.start.line for e in edits)
    # `let hour`, its use in `let look`, and the one in the first shot
    assert lines == [
        text[:i].count("\n") for i in (text.index("let hour"), text.index('{{ hour }}"'), text.index("at {{ hour }}"))
    ]
    assert all(e.new_text == "time_of_day" for e in edits)


async def test_rename_refuses_a_name_that_is_not_one(client, workspace):
    path = workspace / "teaser.kvs"
    text = path.read_text(encoding="utf-8")
    await open_document(client, path)
    with pytest.raises(Exception, match="looks like a raw"):
        await client.text_document_rename_async(
            lsp.RenameParams(doc(path), position(text, "@cafe", 2, client.encoding), "Image3")
        )


async def test_document_symbols_outline_the_shots_then_the_bindings(client, workspace):
    path = workspace / "teaser.kvs"
    text = path.read_text(encoding="utf-8")
    await open_document(client, path)
    found = await client.text_document_document_symbol_async(lsp.DocumentSymbolParams(doc(path)))
    assert [(s.name, s.kind) for s in found] == [
        ("arrival", lsp.SymbolKind.Event),
        ("sip", lsp.SymbolKind.Event),
        ("brand", lsp.SymbolKind.Variable),
        ("mood", lsp.SymbolKind.Variable),
        ("cafe", lsp.SymbolKind.File),
        ("palette", lsp.SymbolKind.File),
        ("barista", lsp.SymbolKind.Object),
    ]
    hierarchical = client.capabilities.text_document.document_symbol.hierarchical_document_symbol_support
    if hierarchical:
        assert found[0].detail.startswith("6 s")
        assert found[0].selection_range.start == position(text, "arrival 6s", 0, client.encoding)
        assert found[6].detail == "@Element1"
        assert [c.name for c in found[6].children] == ["front", "refs"]
    else:
        assert found[0].location.range.start == position(text, "shot arrival", 0, client.encoding)


def _flat_symbols_capabilities() -> lsp.ClientCapabilities:
    """VS Code's capabilities without `hierarchicalDocumentSymbolSupport`, as older clients
    send them: the server must answer with flat `SymbolInformation`."""
    capabilities = client_capabilities("visual_studio_code")  # a fresh copy: ours to change
    capabilities.text_document.document_symbol.hierarchical_document_symbol_support = None
    return capabilities


@pytest_lsp.fixture(config=SERVER, scope="module")
async def flat_client(lsp_client: LanguageClient, workspace):
    root = workspace.as_uri()
    await lsp_client.initialize_session(
        lsp.InitializeParams(
            capabilities=_flat_symbols_capabilities(),
            root_uri=root,
            workspace_folders=[lsp.WorkspaceFolder(root, "ws")],
        )
    )
    yield
    await lsp_client.shutdown_session()


async def test_document_symbols_are_flat_for_a_client_without_hierarchy(flat_client, workspace):
    path = workspace / "teaser.kvs"
    text = path.read_text(encoding="utf-8")
    await open_document(flat_client, path)
    found = await flat_client.text_document_document_symbol_async(lsp.DocumentSymbolParams(doc(path)))
    assert all(isinstance(s, lsp.SymbolInformation) for s in found)
    assert [(s.name, s.kind, s.container_name) for s in found] == [
        ("arrival", lsp.SymbolKind.Event, None),
        ("sip", lsp.SymbolKind.Event, None),
        ("brand", lsp.SymbolKind.Variable, None),
        ("mood", lsp.SymbolKind.Variable, None),
        ("cafe", lsp.SymbolKind.File, None),
        ("palette", lsp.SymbolKind.File, None),
        ("barista", lsp.SymbolKind.Object, None),
        ("front", lsp.SymbolKind.Field, "barista"),
        ("refs", lsp.SymbolKind.Field, "barista"),
    ]
    assert {s.location.uri for s in found} == {path.as_uri()}
    assert found[0].location.range.start == position(text, "shot arrival", 0, "utf-16")
    assert found[7].location.range.start == position(text, 'front "https', 0, "utf-16")
