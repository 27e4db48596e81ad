"""Inline allowances: `# kvs: allow(CODE, ...)` on a line, or alone on the line above,
silences those warnings there (as `# noqa` does for ruff).

Only warnings (and notes) can be allowed: an error is something the API would refuse or
charge for wrongly, and silencing it would send the request anyway. An allowance that
names an error, an unknown code, or a warning that is not there is itself reported, so a
stale one does not hide the next real problem.

The comments come from the parser (`ast.Script.comments`, kept for `fmt`), so a `#`
inside a string is never read as one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from klingspec import ast
from klingspec.codes import CODES
from klingspec.diagnostics import Diagnostic
from klingspec.source import Span

_ALLOW = re.compile(r"#\s*kvs:\s*allow\(([^)]*)\)")


@dataclass(frozen=True)
class Allowance:
    """One `allow(...)` comment: the codes it names and the lines it covers."""

    span: Span  # the comment
    codes: tuple[str, ...]
    lines: tuple[int, ...]  # 1-based: its own line, and the next one when it stands alone


def allowances(script: ast.Script) -> list[Allowance]:
    """The `allow(...)` comments of one parsed file (the parser keeps every comment)."""
    found: list[Allowance] = []
    text = script.source.text
    for comment in script.comments:
        match = _ALLOW.match(comment.text)
        if match is None:
            continue
        line = comment.span.start_position[0]
        line_start = text.rfind("\n", 0, comment.span.start) + 1
        alone = not text[line_start : comment.span.start].strip()
        codes = tuple(c.strip() for c in match.group(1).split(",") if c.strip())
        found.append(Allowance(comment.span, codes, (line, line + 1) if alone else (line,)))
    return found


def apply(diagnostics: Sequence[Diagnostic], scripts: Iterable[ast.Script]) -> list[Diagnostic]:
    """`diagnostics` without the allowed warnings, plus one `KVS-allow` for each allowance
    that names an error, an unknown code, or nothing that was there."""
    every = [a for script in scripts for a in allowances(script)]
    if not every:
        return list(diagnostics)
    used: set[tuple[int, str]] = set()
    raised: set[tuple[int, str]] = set()  # named, there, but an error (the project raised it)
    kept: list[Diagnostic] = []
    for diagnostic in diagnostics:
        line = diagnostic.span.start_position[0]
        covering = [
            (i, diagnostic.code)
            for i, a in enumerate(every)
            if a.span.path == diagnostic.span.path and line in a.lines and diagnostic.code in a.codes
        ]
        if covering and diagnostic.severity != "error":
            used.add(covering[0])
            continue
        raised.update(covering)
        kept.append(diagnostic)
    for i, allowance in enumerate(every):
        for code in allowance.codes:
            problem = _problem(code, (i, code) in used, (i, code) in raised)
            if problem is not None:
                kept.append(Diagnostic.of("KVS-allow", allowance.span, *problem))
    return kept


def _problem(code: str, used: bool, raised: bool) -> tuple[str, str] | None:
    known = CODES.get(code)
    if known is None:
        return f"`{code}` is not a klingspec code", "`klingspec check` prints each problem's code in brackets"
    if raised and not used and known.severity != "error":
        return (
            f"`{code}` is an error here (the project file's [severity] raises it) and cannot be allowed",
            "fix the line, or change [severity] in the project file",
        )
    if known.severity == "error":
        return (
            f"`{code}` is an error and cannot be allowed: the API would refuse the request",
            "fix the script instead",
        )
    if not used:
        return f"nothing here raises `{code}`: this allowance is stale", "remove it"
    return None
