"""Rendering diagnostics: the only module that formats one, as text, JSON or SARIF.

Text follows the compiler convention `PATH:LINE:COL: SEVERITY[CODE]: MESSAGE`, then the
source line with carets under the span, `= help:`, and `= see: klingspec explain CODE`
(JSON's `docs` field and SARIF's `helpUri` carry the page's URL instead). Carets line up under wide (CJK)
characters and tabs, since they are placed by display width, not by code points.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from klingspec.codes import CODES
from klingspec.diagnostics import Diagnostic

if TYPE_CHECKING:
    from rich.console import Console

TOOL_URI = "https://github.com/klingspec/klingspec"
_COLORS = {"error": "\x1b[1;31m", "warning": "\x1b[1;33m", "note": "\x1b[1;36m"}
_BOLD, _BLUE, _RESET = "\x1b[1m", "\x1b[1;34m", "\x1b[0m"


def docs_url(code: str) -> str | None:
    """Where the code's page is published (None for a code the catalogue lacks: a bug)."""
    return f"{TOOL_URI}/blob/main/{CODES[code].doc}" if code in CODES else None


@dataclass(frozen=True)
class TextStyle:
    """How text diagnostics look: colour, and whether the source snippet is shown."""

    color: bool = False
    snippet: bool = True


def _width(text: str, limit: int | None = None) -> int:
    """Columns `text` takes; past `limit` (if given) the count may stop early and only
    says "more than `limit`": a line may be megabytes long and only 120 columns show."""
    if text.isascii():  # O(1) in CPython; the common case counted in C
        return len(text) + 3 * text.count("\t")
    width = 0
    for ch in text:
        if ch == "\t":
            width += 4
        elif unicodedata.combining(ch):
            continue
        else:
            width += 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        if limit is not None and width > limit:
            break
    return width


_VISIBLE = {i: 0x2400 + i for i in range(32) if i not in (9,)} | {127: 0x2421}


def _visible(line: str) -> str:
    """Control characters shown as their Unicode pictures (NUL as ␀), one column each."""
    return line.translate(_VISIBLE)


def _expand(text: str) -> str:
    return text.replace("\t", "    ")


LINE_WIDTH = 120  # a source line wider than this is cut to a window around the span
_CONTEXT = 16  # columns kept on each side of a span too long for the window
_CUT = "..."


def _take_left(text: str, columns: int) -> str:
    """The longest start of `text` at most `columns` wide (a wide character that would
    straddle the edge is left out)."""
    width = 0
    for i, ch in enumerate(text):
        width += _width(ch)
        if width > columns:
            return text[:i]
    return text


def _take_right(text: str, columns: int) -> str:
    """The longest end of `text` at most `columns` wide."""
    width = 0
    for i in range(len(text) - 1, -1, -1):
        width += _width(text[i])
        if width > columns:
            return text[i + 1 :]
    return text


