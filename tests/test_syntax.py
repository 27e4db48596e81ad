"""syntax.py: the parser, its error recovery, comments, strings and escapes."""

from __future__ import annotations

import pytest
from helpers import codes, errors, locate, run, where

from klingspec import ast
from klingspec.source import Source
from klingspec.syntax import MAX_SYNTAX_ERRORS, parse


def parsed(text: str):
    return parse(Source("t.kvs", text))


def test_every_statement_kind_parses():
    text = '''model kling-video-o3-pro-reference-to-video
aspect 9:16
use "lib.kvs"
let mood = "dusk"
let n = 3
let xs = ["a", 2, true, ["nested"]]
image cafe = "https://e.com/c.png"
element hero {
  front "https://e.com/f.png"
  refs "https://e.com/1.png",
       "https://e.com/2.png"
}
start "https://e.com/s.png"
end "https://e.com/e.png"
shot arrival 6s "x"
shot 5 """y"""
'''
    script, problems = parsed(text)
    assert problems == []
    kinds = [type(s).__name__ for s in script.statements]
    assert kinds == [
        "Setting",
        "Setting",
        "Use",
        "Let",
        "Let",
        "Let",
        "Image",
        "Element",
        "Frame",
        "Frame",
        "Shot",
        "Shot",
    ]
    lets = script.of(ast.Let)
    assert isinstance(lets[1].value, ast.Integer) and lets[1].value.value == 3
    xs = lets[2].value
    assert isinstance(xs, ast.ListValue) and len(xs.items) == 4
    assert isinstance(xs.items[2], ast.Boolean) and xs.items[2].value is True
    element = script.of(ast.Element)[0]
    assert [f.kind for f in element.fields] == ["front", "refs"]
    assert [u.value for u in element.all("refs")[0].uris] == ["https://e.com/1.png", "https://e.com/2.png"]
    first, second = script.of(ast.Shot)
    assert first.name.value == "arrival" and str(first.duration.seconds) == "6"
    assert second.name is None and second.prompt.triple
    assert first.span.start_position == (15, 1)


def test_statement_spans_are_exact():
    text = 'aspect 9:16\nimage cafe = "https://e.com/c.png"\nshot a 5s "x"\n'
    script, _ = parsed(text)
    setting, image, shot = script.statements
    assert setting.value.span.text == "9:16"
    assert image.name.span.text == "cafe"
    assert image.uri.span.text == '"https://e.com/c.png"'
    assert shot.duration.span.text == "5s"
    assert shot.prompt.span.text == '"x"'


def test_error_recovery_reports_several_errors():
    text = 'shot a 5s\naspect\nlet x "y"\nshot ok 5s "fine"\nimage i "u"\n'
    script, problems = parsed(text)
    assert [p.span.start_position[0] for p in problems] == [1, 2, 3, 5]
    assert all(p.code == "KVS-syntax-unexpected" for p in problems)
    assert "a shot needs a prompt string" in problems[0].message
    assert "this setting needs a value" in problems[1].message
    assert "`let` needs `=`" in problems[2].message
    assert "binding needs `=`" in problems[3].message
    assert where(problems[2]) == locate(text, '"y"')
    # the good statement in between survived
    assert [s.name.value for s in script.of(ast.Shot)] == ["ok"]
    assert script.partial


def test_error_recovery_is_capped():
    text = 'shot a 5s "x"\n' + "bad line here\n" * 30
    _, problems = parsed(text)
    assert len(problems) == MAX_SYNTAX_ERRORS + 1
    assert problems[-1].code == "KVS-syntax-too-many"
    assert [p.span.start_position[0] for p in problems[:3]] == [2, 3, 4]


def test_errors_do_not_cascade_into_checks(tmp_path):
    result = run(tmp_path, 'shot a 5s "x" "y"\nshot b 5s "@hero"\n')
    assert errors(result) == ["KVS-syntax-unexpected"]


def test_unknown_statement_did_you_mean():
    _, [problem] = parsed('shoot a 5s "x"\n')
    assert problem.message == "unknown statement `shoot`"
    assert problem.help == "did you mean `shot`?"
    assert where(problem) == (1, 1, 1, 6)


