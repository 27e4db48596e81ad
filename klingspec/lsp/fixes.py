"""Quick fixes: edits that resolve a diagnostic, computed from the diagnostic itself.

Only fixes whose result is certain are offered: the did-you-mean suggestion the binder
or the template checker already made (its `help` says "did you mean `@x`?"), rounding a
fractional duration (both ways, since only the author knows which), and a `start` line
for an `end` without one (with a placeholder URI the checker will flag until filled).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from klingspec.diagnostics import Diagnostic
from klingspec.source import Span

_SUGGESTION = re.compile(r"did you mean `([^`]+)`\?")


@dataclass(frozen=True)
class Edit:
    span: Span
    new_text: str


@dataclass(frozen=True)
class Fix:
    title: str
    edits: tuple[Edit, ...]
    preferred: bool = False


def quick_fixes(diagnostic: Diagnostic) -> list[Fix]:
    """The fixes for one diagnostic (none for most codes)."""
    fixer = _FIXERS.get(diagnostic.code)
    return fixer(diagnostic) if fixer else []


def _suggestion(diagnostic: Diagnostic) -> list[Fix]:
    found = _SUGGESTION.search(diagnostic.help or "")
    if not found:
        return []
    replacement = found.group(1)
    return [
        Fix(
            f"Replace `{diagnostic.span.text}` with `{replacement}`",
            (Edit(diagnostic.span, replacement),),
            preferred=True,
        )
    ]


def _round_duration(diagnostic: Diagnostic) -> list[Fix]:
    written = diagnostic.span.text
    number = written.removesuffix("s")
    try:
        seconds = Decimal(number)
    except ArithmeticError:
        return []
    suffix = "s" if written.endswith("s") else ""
    fixes = []
    for rounding, word in ((ROUND_FLOOR, "down"), (ROUND_CEILING, "up")):
        whole = int(seconds.to_integral_value(rounding))
        if whole >= 1:
            fixes.append(Fix(f"Round {word} to {whole}{suffix or ' s'}", (Edit(diagnostic.span, f"{whole}{suffix}"),)))
    return fixes


def _add_start(diagnostic: Diagnostic) -> list[Fix]:
    span = diagnostic.span
    text = span.source.text
    line_start = text.rfind("\n", 0, span.start) + 1
    blanks = re.match(r"[ \t]*", text[line_start:])
    assert blanks is not None  # `*` matches the empty string too
    indent = blanks.group()
    newline = "\r\n" if "\r\n" in text else "\n"
    return [
        Fix(
            "Add a `start` frame above the `end`",
            (Edit(span.source.span(line_start), f'{indent}start "https://"{newline}'),),
            preferred=True,
        )
    ]


_FIXERS = {
    "KVS-name-unbound": _suggestion,
    "KVS-template-undefined": _suggestion,
    "KVS-duration-fraction": _round_duration,
    "KVS-end-without-start": _add_start,
}
