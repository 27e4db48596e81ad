"""printing.py: the text format, JSON per docs/cli.md, SARIF 2.1.0."""

from __future__ import annotations

import json
import re

from helpers import run

from klingspec import printing
from klingspec.codes import CODES
from klingspec.diagnostics import Diagnostic, Related
from klingspec.source import Source

HEADER = re.compile(
    r"^(?P<path>[^\n]+):(?P<line>\d+):(?P<col>\d+): (?P<sev>error|warning|note)\[(?P<code>KVS-[a-z0-9-]+)\]: (?P<msg>.+)$"
)


def one(text: str, name="teaser.kvs", code="KVS-name-unbound", needle="@ghost", help="a hint", label=None, related=()):
    source = Source(name, text)
    start = text.index(needle)
    return Diagnostic.of(
        code, source.span(start, start + len(needle)), "the message", help, label=label, related=related
    )


def caret_column(rendered: str) -> tuple[int, int]:
    """(index of the first caret, number of carets) relative to the code after the gutter."""
    lines = rendered.split("\n")
    code_line = next(line for line in lines[1:] if re.match(r"^\d+ \| ", line))
    caret_line = next(line for line in lines if "^" in line)
    offset = code_line.index("| ") + 2
    first = caret_line.index("^")
    return first - offset, len(re.match(r"\^+", caret_line[first:]).group(0))


def test_header_is_greppable():
    rendered = printing.text(one('shot a 5s "x @ghost"\n'))
    match = HEADER.match(rendered.split("\n")[0])
    assert match and match.group("path") == "teaser.kvs"
    assert (match.group("line"), match.group("col")) == ("1", "14")
    assert match.group("sev") == "error" and match.group("code") == "KVS-name-unbound"
    assert match.group("msg") == "the message"


def test_snippet_carets_and_help():
    text = 'shot arrival 6s "x"\nshot sip 10s "y"\n'
    d = one(
        text,
        code="KVS-total-duration",
        needle="10s",
        help="shorten a shot by 1 s",
        label="this shot brings the total to 16 s",
    )
    lines = printing.text(d).split("\n")
    assert lines[0] == "teaser.kvs:2:10: error[KVS-total-duration]: the message"
    assert lines[1] == "  |"
    assert lines[2] == '2 | shot sip 10s "y"'
    assert lines[3] == "  |          ^^^ this shot brings the total to 16 s"
    assert lines[4] == "  = help: shorten a shot by 1 s"
    assert lines[5:] == ["  = see: klingspec explain KVS-total-duration"]


def test_gutter_widens_with_line_numbers():
    text = "\n" * 120 + 'shot a 5s "@ghost"\n'
    lines = printing.text(one(text)).split("\n")
    assert lines[1] == "    |" and lines[2].startswith("121 | ")
    assert lines[-2].startswith("    = help: ")
    assert lines[-1] == "    = see: klingspec explain KVS-name-unbound"


def test_carets_under_wide_characters():
    text = 'shot a 5s "東京 @ghost"\n'
    first, count = caret_column(printing.text(one(text)))
    assert first == len('shot a 5s "') + 4 + 1  # each CJK character is two columns wide
    assert count == 6


def test_carets_under_tabs():
    text = '\tshot a 5s "x @ghost"\n'
    rendered = printing.text(one(text))
    assert "\t" not in rendered
    first, count = caret_column(rendered)
    assert first == 4 + len('shot a 5s "x ')
    assert count == 6


def test_empty_span_gets_one_caret():
    source = Source("a.kvs", 'shot a 5s "x"\n')
    d = Diagnostic.of("KVS-no-shots", source.span(3), "m")
    assert caret_column(printing.text(d)) == (3, 1)


def test_multiline_span_underlines_to_end_of_first_line():
    text = 'shot a 5s """\nfoo\n"""\n'
    source = Source("a.kvs", text)
    d = Diagnostic.of("KVS-prompt-empty", source.span(10, len(text) - 1), "m")
    first, count = caret_column(printing.text(d))
    assert (first, count) == (10, 3)


def test_control_characters_are_shown_visibly():
    source = Source("a.kvs", "ab\x00cd\n")
    d = Diagnostic.of("KVS-encoding", source.span(2, 3), "m")
    rendered = printing.text(d)
    assert "\x00" not in rendered
    assert caret_column(rendered) == (2, 1)