def test_unquoted_uri():
    text = 'image cafe = https://e.com/x.png\nshot a 5s "@cafe"\n'
    _, [problem] = parsed(text)
    assert where(problem) == locate(text, "https://e.com/x.png")
    assert "quoted" in problem.message


def test_unterminated_string_is_reported_and_next_line_parsed():
    text = 'shot a 5s "unterminated\nshot b 5s "ok"\n'
    script, [problem] = parsed(text)
    assert problem.code == "KVS-syntax-string"
    assert where(problem) == (1, 11, 1, 24)
    assert [s.name.value for s in script.of(ast.Shot)] == ["b"]


def test_unclosed_element_block():
    text = 'element hero {\n  front "https://e.com/f.png"\nshot a 5s "x"\n'
    script, [problem] = parsed(text)
    assert where(problem) == (1, 14, 1, 15)
    assert "never closed" in problem.message
    assert len(script.of(ast.Shot)) == 1


def test_invisible_character():
    text = 'shot a 5s "x" \u00a0\n'
    _, [problem] = parsed(text)
    assert problem.code == "KVS-syntax-character"
    assert where(problem) == (1, 15, 1, 16)
    assert "U+00A0" in problem.message


def test_comments_are_collected_with_spans():
    text = '# top\nshot a 5s "a # not a comment" # real\nlet x = "y"   # third\n'
    script, problems = parsed(text)
    assert problems == []
    assert [c.text for c in script.comments] == ["# top", "# real", "# third"]
    assert [c.span.start_position for c in script.comments] == [(1, 1), (2, 31), (3, 15)]
    assert script.of(ast.Shot)[0].prompt.value == "a # not a comment"


def test_comment_inside_triple_string_is_text():
    text = 'shot a 5s """\n  # inside\n"""  # outside\n'
    script, _ = parsed(text)
    assert [c.text for c in script.comments] == ["# outside"]
    assert "# inside" in script.of(ast.Shot)[0].prompt.value


def test_comments_with_crlf_do_not_include_cr():
    script, _ = parsed('# one\r\nshot a 5s "x"\r\n')
    assert script.comments[0].text == "# one"
    assert script.comments[0].span.end - script.comments[0].span.start == 5


def test_escapes_map_back_to_source_offsets():
    text = 'shot a 5s "a\\"b\\nc\\td"\n'
    script, problems = parsed(text)
    assert problems == []
    prompt = script.of(ast.Shot)[0].prompt
    assert prompt.value == 'a"b\nc\td'
    # each character of the value points at where it is written
    assert prompt.span_of(0, 1).text == "a"
    assert prompt.span_of(1, 2).start_position == locate(text, '\\"')[:2]
    assert prompt.span_of(2, 3).text == "b"
    assert prompt.span_of(4, 5).text == "c"
    assert prompt.span_of(6, 7).text == "d"
    assert prompt.span_of(0, len(prompt.value)).text == 'a\\"b\\nc\\td'


def test_escape_offsets_after_non_ascii():
    text = 'shot a 5s "東京\\n@ghost"\n'
    script, _ = parsed(text)
    prompt = script.of(ast.Shot)[0].prompt
    at = prompt.value.index("@ghost")
    assert prompt.span_of(at, at + 6).text == "@ghost"
    assert prompt.span_of(at, at + 6).start_position == locate(text, "@ghost")[:2]


def test_unknown_escape_is_reported_at_the_backslash():
    text = 'shot a 5s "a\\qb"\n'
    _, [problem] = parsed(text)
    assert problem.code == "KVS-syntax-escape"
    assert where(problem) == locate(text, "\\q")


def test_literal_braces_escape_templating(tmp_path):
    result = run(tmp_path, 'shot a 5s "\\{\\{ not a template \\}\\}"\n')
    assert codes(result) == []
    assert result.request.body["prompt"] == "{{ not a template }}"


def test_triple_string_folds_lines(tmp_path):
    text = 'shot a 5s """\n    One line.\n\n      Two   words.\n"""\n'
    result = run(tmp_path, text)
    assert result.request.body["prompt"] == "One line. Two   words."


@pytest.mark.parametrize("duration, seconds", [("5s", "5"), ("5", "5"), ("2.5s", "2.5"), ("-1s", "-1")])
def test_duration_forms(duration, seconds):
    script, problems = parsed(f'shot a {duration} "x"\n')
    assert problems == []
    assert str(script.of(ast.Shot)[0].duration.seconds) == seconds


