"""Frozen dataclasses for a parsed script: one class per grammar rule, each with a span.

Names follow the grammar (rule `shot` -> `Shot`), so the grammar, the transformer in
`syntax.py` and the phases after it share one vocabulary.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

from klingspec.source import Source, Span

# `\{` and `\}` are literal braces that templating must not see: they travel through
# Jinja as these private-use characters and become braces again afterwards.
OPEN_BRACE, CLOSE_BRACE = "\ue000", "\ue001"
_RESTORE = str.maketrans({OPEN_BRACE: "{", CLOSE_BRACE: "}"})


def restore_braces(value: str) -> str:
    return value.translate(_RESTORE)


@dataclass(frozen=True, eq=False)
class Text:
    """A string literal. `value` is its content with escapes resolved, before templating.

    `indices` and `offsets` map a position inside the expanded-from text back to the
    script exactly: `value[indices[k]]` is at source `offsets[k]`, and the characters
    after it follow one for one up to the next anchor. There is one anchor at the start
    and one on each side of an escape, not one per character, kept in machine-integer
    arrays: a megabyte-long literal would otherwise hold a Python int per character (36
    bytes each). Compared by identity: later phases key their results by the literal
    they came from.
    """

    value: str
    span: Span
    indices: array[int]
    offsets: array[int]
    triple: bool = False

    def offset(self, index: int) -> int:
        """The source offset of `value[index]` (`len(value)` for the end)."""
        k = bisect_right(self.indices, index) - 1
        return self.offsets[k] + index - self.indices[k]

    def span_of(self, start: int, end: int) -> Span:
        """The script span of `value[start:end]`."""
        n = len(self.value)
        start = max(0, min(start, n))
        end = max(start, min(end, n))
        return Span(self.span.source, self.offset(start), self.offset(end))

    @property
    def literal(self) -> str:
        """The content as written, escapes resolved, templates not expanded."""
        return restore_braces(self.value)

    @property
    def content_span(self) -> Span:
        return self.span_of(0, len(self.value))


@dataclass(frozen=True)
class Word:
    """A bare word value, such as `9:16`, `on` or a model id."""

    value: str
    span: Span


@dataclass(frozen=True)
class Integer:
    """An integer value, such as `generations 2`."""

    value: int
    span: Span


@dataclass(frozen=True)
class Float:
    """A number with a fraction, such as `let speed = 1.5` (a float to templates)."""

    value: float
    span: Span


@dataclass(frozen=True)
class Boolean:
    """`on`/`off` (or `true`/`false`) as a value."""

    value: bool
    span: Span


@dataclass(frozen=True)
class ListValue:
    """A comma-separated list of values."""

    items: tuple[Value, ...]
    span: Span


Value = Text | Word | Integer | Float | Boolean | ListValue


@dataclass(frozen=True)
class Name:
    """A name as written: a binding, a `let`, a shot or a setting key."""

    value: str
    span: Span


@dataclass(frozen=True)
class Setting:
    """`KEY VALUE`: a script-wide setting such as `aspect 9:16`."""

    key: Name
    value: Text | Word
    span: Span


@dataclass(frozen=True)
class Use:
    """`use "FILE"`: take the declarations of another script."""

    path: Text
    span: Span


@dataclass(frozen=True)
class Let:
    """`let NAME = VALUE`: a template variable."""

    name: Name
    value: Value
    span: Span


@dataclass(frozen=True)
class Image:
    """`image NAME = "URI"`: a reference image, sent as `@ImageN`."""

    name: Name
    uri: Text
    span: Span


@dataclass(frozen=True)
class ElementField:
    """`front URI` or `refs URI, URI ...` inside an element block."""

    kind: str
    uris: tuple[Text, ...]
    span: Span


@dataclass(frozen=True)
class Element:
    """`element NAME { front ..., refs ... }`: a character or object, sent as `@ElementN`."""

    name: Name
    fields: tuple[ElementField, ...]
    span: Span

    def all(self, kind: str) -> tuple[ElementField, ...]:
        return tuple(f for f in self.fields if f.kind == kind)


@dataclass(frozen=True)
class Frame:
    """`start URI` (first frame) or `end URI` (last frame)."""

    kind: str
    uri: Text
    span: Span


@dataclass(frozen=True)
class Duration:
    """A shot length as written (`6s`, `6`, `2.5s`); checked to be whole later."""

    seconds: Decimal
    span: Span


@dataclass(frozen=True)
class Shot:
    """`shot [NAME] DURATION "PROMPT"`: one shot of the video."""

    name: Name | None
    duration: Duration
    prompt: Text
    span: Span

    @property
    def label(self) -> str:
        return self.name.value if self.name else f"shot at line {self.span.start_position[0]}"


Statement = Setting | Use | Let | Image | Element | Frame | Shot
_S = TypeVar("_S", bound=Statement)


@dataclass(frozen=True)
class Continues:
    """`continues NAME [take N]`: the scene starts on the last frame of an earlier one
    (of its take N; the first when not given)."""

    scene: Name
    take: Integer | None
    span: Span


@dataclass(frozen=True)
class Scene:
    """`scene NAME "FILE" [continues ...]`, or `scene NAME [continues ...] { ... }` with
    the statements of a scene script written in place: one scene of a film."""

    name: Name
    path: Text | None  # a scene script of its own
    body: tuple[Statement, ...] | None  # or the scene written in the film
    continues: Continues | None
    span: Span


@dataclass(frozen=True)
class Comment:
    """A `#` comment, kept for the formatter."""

    text: str
    span: Span


@dataclass(frozen=True)
class Script:
    """One parsed file: its statements in order, and its comments (kept for `fmt`)."""

    source: Source
    statements: tuple[Statement, ...]
    comments: tuple[Comment, ...] = ()
    partial: bool = False  # syntax errors: some statements were skipped
    scenes: tuple[Scene, ...] = ()  # a film's scenes (then it should hold nothing else)

    @property
    def film(self) -> bool:
        return bool(self.scenes)

    def of(self, kind: type[_S]) -> tuple[_S, ...]:
        return tuple(s for s in self.statements if isinstance(s, kind))


def template_texts(statement: Statement) -> Iterator[Text]:
    """Every string literal of a statement that templating expands (all but `use` paths)."""
    if isinstance(statement, Setting) and isinstance(statement.value, Text):
        yield statement.value
    elif isinstance(statement, (Image, Frame)):
        yield statement.uri
    elif isinstance(statement, Element):
        for field in statement.fields:
            yield from field.uris
    elif isinstance(statement, Shot):
        yield statement.prompt
    elif isinstance(statement, Let):
        yield from _value_texts(statement.value)


def _value_texts(value: Value) -> Iterator[Text]:
    if isinstance(value, Text):
        yield value
    elif isinstance(value, ListValue):
        for item in value.items:
            yield from _value_texts(item)