def test_related_and_multiline_help():
    text = 'aspect 9:16\naspect 1:1\nshot a 5s "x"\n'
    source = Source("a.kvs", text)
    d = Diagnostic.of(
        "KVS-setting-duplicate",
        source.span(12, 22),
        "dup",
        "line one\nline two",
        related=[Related(source.span(0, 11), "first set here")],
    )
    lines = printing.text(d).split("\n")
    assert "  = note: first set here at a.kvs:1:1" in lines
    assert lines[-3:] == [
        "  = help: line one",
        "          line two",
        "  = see: klingspec explain KVS-setting-duplicate",
    ]


def test_no_help_no_help_line():
    assert "= help" not in printing.text(one('shot a 5s "@ghost"\n', help=None))


def test_see_line_ends_every_diagnostic():
    """With or without help or a snippet, the last line names the command that explains the code."""
    for d in (one('shot a 5s "@ghost"\n'), one('shot a 5s "@ghost"\n', help=None)):
        for style in (printing.TextStyle(), printing.TextStyle(snippet=False)):
            assert printing.text(d, style).split("\n")[-1].endswith("= see: klingspec explain KVS-name-unbound")


def test_every_code_links_its_published_page():
    for code in CODES:
        assert printing.docs_url(code) == f"https://github.com/klingspec/klingspec/blob/main/docs/codes/{code}.md"
    assert printing.docs_url("KVS-no-such-code") is None


def test_colour_only_when_asked():
    d = one('shot a 5s "@ghost"\n')
    assert "\x1b[" not in printing.text(d)
    assert "\x1b[" in printing.text(d, printing.TextStyle(color=True))


def test_texts_and_summary():
    d = one('shot a 5s "@ghost"\n')
    assert printing.texts([d, d]).count("error[KVS-name-unbound]") == 2
    assert printing.summary(1, 2, 1) == "1 file checked: 1 error, 2 warnings"
    assert printing.summary(0, 1, 3) == "3 files checked: 0 errors, 1 warning"


def test_json_shape_matches_cli_md(tmp_path):
    result = run(tmp_path, 'image cafe = "https://e.com/c.png"\nshot sip 16s "x"\n')
    payload = json.loads(printing.as_json(result.diagnostics))
    assert set(payload) == {"diagnostics", "errors", "warnings"}
    assert (payload["errors"], payload["warnings"]) == (1, 1)
    for item in payload["diagnostics"]:
        assert {
            "path",
            "line",
            "column",
            "end_line",
            "end_column",
            "severity",
            "code",
            "message",
            "help",
            "docs",
        } <= set(item)
        assert item["docs"] == printing.docs_url(item["code"])
        assert all(isinstance(item[k], int) for k in ("line", "column", "end_line", "end_column"))
    error = next(d for d in payload["diagnostics"] if d["severity"] == "error")
    assert (error["line"], error["column"], error["end_line"], error["end_column"]) == (2, 10, 2, 13)
    assert error["code"] == "KVS-shot-duration"


def test_json_related(tmp_path):
    result = run(tmp_path, 'aspect 9:16\naspect 1:1\nshot a 5s "x"\n')
    [item] = json.loads(printing.as_json(result.diagnostics))["diagnostics"]
    assert item["related"] == [{"path": item["path"], "line": 1, "column": 1, "message": "first set here"}]


def test_sarif_structure(tmp_path):
    result = run(tmp_path, 'aspect 9:16\naspect 1:1\nimage c = "https://e.com/c.png"\nshot a 2s "x"\n')
    sarif = json.loads(printing.as_sarif(result.diagnostics, "9.9.9"))
    assert sarif["version"] == "2.1.0"
    assert "sarif-2.1.0" in sarif["$schema"]
    [run_] = sarif["runs"]
    driver = run_["tool"]["driver"]
    assert driver["name"] == "klingspec" and driver["version"] == "9.9.9"
    rule_ids = [r["id"] for r in driver["rules"]]
    assert rule_ids == sorted(set(d.code for d in result.diagnostics))
    for rule in driver["rules"]:
        assert rule["shortDescription"]["text"]
        assert rule["defaultConfiguration"]["level"] in ("error", "warning", "note")
        assert rule["helpUri"].endswith(f"/docs/codes/{rule['id']}.md")
    assert len(run_["results"]) == len(result.diagnostics)
    for item, diagnostic in zip(run_["results"], result.diagnostics, strict=False):
        assert item["ruleId"] == diagnostic.code
        assert driver["rules"][item["ruleIndex"]]["id"] == item["ruleId"]
        assert item["level"] == diagnostic.severity
        region = item["locations"][0]["physicalLocation"]["region"]
        assert (region["startLine"], region["startColumn"]) == diagnostic.span.start_position
        assert (region["endLine"], region["endColumn"]) == diagnostic.span.end_position
        assert diagnostic.message in item["message"]["text"]
    dup = next(r for r in run_["results"] if r["ruleId"] == "KVS-setting-duplicate")
    assert dup["relatedLocations"][0]["physicalLocation"]["region"]["startLine"] == 1


