"""Films in the editor, over a real `klingspec lsp`: a film's own mistakes at its lines,
`scene` offered at a line's start, formatting; go to definition of a `continues` name and
a scene's script, the earlier scenes offered after `continues`, the scenes as the
outline, hover on a scene and rename of one; and inside a scene written in place, a
script's hovers, references and completion."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from lsprotocol import types as lsp

from klingspec.cli import main
from tests.lsp.conftest import change_document, diagnostics, open_document, position
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


# -- navigation, completion, outline, hover and rename of a film's scenes -----------------

SCENE = 'assets me/repo\nshot walk 5s "a slow walk along the pier"\n'
CHAIN = (
    'scene opening "teaser.kvs"\n'
    'scene walk "walk_scene.kvs" continues opening take 2\n'
    "scene outro continues walk {\n"
    "  assets me/repo\n"
    '  use "lib/characters.kvs"\n'
    '  image hero = "refs/postcard.png"\n'
    '  shot logo 4s "@hero with @ada, {{ studio_look }}"\n'
    "}\n"
)


def doc(path):
    return lsp.TextDocumentIdentifier(path.as_uri())


async def open_chain(client, workspace, name="chain.kvs", text=CHAIN):
    (workspace / "walk_scene.kvs").write_text(SCENE, encoding="utf-8")
    path = workspace / name
    found = await open_document(client, path, text)
    return path, found


async def definition(client, path, text, needle, delta):
    return await client.text_document_definition_async(
        lsp.DefinitionParams(doc(path), position(text, needle, delta, client.encoding))
    )


async def hover(client, path, text, needle, delta):
    return await client.text_document_hover_async(
        lsp.HoverParams(doc(path), position(text, needle, delta, client.encoding))
    )


async def test_the_chain_film_checks_clean(client, workspace):
    _, found = await open_chain(client, workspace)
    assert found == []


async def test_definition_of_a_continued_name_is_the_scene_that_defines_it(client, workspace):
    path, _ = await open_chain(client, workspace)
    found = await definition(client, path, CHAIN, "continues opening", 12)
    assert [(loc.uri, loc.range) for loc in found] == [
        (
            path.as_uri(),
            lsp.Range(position(CHAIN, "opening", 0, client.encoding), position(CHAIN, "opening", 7, client.encoding)),
        )
    ]
    found = await definition(client, path, CHAIN, "continues walk", 12)
    assert [loc.range.start for loc in found] == [position(CHAIN, 'walk "', 0, client.encoding)]


async def test_definition_of_a_scene_path_opens_the_scene_script(client, workspace):
    path, _ = await open_chain(client, workspace)
    found = await definition(client, path, CHAIN, '"teaser.kvs"', 3)
    assert [(loc.uri, loc.range.start) for loc in found] == [((workspace / "teaser.kvs").as_uri(), lsp.Position(0, 0))]
    found = await definition(client, path, CHAIN, '"walk_scene.kvs"', 1)
    assert [loc.uri for loc in found] == [(workspace / "walk_scene.kvs").as_uri()]
    # a `use` inside a scene written in place opens the library, as a script's `use` does
    found = await definition(client, path, CHAIN, 'use "lib', 6)
    assert [loc.uri for loc in found] == [(workspace / "lib" / "characters.kvs").as_uri()]


async def test_after_continues_the_scenes_written_above_are_offered_with_their_seconds(client, workspace):
    text = CHAIN + "scene finale continues "
    labels, items = await complete(client, workspace / "chain_end.kvs", text, "finale continues ", 17, client.encoding)
    assert labels == ["opening", "walk", "outro"]
    assert [i.detail for i in items] == ["11 s × 2", "5 s", "4 s"]
    assert all(i.kind == lsp.CompletionItemKind.Module for i in items)
    # the second scene may continue the first only: not itself, not one written after it
    text = CHAIN.replace("continues opening take 2", "continues op")
    labels, items = await complete(client, workspace / "chain_mid.kvs", text, "continues op", 12, client.encoding)
    assert labels == ["opening"]
    assert items[0].text_edit.range.start == position(text, "continues op", 10, client.encoding)


async def test_document_symbols_are_the_scenes_an_inline_scenes_shots_inside(client, workspace):
    path, _ = await open_chain(client, workspace)
    found = await client.text_document_document_symbol_async(lsp.DocumentSymbolParams(doc(path)))
    hierarchical = client.capabilities.text_document.document_symbol.hierarchical_document_symbol_support
    if hierarchical:
        assert [(s.name, s.kind) for s in found] == [
            ("opening", lsp.SymbolKind.Module),
            ("walk", lsp.SymbolKind.Module),
            ("outro", lsp.SymbolKind.Module),
        ]
        assert [s.detail for s in found] == [
            "teaser.kvs · 11 s × 2",
            "walk_scene.kvs · 5 s · continues opening take 2",
            "written in place, lines 3 to 8 · 4 s · continues walk",
        ]
        assert [(c.name, c.kind) for c in found[2].children] == [
            ("logo", lsp.SymbolKind.Event),
            ("hero", lsp.SymbolKind.File),
        ]
        assert found[0].children is None
        assert found[1].selection_range.start == position(CHAIN, 'walk "', 0, client.encoding)
    else:
        assert [(s.name, s.container_name) for s in found] == [
            ("opening", None),
            ("walk", None),
            ("outro", None),
            ("logo", "outro"),
            ("hero", "outro"),
        ]


def planned(path) -> dict[str, dict]:
    """`klingspec plan FILM --format json`, run in this process: its scenes by name."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["plan", str(path), "--format", "json"])
    return {s["name"]: s for s in json.loads(out.getvalue())["scenes"]}