def _fit(prefix: str, marked: str, suffix: str) -> tuple[str, int, str]:
    """(the line as shown, the columns before the carets, the carets) for a source line
    split at the span. A line within LINE_WIDTH is shown whole; a wider one is cut to a
    window around the span, `...` marking each cut; a span too long for the window shows
    its start and its end, with `...` between them in the line and in the carets."""
    # exact up to twice the line width: every comparison below is with less than that
    left, middle, right = (_width(part, 2 * LINE_WIDTH) for part in (prefix, marked, suffix))
    if left + middle + right <= LINE_WIDTH:
        return prefix + marked + suffix, left, "^" * max(1, middle)
    if middle > LINE_WIDTH - 2 * _CONTEXT - 2 * len(_CUT):
        end = (LINE_WIDTH - 2 * _CONTEXT - 3 * len(_CUT)) // 2
        head, tail = _take_left(marked, end), _take_right(marked, end)
        before = prefix if left <= _CONTEXT else _CUT + _take_right(prefix, _CONTEXT)
        after = suffix if right <= _CONTEXT else _take_left(suffix, _CONTEXT) + _CUT
        carets = "^" * _width(head) + _CUT + "^" * _width(tail)
        return before + head + _CUT + tail + after, _width(before), carets
    room = LINE_WIDTH - middle - 2 * len(_CUT)
    left_room = min(left, max(room // 2, room - right))
    before = prefix if left <= left_room else _CUT + _take_right(prefix, left_room)
    after_room = LINE_WIDTH - _width(before) - middle - len(_CUT)
    after = suffix if right <= after_room + len(_CUT) else _take_left(suffix, after_room) + _CUT
    return before + marked + after, _width(before), "^" * max(1, middle)


def location(diagnostic: Diagnostic) -> tuple[int, int, int, int]:
    line, column = diagnostic.span.start_position
    end_line, end_column = diagnostic.span.end_position
    return line, column, end_line, end_column


def text(diagnostic: Diagnostic, style: TextStyle = TextStyle()) -> str:
    """One diagnostic as text: the greppable header, the snippet, related notes and help."""
    c = (lambda code, s: f"{code}{s}{_RESET}") if style.color else (lambda code, s: s)
    line, column, end_line, end_column = location(diagnostic)
    severity = diagnostic.severity
    header = (
        f"{c(_BOLD, f'{diagnostic.path}:{line}:{column}:')} "
        f"{c(_COLORS[severity], f'{severity}[{diagnostic.code}]')}: {c(_BOLD, diagnostic.message)}"
    )
    out = [header]
    source = diagnostic.span.source
    if style.snippet and source.text:
        gutter = len(str(line))
        whole = source.line_text(line)
        start = column - 1
        stop = max(end_column - 1 if end_line == line else len(whole), start)
        # Only a window around the span can show (LINE_WIDTH columns); the rest of a line
        # that may be megabytes long (a minified --vars file) is not even copied.
        keep = 4 * LINE_WIDTH
        prefix, marked, suffix = (
            _expand(_visible(part))
            for part in (whole[max(0, start - keep) : start], whole[start:stop], whole[stop : stop + keep])
        )
        shown, pad, carets = _fit(prefix, marked, suffix)
        label = f" {diagnostic.label}" if diagnostic.label else ""
        out.append(c(_BLUE, f"{' ' * gutter} |"))
        out.append(c(_BLUE, f"{line} |") + " " + shown)
        out.append(c(_BLUE, f"{' ' * gutter} |") + " " + " " * pad + c(_COLORS[severity], carets + label))
        for related in diagnostic.related:
            r_line, r_col = related.span.start_position
            out.append(f"{' ' * gutter} = note: {related.message} at {related.span.path}:{r_line}:{r_col}")
        if diagnostic.help:
            for i, help_line in enumerate(diagnostic.help.split("\n")):
                out.append(f"{' ' * gutter} = help: {help_line}" if i == 0 else f"{' ' * gutter}         {help_line}")
        if diagnostic.code in CODES:
            out.append(f"{' ' * gutter} = see: klingspec explain {diagnostic.code}")
    else:
        for related in diagnostic.related:
            r_line, r_col = related.span.start_position
            out.append(f"  = note: {related.message} at {related.span.path}:{r_line}:{r_col}")
        if diagnostic.help:
            out.append(f"  = help: {diagnostic.help}")
        if diagnostic.code in CODES:
            out.append(f"  = see: klingspec explain {diagnostic.code}")
    return "\n".join(out)


def texts(diagnostics: Iterable[Diagnostic], style: TextStyle = TextStyle()) -> str:
    return "".join(text(d, style) + "\n\n" for d in diagnostics)


def summary(errors: int, warnings: int, files: int) -> str:
    def n(count: int, word: str) -> str:
        return f"{count} {word}{'' if count == 1 else 's'}"

    return f"{n(files, 'file')} checked: {n(errors, 'error')}, {n(warnings, 'warning')}"


def as_dict(diagnostic: Diagnostic) -> dict[str, Any]:
    line, column, end_line, end_column = location(diagnostic)
    out = {
        "path": diagnostic.path,
        "line": line,
        "column": column,
        "end_line": end_line,
        "end_column": end_column,
        "severity": diagnostic.severity,
        "code": diagnostic.code,
        "message": diagnostic.message,
        "help": diagnostic.help,
        "docs": docs_url(diagnostic.code),
    }
    if diagnostic.related:
        out["related"] = [
            {
                "path": r.span.path,
                "line": r.span.start_position[0],
                "column": r.span.start_position[1],
                "message": r.message,
            }
            for r in diagnostic.related
        ]
    return out


def as_json(diagnostics: Sequence[Diagnostic]) -> str:
    """The shape docs/cli.md gives: {"diagnostics": [...], "errors": N, "warnings": N}."""
    import json

    payload = {
        "diagnostics": [as_dict(d) for d in diagnostics],
        "errors": sum(d.severity == "error" for d in diagnostics),
        "warnings": sum(d.severity == "warning" for d in diagnostics),
    }
    return json.dumps(payload, indent=2, ensure_ascii=False) + "\n"


_SARIF_LEVEL = {"error": "error", "warning": "warning", "note": "note"}


def as_sarif(diagnostics: Sequence[Diagnostic], version: str) -> str:
    """SARIF 2.1.0, one run, the rules that fired described from the code catalogue."""
    import json

    used = sorted({d.code for d in diagnostics})
    rules = [
        {
            "id": code,
            "name": code.removeprefix("KVS-"),
            "shortDescription": {"text": CODES[code].title},
            "helpUri": docs_url(code),
            "defaultConfiguration": {"level": _SARIF_LEVEL[CODES[code].severity]},
        }
        for code in used
    ]
    results = []
    for d in diagnostics:
        line, column, end_line, end_column = location(d)
        message = d.message + (f"\nhelp: {d.help}" if d.help else "")
        results.append(
            {
                "ruleId": d.code,
                "ruleIndex": used.index(d.code),
                "level": _SARIF_LEVEL[d.severity],
                "message": {"text": message},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": d.path.replace("\\", "/")},
                            "region": {
                                "startLine": line,
                                "startColumn": column,
                                "endLine": end_line,
                                "endColumn": end_column,
                            },
                        }
                    }
                ],
                "relatedLocations": [
                    {
                        "id": i,
                        "message": {"text": r.message},
                        "physicalLocation": {
                            "artifactLocation": {"uri": r.span.path.replace("\\", "/")},
                            "region": {"startLine": r.span.start_position[0], "startColumn": r.span.start_position[1]},
                        },
                    }
                    for i, r in enumerate(d.related)
                ],
            }
        )
    sarif = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {"name": "klingspec", "version": version, "informationUri": TOOL_URI, "rules": rules}
                },
                "results": results,
            }
        ],
    }
    return json.dumps(sarif, indent=2, ensure_ascii=False) + "\n"


def console(stderr: bool = False) -> Console:
    """The rich console every table and view prints through: plain (no colour, no bold)
    when NO_COLOR is set, whatever the terminal; rich itself already drops styles when the
    output is no terminal. rich is imported here, by the commands that draw a table, never
    on `check`'s path."""
    import os

    from rich.console import Console

    plain = "NO_COLOR" in os.environ or os.environ.get("TERM") == "dumb"
    return Console(stderr=stderr, highlight=False, color_system=None if plain else "auto")