def test_sarif_uses_forward_slashes():
    d = one('shot a 5s "@ghost"\n', name="dir\\sub\\a.kvs")
    sarif = json.loads(printing.as_sarif([d], "0"))
    assert (
        sarif["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "dir/sub/a.kvs"
    )


def test_sarif_empty():
    sarif = json.loads(printing.as_sarif([], "0"))
    assert sarif["runs"][0]["results"] == [] and sarif["runs"][0]["tool"]["driver"]["rules"] == []


# -- long lines: a window around the span ---------------------------------------------


def _snippet(rendered: str) -> tuple[str, str]:
    """(the code as shown, the caret line), both after the gutter."""
    lines = rendered.split("\n")
    code = next(line for line in lines[1:] if re.match(r"^\d+ \| ", line))
    carets = next(line for line in lines if "^" in line)
    return code[code.index("| ") + 2 :], carets[carets.index("| ") + 2 :]


def test_a_line_within_the_width_is_shown_whole_and_one_column_more_is_cut():
    text = 'shot a 5s "' + "x" * (printing.LINE_WIDTH - 19) + ' @ghost"\n'
    assert len(text.rstrip("\n")) == printing.LINE_WIDTH
    code, carets = _snippet(printing.text(one(text)))
    assert code == text.rstrip("\n") and carets.strip() == "^^^^^^"
    code, carets = _snippet(printing.text(one(text.replace("x", "xx", 1))))
    assert code.startswith("...") and code.endswith('@ghost"') and carets.strip() == "^^^^^^"


def test_a_long_line_is_cut_around_the_span_and_the_carets_follow():
    text = 'shot a 5s "' + "left " * 60 + "@ghost" + " right" * 60 + '"\n'
    code, carets = _snippet(printing.text(one(text)))
    assert code.startswith("...") and code.endswith("...")
    assert printing._width(code) <= printing.LINE_WIDTH
    first = carets.index("^")
    assert code[first : first + 6] == "@ghost" and carets[first:] == "^^^^^^"


def test_a_span_at_the_end_of_a_long_line_cuts_only_the_left():
    text = 'shot a 5s "' + "left " * 60 + '@ghost"\n'
    code, carets = _snippet(printing.text(one(text)))
    assert code.startswith("...") and code.endswith('@ghost"')
    assert code[carets.index("^") :].startswith("@ghost")


def test_a_span_longer_than_the_window_shows_its_start_and_end():
    prompt = "start " + "middle " * 80 + "end"
    text = f'shot a 5s "{prompt}"\n'
    code, carets = _snippet(printing.text(one(text, needle=prompt)))
    assert printing._width(code) <= printing.LINE_WIDTH and len(carets) <= printing.LINE_WIDTH
    first = carets.index("^")
    assert code[first:].startswith("start") and carets[first:].count("...") == 1
    cut = carets.index("...")
    assert code[cut : cut + 3] == "..." and code.rstrip('"').endswith("end")
    assert carets.rstrip().endswith("^") and len(carets.rstrip()) == len(code.rstrip('"'))


def test_a_long_line_of_wide_characters_keeps_the_carets_aligned():
    text = 'shot a 5s "' + "赤い風船が港の上を漂う。" * 12 + "@ghost が続く" + "。" * 40 + '"\n'
    code, carets = _snippet(printing.text(one(text)))
    first = carets.index("^")
    assert code.startswith("...") and printing._width(code) <= printing.LINE_WIDTH
    shown_before = next(i for i in range(len(code)) if printing._width(code[:i]) == first)
    assert code[shown_before:].startswith("@ghost")


def test_tables_are_plain_under_no_color_even_at_a_terminal(monkeypatch):
    import io

    from klingspec import printing

    monkeypatch.setenv("NO_COLOR", "1")
    console = printing.console()
    assert console.color_system is None
    console.file = io.StringIO()
    console._force_terminal = True  # as if at a terminal: still no bold, no colour
    console.print("[bold red]cost[/] $1.12")
    assert console.file.getvalue() == "cost $1.12\n"
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("TERM", "xterm-256color")
    assert printing.console().color_system is not None or not printing.console().is_terminal