def plan_words(scene: dict) -> str:
    """A scene's seconds and cost as the plan gives them: `11 s × 2 · $4.93 (up to $6.16)`."""
    seconds = f"{scene['seconds']} s" + (f" × {scene['generations']}" if scene["generations"] != 1 else "")
    cost = f"${scene['cost_usd']:.2f}"
    if scene["max_cost_usd"] != scene["cost_usd"]:
        cost += f" (up to ${scene['max_cost_usd']:.2f})"
    return f"{seconds} · {cost}"


async def test_hover_on_a_scene_shows_its_script_seconds_cost_and_chain(client, workspace):
    path, _ = await open_chain(client, workspace)
    path.write_text(CHAIN, encoding="utf-8")  # `plan` reads the film from disk
    plan = planned(path)
    found = await hover(client, path, CHAIN, 'walk "', 1)
    value = found.contents.value
    assert value.startswith(f"**scene walk** · walk_scene.kvs · {plan_words(plan['walk'])}\n")
    assert "continues `opening`: starts on the last frame of its take 2" in value
    assert "continued by `outro` (take 1)" in value
    assert found.range == lsp.Range(
        position(CHAIN, 'walk "', 0, client.encoding), position(CHAIN, 'walk "', 4, client.encoding)
    )
    # the same scene hovered where another scene continues it
    again = await hover(client, path, CHAIN, "continues walk", 11)
    assert again.contents.value == value
    assert again.range.start == position(CHAIN, "continues walk", 10, client.encoding)
    found = await hover(client, path, CHAIN, "scene opening", 8)
    assert found.contents.value.startswith(f"**scene opening** · teaser.kvs · {plan_words(plan['opening'])}\n")
    assert plan["opening"]["max_cost_usd"] > plan["opening"]["cost_usd"]  # teaser's audio: an open bill
    assert "continues" not in found.contents.value.split("\n\n")[1]
    found = await hover(client, path, CHAIN, "scene outro", 8)
    assert found.contents.value.startswith(
        f"**scene outro** · written in place, lines 3 to 8 · {plan_words(plan['outro'])}"
    )


async def test_hover_cost_of_a_continued_image_to_video_scene_is_the_plans(client, workspace):
    # cup continues pour on kling-video-v2-6-pro-image-to-video: the plan prices it with a
    # stand-in start frame, the editor (checks only) from its shots: the same bill
    path = workspace / "launch.kvs"
    text = path.read_text(encoding="utf-8")
    await open_document(client, path, text)
    plan = planned(path)
    assert plan["cup"]["model"] == "kling-video-v2-6-pro-image-to-video" and plan["cup"]["continues"] == "pour"
    for name in ("roastery", "pour", "cup", "ident"):
        found = await hover(client, path, text, f"scene {name}", 7)
        assert f" · {plan_words(plan[name])}\n" in found.contents.value + "\n", name


async def test_a_scenes_seconds_are_the_ones_its_cost_is_priced_on(client, workspace):
    # 2.5 s is an error (whole seconds), priced as 2 s: the hover and the outline say 5 s, not 5.5
    text = 'scene r "walk_scene.kvs"\nscene s {\n  shot a 2.5s "x"\n  shot b 3s "y"\n}\n'
    path, _ = await open_chain(client, workspace, "chain_fraction.kvs", text)
    found = await hover(client, path, text, "scene s", 6)
    assert found.contents.value.startswith("**scene s** · written in place, lines 2 to 5 · 5 s · $")
    symbols = await client.text_document_document_symbol_async(lsp.DocumentSymbolParams(doc(path)))
    if client.capabilities.text_document.document_symbol.hierarchical_document_symbol_support:
        assert symbols[1].detail == "written in place, lines 2 to 5 · 5 s"


