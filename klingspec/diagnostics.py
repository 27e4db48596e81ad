"""Diagnostics are values: a stable code, a primary span, a message and a hint.

Phases never raise on bad input; they return what they could build plus a list of
`Diagnostic`. `render.py` is the only module that turns them into text, JSON or SARIF.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from klingspec.codes import Severity, lookup
from klingspec.source import Span


@dataclass(frozen=True)
class Related:
    """A secondary location with a short label ("first declared here")."""

    span: Span
    message: str


@dataclass(frozen=True)
class Diagnostic:
    code: str
    span: Span
    message: str
    help: str | None = None
    label: str | None = None
    related: tuple[Related, ...] = ()
    severity: Severity = field(default="error")

    @classmethod
    def of(
        cls,
        code: str,
        span: Span,
        message: str,
        help: str | None = None,
        *,
        label: str | None = None,
        related: Iterable[Related] = (),
    ) -> Diagnostic:
        """Build a diagnostic whose severity comes from the code catalogue."""
        return cls(code, span, message, help, label, tuple(related), lookup(code).severity)

    @property
    def path(self) -> str:
        return self.span.path

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def sort_key(self) -> tuple[str, int, int, int, str, str]:
        rank = {"error": 0, "warning": 1, "note": 2}[self.severity]
        return (self.span.path, self.span.start, self.span.end, rank, self.code, self.message)


def sort_unique(diagnostics: Iterable[Diagnostic]) -> tuple[Diagnostic, ...]:
    """Sorted by file and position, exact repeats removed (a `use`d file checked twice)."""
    seen: set[tuple[str, int, int, int, str, str]] = set()
    unique = []
    for diagnostic in sorted(diagnostics, key=Diagnostic.sort_key):
        key = diagnostic.sort_key()
        if key not in seen:
            seen.add(key)
            unique.append(diagnostic)
    return tuple(unique)


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.is_error for d in diagnostics)
