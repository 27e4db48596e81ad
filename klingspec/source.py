"""Source texts and spans: the only place where offsets become lines and columns.

Offsets are the truth. A `Span` is a half-open range of character offsets into one
`Source`; line and column are derived, 1-based, for people. The language server converts
to 0-based UTF-16 itself (`server.py`); nothing else counts columns.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from functools import cached_property


@dataclass(frozen=True, eq=False)
class Source:
    """One script file's text. Compared by identity: two loads are two sources."""

    name: str
    text: str

    @cached_property
    def line_starts(self) -> tuple[int, ...]:
        starts = [0]
        find = self.text.find
        pos = find("\n")
        while pos != -1:
            starts.append(pos + 1)
            pos = find("\n", pos + 1)
        return tuple(starts)

    def position(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a character offset; columns count code points."""
        offset = max(0, min(offset, len(self.text)))
        index = bisect.bisect_right(self.line_starts, offset) - 1
        return index + 1, offset - self.line_starts[index] + 1

    def offset(self, line: int, column: int) -> int:
        """Inverse of `position` (1-based in, clamped to the text)."""
        starts = self.line_starts
        line = max(1, min(line, len(starts)))
        return min(starts[line - 1] + max(column, 1) - 1, len(self.text))

    def line_text(self, line: int) -> str:
        """The text of a 1-based line, without its line break."""
        starts = self.line_starts
        start = starts[line - 1]
        end = starts[line] - 1 if line < len(starts) else len(self.text)
        return self.text[start:end].rstrip("\r")

    def span(self, start: int, end: int | None = None) -> Span:
        return Span(self, start, start if end is None else end)

    def whole(self) -> Span:
        return Span(self, 0, len(self.text))


@dataclass(frozen=True)
class Span:
    """A half-open range [start, end) of offsets in `source`. Invariant: start <= end."""

    source: Source = field(repr=False)
    start: int
    end: int

    @property
    def path(self) -> str:
        return self.source.name

    @property
    def text(self) -> str:
        return self.source.text[self.start : self.end]

    @property
    def start_position(self) -> tuple[int, int]:
        return self.source.position(self.start)

    @property
    def end_position(self) -> tuple[int, int]:
        return self.source.position(self.end)

    def sub(self, start: int, end: int) -> Span:
        """A span relative to this one's start (clamped inside it)."""
        lo = min(self.start + max(start, 0), self.end)
        hi = min(self.start + max(end, start, 0), self.end)
        return Span(self.source, lo, hi)

    def cover(self, other: Span) -> Span:
        return Span(self.source, min(self.start, other.start), max(self.end, other.end))