async def test_inside_a_scene_written_in_place_a_script_s_features_work(client, workspace):
    path, _ = await open_chain(client, workspace)
    found = await hover(client, path, CHAIN, "shot logo", 2)
    assert found.contents.value.startswith("**shot logo** · 4 s · $")
    assert "@Image1 with @Element1" in found.contents.value
    found = await hover(client, path, CHAIN, "@hero with", 2)
    assert found.contents.value.startswith("**@hero** → `@Image1`")
    found = await definition(client, path, CHAIN, "@hero with", 2)
    assert [(loc.uri, loc.range.start) for loc in found] == [
        (path.as_uri(), position(CHAIN, "hero =", 0, client.encoding))
    ]
    found = await definition(client, path, CHAIN, "@ada,", 2)
    assert [loc.uri for loc in found] == [(workspace / "lib" / "characters.kvs").as_uri()]
    found = await definition(client, path, CHAIN, '"refs/postcard.png"', 3)
    assert [loc.uri for loc in found] == [(workspace / "refs" / "postcard.png").as_uri()]
    # a diagnostic of the scene at its own line of the film
    bad = CHAIN.replace("  assets me/repo\n", "  assets me/repo\n  aspect 7:3\n")
    found = await open_document(client, workspace / "chain_bad.kvs", bad)
    assert [(d.code, d.range.start) for d in found] == [("KVS-aspect-ratio", position(bad, "7:3", 0, client.encoding))]


async def test_at_completion_inside_a_scene_written_in_place_while_its_line_is_typed(client, workspace):
    # the unclosed string makes the block a syntax error: its other lines still answer
    text = CHAIN.replace("}\n", '  shot more 3s "@\n}\n')
    labels, _ = await complete(client, workspace / "chain_at.kvs", text, '3s "@', 5, client.encoding)
    assert {"@hero", "@ada", "@pip"} <= set(labels)
    text = CHAIN.replace("}\n", '  shot more 3s "{{ \n}\n')
    labels, _ = await complete(client, workspace / "chain_var.kvs", text, '3s "{{ ', 7, client.encoding)
    assert "studio_look" in labels


async def test_rename_a_scene_renames_it_and_every_continues(client, workspace):
    path, _ = await open_chain(client, workspace)
    at = position(CHAIN, "continues walk", 12, client.encoding)
    prepared = await client.text_document_prepare_rename_async(lsp.PrepareRenameParams(doc(path), at))
    assert prepared.placeholder == "walk"
    edit = await client.text_document_rename_async(lsp.RenameParams(doc(path), at, "stroll"))
    assert list(edit.changes) == [path.as_uri()]
    renamed = apply(CHAIN, edit.changes[path.as_uri()], client.encoding)
    assert renamed == CHAIN.replace("scene walk", "scene stroll").replace("continues walk", "continues stroll")
    edit = await client.text_document_rename_async(
        lsp.RenameParams(doc(path), position(CHAIN, "scene opening", 7, client.encoding), "dawn")
    )
    assert apply(CHAIN, edit.changes[path.as_uri()], client.encoding) == CHAIN.replace("opening", "dawn")
    with pytest.raises(Exception, match="is not a name"):
        await client.text_document_rename_async(lsp.RenameParams(doc(path), at, "2nd"))
    with pytest.raises(Exception, match="a scene named `opening` is already in this film"):
        await client.text_document_rename_async(lsp.RenameParams(doc(path), at, "opening"))
    found = await client.text_document_references_async(
        lsp.ReferenceParams(
            text_document=doc(path),
            position=position(CHAIN, "scene walk", 7, client.encoding),
            context=lsp.ReferenceContext(True),
        )
    )
    assert sorted((loc.uri, loc.range.start) for loc in found) == sorted(
        [
            (path.as_uri(), position(CHAIN, "walk ", 0, client.encoding)),
            (path.as_uri(), position(CHAIN, "continues walk", 10, client.encoding)),
        ]
    )


