"""Diagnostics are values: a stable code, a primary span, a message, a hint and the fixes
their producer is sure of.

Phases never raise on bad input; they return what they could build plus a list of
`Diagnostic`. `render.py` is the only module that turns them into text, JSON or SARIF.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from klingspec.codes import Severity, lookup
from klingspec.source import Span


def close_matches(word: str, candidates: Iterable[str], n: int = 1, cutoff: float = 0.6) -> list[str]:
    """The did-you-mean candidates for `word` (difflib's ratio), best first. difflib is
    imported here, on the first mistake, not by every check that has none."""
    import difflib

    return difflib.get_close_matches(word, list(candidates), n=n, cutoff=cutoff)


@dataclass(frozen=True)
class Related:
    """A secondary location with a short label ("first declared here")."""

    span: Span
    message: str


@dataclass(frozen=True)
class Suggestion:
    """A fix the phase that found the problem is sure of, as data: write `replacement`
    over `span` (an empty span inserts at its start).

    `title` says what the edit does (an editor's quick-fix menu shows it). `preferred`
    marks the one fix to apply without asking; alternatives (round down or up) are not.
    The `help` prose says the same thing to people and stays as it is.
    """

    span: Span
    replacement: str
    title: str
    preferred: bool = False

    @classmethod
    def did_you_mean(cls, span: Span, candidate: str) -> Suggestion:
        """Replace the misspelt name written at `span` with the close one the phase found."""
        return cls(span, candidate, f"Replace `{span.text}` with `{candidate}`", preferred=True)


@dataclass(frozen=True)
class Diagnostic:
    """One problem: a stable code, where, what, and how to fix it (in words and as data)."""

    code: str
    span: Span
    message: str
    help: str | None = None
    label: str | None = None
    related: tuple[Related, ...] = ()
    suggestions: tuple[Suggestion, ...] = ()
    escalated: bool = False  # a warning the project's [severity] raises to an error

    def __post_init__(self) -> None:
        lookup(self.code)  # an unknown code is a klingspec bug: fail where it is made, not where it is shown

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
        suggestions: Iterable[Suggestion] = (),
    ) -> Diagnostic:
        """Build a diagnostic (`related` and `suggestions` may be any iterable); its severity is its code's."""
        return cls(code, span, message, help, label, tuple(related), tuple(suggestions))

    @property
    def severity(self) -> Severity:
        """The code's severity in the catalogue (no diagnostic can disagree with its code),
        or "error" where the project's `[severity]` raises it (project.py)."""
        return "error" if self.escalated else lookup(self.code).severity

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
