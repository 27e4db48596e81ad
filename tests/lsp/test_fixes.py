"""Quick fixes are read from the diagnostic's suggestions, never from its help prose."""

from __future__ import annotations

from klingspec.diagnostics import Diagnostic, Suggestion
from klingspec.lsp.fixes import Edit, Fix, quick_fixes
from klingspec.source import Source

TEXT = 'image cafe = "https://a.example.com/x.jpg"\nshot s 5s "inside @cafee"\n'


def misspelt() -> tuple[Source, int, int]:
    source = Source("/w/main.kvs", TEXT)
    start = TEXT.index("@cafee")
    return source, start, start + len("@cafee")


def test_the_fix_comes_from_the_data_whatever_the_help_says():
    source, start, end = misspelt()
    span = source.span(start, end)
    diagnostic = Diagnostic.of(
        "KVS-name-unbound",
        span,
        "`@cafee` is not bound",
        "a help text that suggests nothing",
        suggestions=[Suggestion.did_you_mean(span, "@cafe")],
    )
    assert quick_fixes(diagnostic) == [Fix("Replace `@cafee` with `@cafe`", (Edit(span, "@cafe"),), preferred=True)]


def test_no_data_no_fix_even_when_the_help_suggests_one():
    source, start, end = misspelt()
    diagnostic = Diagnostic.of("KVS-name-unbound", source.span(start, end), "m", "did you mean `@cafe`?")
    assert quick_fixes(diagnostic) == []


def test_every_suggestion_is_a_fix_with_its_title_and_preference():
    source = Source("/w/main.kvs", 'shot s 2.5s "dawn"\n')
    span = source.span(7, 11)
    diagnostic = Diagnostic.of(
        "KVS-duration-fraction",
        span,
        "m",
        suggestions=[Suggestion(span, "2s", "Round down to 2s"), Suggestion(span, "3s", "Round up to 3s")],
    )
    assert quick_fixes(diagnostic) == [
        Fix("Round down to 2s", (Edit(span, "2s"),)),
        Fix("Round up to 3s", (Edit(span, "3s"),)),
    ]


def test_codes_the_editor_does_not_offer_yet_give_no_fix():
    source = Source("/w/main.kvs", "shoot a 5s\n")
    span = source.span(0, 5)
    diagnostic = Diagnostic.of("KVS-syntax-unexpected", span, "m", suggestions=[Suggestion.did_you_mean(span, "shot")])
    assert quick_fixes(diagnostic) == []


def test_a_retired_model_is_replaced_by_its_successor(tmp_path):
    from klingspec import catalogue, targets
    from klingspec.pipeline import run_pipeline

    ref, omni = "kling-video-o3-pro-reference-to-video", "kling-video-o3-omni"
    ids = [i for i in targets.known_ids() if i != ref]
    listed = {i: catalogue.Listed(i, {"id": i}) for i in ids}
    catalogue.save(catalogue.Catalogue("http://api", 1.8e9, None, "0" * 64, frozenset(ids), listed))
    path = tmp_path / "retired.kvs"
    path.write_text(f'model {ref}\nshot a 5s "a door"\n', encoding="utf-8")
    [diagnostic] = [d for d in run_pipeline(str(path)).diagnostics if d.code == "KVS-model-retired"]
    [fix] = quick_fixes(diagnostic)
    assert fix.title == f"Use `{omni}`" and fix.preferred
    assert [(e.span.text, e.new_text) for e in fix.edits] == [(ref, omni)]


def test_a_setting_the_model_does_not_take_is_removed_line_and_all(tmp_path):
    from helpers import run

    text = 'model kling-video-o3-omni\nnegative "blur"  # not on omni\naspect 9:16\nstart "https://e.com/s.png"\nshot a 5s "x"\n'
    result = run(tmp_path, text)
    found = {d.code: d for d in result.diagnostics if d.code in ("KVS-model-unsupported", "KVS-aspect-with-frames")}
    assert set(found) == {"KVS-model-unsupported", "KVS-aspect-with-frames"}
    for code, line in (
        ("KVS-model-unsupported", 'negative "blur"  # not on omni\n'),
        ("KVS-aspect-with-frames", "aspect 9:16\n"),
    ):
        [fix] = quick_fixes(found[code])
        [edit] = fix.edits
        assert fix.preferred and edit.new_text == "" and edit.span.text == line