async def test_a_continues_naming_no_earlier_scene_is_left_alone(client, workspace):
    text = 'scene a "walk_scene.kvs" continues b\nscene b "walk_scene.kvs"\n'
    path, _ = await open_chain(client, workspace, "chain_forward.kvs", text)
    found = await definition(client, path, text, "continues b", 10)
    assert not found
    edit = await client.text_document_rename_async(
        lsp.RenameParams(doc(path), position(text, "scene b", 6, client.encoding), "c")
    )
    assert apply(text, edit.changes[path.as_uri()], client.encoding) == text.replace("scene b", "scene c")


# -- completion while a line of a scene written in place is typed ------------------------

MULTILINE = (
    'scene opening "teaser.kvs"\n'
    "scene outro continues opening {\n"
    "  assets me/repo\n"
    "  element hero {\n"
    '    front "https://assets.example.com/hero.png"\n'
    "  }\n"
    '  image cafe = "https://assets.example.com/cafe.png"\n'
    '  shot more 3s "@\n'
    "}\n"
)


async def test_at_completion_after_a_multi_line_element_in_a_scene_written_in_place(client, workspace):
    # the element's closing brace is not the scene's: the scene's bindings are offered
    labels, _ = await complete(client, workspace / "chain_elem.kvs", MULTILINE, '3s "@', 5, client.encoding)
    assert {"@hero", "@cafe"} <= set(labels)
    text = MULTILINE.replace('  shot more 3s "@\n', '  let look = "warm"\n  shot more 3s "{{ \n')
    labels, _ = await complete(client, workspace / "chain_elem_var.kvs", text, '3s "{{ ', 7, client.encoding)
    assert labels == ["look"]


async def test_the_re_check_of_a_typed_line_is_kept_for_the_same_text_and_line(client, workspace):
    library = workspace / "lib_kept.kvs"
    library.write_text('image one = "https://assets.example.com/one.png"\n', encoding="utf-8")
    text = MULTILINE.replace("  assets me/repo\n", '  assets me/repo\n  use "lib_kept.kvs"\n')
    path = workspace / "chain_kept.kvs"
    labels, _ = await complete(client, path, text, '3s "@', 5, client.encoding)
    assert "@one" in labels
    # the file changes on disk, no buffer does: the same completion is answered from the
    # re-check already made (as every feature answers from the document's cached result)
    library.write_text('image two = "https://assets.example.com/two.png"\n', encoding="utf-8")
    found = await client.text_document_completion_async(
        lsp.CompletionParams(doc(path), position(text, '3s "@', 5, client.encoding))
    )
    assert "@one" in [i.label for i in found.items] and "@two" not in [i.label for i in found.items]


async def test_only_completions_that_read_bindings_re_check_the_film():
    from klingspec.lsp.completions import needs_result

    def at(line: str) -> bool:
        text = "scene a {\n" + line + "\n}\n"
        return needs_result(text, len("scene a {\n") + len(line))

    assert at('  shot a 3s "@')
    assert at('  shot a 3s "a {{ ')
    assert at('  image x = "refs/')
    assert at("  aspect ")
    assert at("  sh")
    assert not at('  shot a 3s "a slow walk along the')  # plain words of a prompt
    assert not at('  shot a 3s "a slow walk" ')
    assert not at("scene b continues ")


async def test_keywords_in_a_film_are_scene_at_its_top_level_and_no_scene_inside_one(client, workspace):
    text = 'scene opening "teaser.kvs"\nsc\n'
    labels, _ = await complete(client, workspace / "film_kw_top.kvs", text, "\nsc", 3, client.encoding)
    assert labels == ["scene"]
    text = 'scene opening "teaser.kvs"\nscene b {\n  shot a 5s "x"\n  sh\n}\n'
    labels, _ = await complete(client, workspace / "film_kw_in.kvs", text, "\n  sh\n", 5, client.encoding)
    assert "shot" in labels and "image" in labels and "scene" not in labels
    text = 'scene opening "teaser.kvs"\nscene b {\n  shot a 5s "x"\n  \n}\n'
    labels, _ = await complete(client, workspace / "film_kw_empty.kvs", text, '"x"\n  ', 6, client.encoding)
    assert "shot" in labels and "scene" not in labels


# -- diagnostics of a film's scenes, and a scene script opened on its own ------------------


