"""`Diagnostic` values: severity comes from the code catalogue, equality and order as before;
the fixes a phase is sure of travel as `Suggestion` data."""

from __future__ import annotations

import pytest
from helpers import only, run

from klingspec.codes import CODES
from klingspec.diagnostics import Diagnostic, Suggestion, sort_unique
from klingspec.source import Source


def test_severity_is_the_catalogue_entry_of_the_code():
    span = Source("a.kvs", 'shot a 5s "x"\n').span(0, 4)
    for code, entry in CODES.items():
        assert Diagnostic(code, span, "m").severity == entry.severity
        assert Diagnostic.of(code, span, "m").severity == entry.severity


def test_severity_cannot_be_given_and_an_unknown_code_fails_at_once():
    span = Source("a.kvs", "x").span(0)
    with pytest.raises(TypeError):
        Diagnostic("KVS-binding-unused", span, "m", severity="error")  # type: ignore[call-arg]
    with pytest.raises(KeyError):
        Diagnostic("KVS-made-up", span, "m")


def test_sorting_ranks_errors_before_warnings_and_drops_exact_repeats():
    source = Source("a.kvs", 'shot a 5s "x"\n')
    warning = Diagnostic.of("KVS-binding-unused", source.span(0, 4), "w")
    error = Diagnostic.of("KVS-no-shots", source.span(0, 4), "e")
    assert sort_unique([warning, error, warning]) == (error, warning)
    assert Diagnostic.of("KVS-no-shots", source.span(0, 4), "e") == error


# -- suggestions: the fixes a phase is sure of, as data -------------------------------


def suggestions(tmp_path, text: str, code: str) -> tuple[Suggestion, ...]:
    return only(run(tmp_path, text), code).suggestions


def test_unbound_name_with_a_close_name_carries_the_replacement(tmp_path):
    text = 'image cafe = "https://a.example.com/x.jpg"\nshot s 5s "🌃 inside @cafee"\n'
    diagnostic = only(run(tmp_path, text), "KVS-name-unbound")
    assert diagnostic.help == "did you mean `@cafe`?"
    [suggestion] = diagnostic.suggestions
    start = text.index("@cafee")
    assert (suggestion.span.start, suggestion.span.end) == (start, start + len("@cafee"))
    assert suggestion.span == diagnostic.span
    assert suggestion.replacement == "@cafe"
    assert suggestion.title == "Replace `@cafee` with `@cafe`" and suggestion.preferred


def test_unbound_name_without_a_close_name_carries_none(tmp_path):
    text = 'image cafe = "https://a.example.com/x.jpg"\nshot s 5s "@cafe meets @zebra"\n'
    assert suggestions(tmp_path, text, "KVS-name-unbound") == ()


def test_unbound_name_made_by_a_template_carries_none(tmp_path):
    # the span is the whole prompt literal: replacing it with `@cafe` would be wrong
    text = 'image cafe = "https://a.example.com/x.jpg"\nlet who = "@cafee"\nshot s 5s "{{ who }} walks"\n'
    diagnostic = only(run(tmp_path, text), "KVS-name-unbound")
    assert diagnostic.help == "did you mean `@cafe`?"
    assert diagnostic.suggestions == ()


def test_undefined_template_name_carries_the_close_name(tmp_path):
    text = 'let mood = "dusk"\nshot s 5s "a street at {{ mod | upper }}"\n'
    [suggestion] = suggestions(tmp_path, text, "KVS-template-undefined")
    assert suggestion.span.start == text.index("mod |") and suggestion.span.text == "mod"
    assert (suggestion.replacement, suggestion.preferred) == ("mood", True)


def test_unknown_statement_carries_the_keyword(tmp_path):
    text = 'aspect 16:9\nshoot a 5s "x"\n'
    [suggestion] = suggestions(tmp_path, text, "KVS-syntax-unexpected")
    assert (suggestion.span.start, suggestion.span.text, suggestion.replacement) == (12, "shoot", "shot")


@pytest.mark.parametrize(
    ("written", "span_text"),
    [
        ("kling-video-o3-pro-referenc-to-video", "kling-video-o3-pro-referenc-to-video"),
        ('"kling-video-o3-pro-referenc-to-video"', "kling-video-o3-pro-referenc-to-video"),
    ],
)
def test_unknown_model_carries_the_close_id_inside_any_quotes(tmp_path, written, span_text):
    text = f'model {written}\nshot a 5s "x"\n'
    [suggestion] = suggestions(tmp_path, text, "KVS-model-unknown")
    assert suggestion.span.text == span_text and suggestion.span.start == text.index(span_text)
    assert suggestion.replacement == "kling-video-o3-pro-reference-to-video"


def test_a_setting_value_made_by_a_template_carries_no_suggestion(tmp_path):
    text = 'let f = "urll"\nformat "{{ f }}"\nshot a 5s "x"\n'
    diagnostic = only(run(tmp_path, text), "KVS-setting-unknown-value")
    assert diagnostic.help == "did you mean `url`?" and diagnostic.suggestions == ()
    [suggestion] = suggestions(tmp_path, 'format URLL\nshot a 5s "x"\n', "KVS-setting-unknown-value")
    assert (suggestion.span.text, suggestion.replacement) == ("URLL", "url")


@pytest.mark.parametrize(
    ("duration", "expected"),
    [
        ("2.5s", [("2s", "Round down to 2s"), ("3s", "Round up to 3s")]),
        ("2.5", [("2", "Round down to 2 s"), ("3", "Round up to 3 s")]),
        ("0.5s", [("1s", "Round up to 1s")]),
        ("-2.5s", []),
    ],
)
def test_a_fractional_duration_carries_both_roundings(tmp_path, duration, expected):
    text = f'shot a {duration} "x"\n'
    found = suggestions(tmp_path, text, "KVS-duration-fraction")
    assert [(s.replacement, s.title) for s in found] == expected
    assert all(s.span.text == duration and not s.preferred for s in found)


def test_end_without_start_carries_a_start_line_above_it(tmp_path):
    text = 'aspect 16:9\r\n  end "https://a.example.com/e.jpg"\r\nshot s 5s "dawn"\r\n'
    [suggestion] = suggestions(tmp_path, text, "KVS-end-without-start")
    line_start = text.index("  end")
    assert (suggestion.span.start, suggestion.span.end) == (line_start, line_start)
    assert suggestion.replacement == '  start "https://"\r\n'
    assert suggestion.preferred