def test_missing_final_newline_and_crlf():
    for text in ['shot a 5s "x"', 'shot a 5s "x"\r\nshot b 5s "y"\r\n']:
        script, problems = parsed(text)
        assert problems == [] and len(script.of(ast.Shot)) >= 1


def test_syntax_error_at_end_without_newline_stays_in_source():
    text = "shot a 5s"
    _, [problem] = parsed(text)
    assert problem.code == "KVS-syntax-eof"
    assert problem.span.end <= len(text)


def test_bom_in_text_is_ignored():
    script, problems = parsed('\ufeffshot a 5s "x"\n')
    assert problems == [] and len(script.statements) == 1


def test_unicode_names(tmp_path):
    result = run(tmp_path, 'image café = "https://e.com/c.png"\nshot a 5s "@café"\n')
    assert errors(result) == []
    assert result.request.body["prompt"] == "@Image1"


def test_the_generated_parser_is_the_grammar():
    """klingspec/_kvs_parser.py is exactly what tools/generate_parser.py makes of
    grammar/kvs.lark: an edit to the grammar without regenerating fails here."""
    pytest.importorskip("lark")
    import runpy
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    generator = runpy.run_path(str(root / "tools" / "generate_parser.py"))
    written = (root / "klingspec" / "_kvs_parser.py").read_text(encoding="utf-8")
    assert written == generator["generate"](), "stale parser: run python tools/generate_parser.py"


# -- near-misses from other formats: each certain fix, applied, parses -------------------


def _fixed(text: str) -> tuple[str, list]:
    _, diagnostics = parsed(text)
    fixes = sorted((s for d in diagnostics for s in d.suggestions), key=lambda s: -s.span.start)
    for fix in fixes:
        text = text[: fix.span.start] + fix.replacement + text[fix.span.end :]
    return text, diagnostics


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("aspect: 16:9", "aspect 16:9"),
        ("aspect:16:9", "aspect 16:9"),
        ("model = kling-video-o3-omni", "model kling-video-o3-omni"),
        ("audio=on", "audio on"),
        ('negative: "blur"', 'negative "blur"'),
        ("aspect_ratio: 16:9", "aspect 16:9"),
        ('negative_prompt = "blur"', 'negative "blur"'),
        ("Model kling-video-o3-omni", "model kling-video-o3-omni"),
        ("let mood = \u2018dusk\u2019", 'let mood = "dusk"'),
        ("let mood = 'dusk'", 'let mood = "dusk"'),
        ('shot a 5s \u201ca "red" balloon\u201d', 'shot a 5s "a \\"red\\" balloon"'),
        ("shot a 5s 'don't stop'", 'shot a 5s "don\'t stop"'),
        ("negative \u201cblur\u201d", 'negative "blur"'),
        ("model 'kling-video-o3-omni'", 'model "kling-video-o3-omni"'),
    ],
)
def test_near_misses_from_other_formats_carry_a_fix_that_parses(written, meant):
    fixed, diagnostics = _fixed(written + "\n")
    assert [d.code for d in diagnostics] == ["KVS-syntax-unexpected"]
    assert fixed == meant + "\n"
    assert parsed(fixed)[1] == []


@pytest.mark.parametrize(
    "written",
    ["negative: blurry faces", "duration 10s", 'prompt "x"', "shot a 5s \u201cnever closed"],
)
def test_near_misses_without_a_certain_fix_carry_none(written):
    _, diagnostics = parsed(written + "\n")
    assert [d.code for d in diagnostics] == ["KVS-syntax-unexpected"]
    assert diagnostics[0].suggestions == ()


def test_a_setting_read_past_its_mistake_keeps_its_value():
    script, _ = parsed("aspect:16:9\nmodel 'kling-video-o3-omni'\n")
    assert [s.value.value for s in script.statements] == ["16:9", "kling-video-o3-omni"]


def test_a_statement_starting_with_a_colon_is_an_unknown_statement():
    _, diagnostics = parsed("aspect 1\n:1\n")
    assert [(d.code, d.message) for d in diagnostics] == [("KVS-syntax-unexpected", "unknown statement `:1`")]