async def test_a_scene_script_of_a_workspace_film_shows_what_the_film_says_of_it(client, workspace):
    # launch.kvs continues cup from pour: opened alone, cup would want a start frame
    for name in ("cup.kvs", "pour.kvs", "roastery.kvs"):
        found = await open_document(client, workspace / "scenes" / name)
        assert [d for d in found if d.severity == lsp.DiagnosticSeverity.Error] == [], name
    # a script no film names is checked as a script
    alone = workspace / "scenes_alone" / "cup.kvs"
    alone.parent.mkdir(exist_ok=True)
    alone.write_text((workspace / "scenes" / "cup.kvs").read_text(encoding="utf-8"), encoding="utf-8")
    found = await open_document(client, alone)
    assert [d.code for d in found] == ["KVS-start-required"]
    # the film's own rule about a continued scene is shown at the scene script's line
    folder = workspace / "film_rules"
    folder.mkdir(exist_ok=True)
    (folder / "first.kvs").write_text('shot a 5s "the first"\n', encoding="utf-8")
    second = 'assets me/repo\nstart "https://assets.example.com/s.png"\nshot b 5s "the second"\n'
    (folder / "second.kvs").write_text(second, encoding="utf-8")
    (folder / "film.kvs").write_text('scene one "first.kvs"\nscene two "second.kvs" continues one\n', encoding="utf-8")
    found = await open_document(client, folder / "second.kvs")
    assert [(d.code, d.range.start.line) for d in found] == [("KVS-scene-start", 1)]


async def test_a_scene_script_is_shown_again_when_its_film_changes(client, workspace):
    folder = workspace / "film_again"
    folder.mkdir(exist_ok=True)
    (folder / "first.kvs").write_text('shot a 5s "the first"\n', encoding="utf-8")
    (folder / "cup.kvs").write_text((workspace / "scenes" / "cup.kvs").read_text(encoding="utf-8"), encoding="utf-8")
    film = 'scene one "first.kvs"\nscene cup "cup.kvs" continues one\n'
    (folder / "film.kvs").write_text(film, encoding="utf-8")
    assert await open_document(client, folder / "cup.kvs") == []
    await open_document(client, folder / "film.kvs", film)
    cup = (folder / "cup.kvs").as_uri()
    client.diagnostics.pop(cup, None)
    await change_document(client, (folder / "film.kvs").as_uri(), 2, film.replace(" continues one", ""))
    assert [d.code for d in await diagnostics(client, cup)] == ["KVS-start-required"]


async def test_a_scenes_diagnostic_is_at_that_scenes_line(client, workspace):
    text = (
        'scene r "scenes/roastery.kvs"\n'
        'scene a "scenes/cup.kvs" continues r\n'
        'scene b "scenes/cup.kvs"\n'  # continues nothing: needs a start frame of its own
    )
    found = await open_document(client, workspace / "film_twice.kvs", text)
    assert [(d.code, d.range.start.line) for d in found] == [("KVS-start-required", 2)]
    # the film's rule about a scene, found in the scene's script, at that scene's line
    folder = workspace / "film_twice"
    folder.mkdir(exist_ok=True)
    (folder / "first.kvs").write_text('shot a 5s "the first"\n', encoding="utf-8")
    second = 'assets me/repo\nstart "https://assets.example.com/s.png"\nshot b 5s "the second"\n'
    (folder / "second.kvs").write_text(second, encoding="utf-8")
    text = (
        'scene r "film_twice/first.kvs"\n'
        'scene a "film_twice/second.kvs"\n'
        'scene b "film_twice/second.kvs" continues r\n'  # b's start frame is r's last: its own is one too many
    )
    found = await open_document(client, workspace / "film_start_twice.kvs", text)
    assert [(d.code, d.range.start.line) for d in found] == [("KVS-scene-start", 2)]
    # a scene written in place shows its library's problem on its `use`
    (workspace / "lib_bad.kvs").write_text('image broken = "ftp://example.com/x.png"\n', encoding="utf-8")
    text = 'scene r "scenes/roastery.kvs"\nscene s {\n  use "lib_bad.kvs"\n  shot a 5s "x @broken"\n}\n'
    found = await open_document(client, workspace / "film_lib.kvs", text)
    assert [(d.code, d.range.start) for d in found] == [
        ("KVS-uri-scheme", position(text, 'use "lib_bad', 0, client.encoding))
    ]


async def test_definition_of_a_folder_named_as_a_script_is_none(client, workspace):
    (workspace / "folder.kvs").mkdir(exist_ok=True)
    text = 'scene r "folder.kvs"\nscene s {\n  use "folder.kvs"\n  shot a 5s "x"\n}\n'
    await open_document(client, workspace / "film_folder.kvs", text)
    path = workspace / "film_folder.kvs"
    assert not await definition(client, path, text, '"folder.kvs"', 2)
    assert not await definition(client, path, text, 'use "folder', 6)
