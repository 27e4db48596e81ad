"""`klingspec fmt`: one canonical layout for `.kvs` scripts.

The formatter works from the parsed script (`syntax.parse`), never from regexes over the
text, and re-emits every string literal exactly as written. It never reorders
statements: binding order numbers `@ImageN`/`@ElementN`, `use` splices declarations
where it stands, `let`s run top to bottom and shots play in order, so the statement
order is the author's. What it normalises:

- one space between tokens; `=` aligned in a run of `let`s and in a run of `image`s,
  shot names padded so the durations line up in a run of shots, `start`/`end` padded
  in a run of frames (a *run*: statements of one kind with no blank line between them);
- element blocks: `element NAME {`, two-space-indented `front`/`refs` lines whose URIs
  line up, one `refs` URI per line, continuation URIs under the first, `}` alone;
- durations always carry their `s` (`5` -> `5s`); list values as `[a, b, c]`;
- blank lines: one between statements of different kinds and around element blocks,
  at most one where the author left any between statements of one kind, none at the
  start, inside element blocks or at the end; exactly one final newline, `\\n` line
  endings, no trailing whitespace outside triple-quoted strings;
- comments: a full-line comment stays attached to what follows it (at column 0, or
  indented inside an element block); an end-of-line comment stays on its line, two
  spaces after the code, aligned with the other end-of-line comments of its paragraph
  (lines with no blank line between them); lines wider than `ALIGN_LIMIT` columns,
  the `}` of an element and the closing line of a multi-line string do not take part
  (their comment stays two spaces after the code).

The result is checked before it is returned: it must parse cleanly to the same
statements (same kinds, names, values, strings) and the same comments, so a formatter
bug raises `FormattingError` instead of changing a script.
"""

from __future__ import annotations

import bisect
import itertools
import unicodedata
from dataclasses import dataclass, replace

from klingspec import ast
from klingspec.diagnostics import Diagnostic, has_errors
from klingspec.source import Source
from klingspec.syntax import parse

INDENT = "  "
ALIGN_LIMIT = 100  # wider lines do not push the comments of their paragraph right
COMMENT_GAP = 2  # spaces between code and an end-of-line comment
_FIELD_WIDTH = len("front")
_KIND: dict[type, str] = {
    ast.Scene: "scene",
    ast.Setting: "setting",
    ast.Use: "use",
    ast.Let: "let",
    ast.Image: "image",
    ast.Element: "element",
    ast.Frame: "frame",
    ast.Shot: "shot",
}
_BLANKS = " \t\f\r\ufeff"  # what the grammar skips between tokens
_TRAILING = " \t\f\r"  # stripped at line ends (a BOM may be part of a word)


class FormattingError(RuntimeError):
    """The formatted text would not mean what the original meant: a klingspec bug."""


def format_text(text: str, name: str = "<text>") -> str | None:
    """`text` in the canonical layout, or None when it has syntax errors.

    The signature is shared with the language server (document formatting).
    """
    formatted, _ = format_source(text, name)
    return formatted


def format_source(text: str, name: str = "<text>") -> tuple[str | None, list[Diagnostic]]:
    """(formatted text or None, the syntax diagnostics that prevented formatting)."""
    source = Source(name, text)
    script, diagnostics = parse(source)
    if has_errors(diagnostics) or script.partial:
        return None, diagnostics
    formatted = _Formatter(script).render()
    _verify(script, formatted, name)
    return formatted, []


# -- layout ----------------------------------------------------------------------------


@dataclass
class _Line:
    """One output line (several physical lines when it holds a triple-quoted string)."""

    code: str
    end: int | None = None  # source offset after its last token (None: a comment line)
    comment: str | None = None  # end-of-line comment
    blank_before: bool = False
    align: bool = True  # False: a closing line (`}`, the end of a `"""` string)


@dataclass
class _Item:
    """A top-level statement or a full-line comment outside any statement."""

    start: int
    end: int
    statement: ast.Statement | ast.Scene | None = None
    comment: ast.Comment | None = None
    blank_before: bool = False


def _width(text: str) -> int:
    """Display columns of the last physical line of `text` (wide characters count 2)."""
    text = text.rsplit("\n", 1)[-1]
    width = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in "WF" else 1
    return width


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


def _kind(statement: ast.Statement | ast.Scene) -> str:
    return _KIND[type(statement)]


class _Formatter:
    def __init__(self, script: ast.Script):
        self.script = script
        self.text = script.source.text
        self.source = script.source
        elements = [s for s in script.statements if isinstance(s, ast.Element)]
        self.full_line: list[ast.Comment] = []
        self.end_of_line: list[ast.Comment] = []
        for comment in script.comments:
            line_start = self.text.rfind("\n", 0, comment.span.start) + 1
            if self.text[line_start : comment.span.start].strip(_BLANKS):
                self.end_of_line.append(comment)
            else:
                self.full_line.append(comment)
        blocks: list[ast.Element | ast.Scene] = [*elements, *(s for s in script.scenes if s.body is not None)]
        blocks += [s for scene in script.scenes for s in scene.body or () if isinstance(s, ast.Element)]
        self.inner: dict[int, list[ast.Comment]] = {id(e): [] for e in blocks}
        self.top_comments: list[ast.Comment] = []
        for comment in self.full_line:
            inside = [e for e in blocks if e.span.start < comment.span.start < e.span.end]
            owner = min(inside, key=lambda e: e.span.end - e.span.start, default=None)  # the innermost block
            if owner is None:
                self.top_comments.append(comment)
            else:
                self.inner[id(owner)].append(comment)

    # -- items, blank lines and runs ---------------------------------------------------

    def items(self) -> list[_Item]:
        items = [_Item(s.span.start, s.span.end, statement=s) for s in (*self.script.statements, *self.script.scenes)]
        items += [_Item(c.span.start, c.span.end, comment=c) for c in self.top_comments]
        items.sort(key=lambda i: i.start)
        line = self.source.position
        for before, item in itertools.pairwise(items):
            item.blank_before = line(item.start)[0] - line(max(before.end - 1, before.start))[0] > 1
        # statements of different kinds (and element blocks) are always apart
        previous: int | None = None
        for index, item in enumerate(items):
            if item.statement is None:
                continue
            if previous is not None:
                earlier = items[previous].statement
                assert earlier is not None  # `previous` indexes a statement item
                a, b = _kind(earlier), _kind(item.statement)
                between = items[previous + 1 : index + 1]
                if (a != b or a == "element") and not any(i.blank_before for i in between):
                    between[0].blank_before = True
            previous = index
        return items

    def runs(self, items: list[_Item]) -> dict[int, int]:
        """For each statement (by id) the index of the run it belongs to."""
        run_of: dict[int, int] = {}
        run, kind = -1, None
        for item in items:
            if item.blank_before:
                kind = None
            if item.statement is None:
                continue
            this = _kind(item.statement)
            if this != kind:
                run += 1
                kind = this
            run_of[id(item.statement)] = run
        return run_of

    # -- rendering ---------------------------------------------------------------------

    def render(self) -> str:
        items = self.items()
        run_of = self.runs(items)
        widths: dict[int, int] = {}
        for item in items:
            s = item.statement
            if s is None:
                continue
            key = run_of[id(s)]
            widths[key] = max(widths.get(key, 0), self.label_width(s))
        lines: list[_Line] = []
        for item in items:
            if item.comment is not None:
                lines.append(_Line(self.comment_text(item.comment), blank_before=item.blank_before))
                continue
            assert item.statement is not None  # an item is a statement or a comment
            rendered = self.statement(item.statement, widths[run_of[id(item.statement)]])
            rendered[0].blank_before = item.blank_before
            lines += rendered
        if lines:
            lines[0].blank_before = False
        self.attach(lines)
        return self.emit(lines)

    def label_width(self, s: ast.Statement | ast.Scene) -> int:
        if isinstance(s, (ast.Let, ast.Image)):
            return _width(s.name.value)
        if isinstance(s, ast.Shot):
            return _width(s.name.value) if s.name else 0
        if isinstance(s, ast.Frame):
            return len(s.kind)
        return 0

    def comment_text(self, comment: ast.Comment) -> str:
        return comment.text.rstrip(_TRAILING)

    def raw(self, text: ast.Text) -> str:
        """A string literal exactly as written (a triple-quoted one with `\\n` line breaks)."""
        written = text.span.text
        return written.replace("\r\n", "\n") if text.triple else written

    def value(self, value: ast.Value) -> str:
        if isinstance(value, ast.Text):
            return self.raw(value)
        if isinstance(value, ast.ListValue):
            return "[" + ", ".join(self.value(v) for v in value.items) + "]"
        return value.span.text

    def statement(self, s: ast.Statement | ast.Scene, width: int) -> list[_Line]:
        end = s.span.end
        if isinstance(s, ast.Scene):
            return self.scene(s)
        if isinstance(s, ast.Setting):
            value = self.value(s.value)
            # a word may start with U+FEFF, which after a space would be skipped as blank
            space = "" if value.startswith("\ufeff") else " "
            return [_Line(f"{s.key.value}{space}{value}", end)]
        if isinstance(s, ast.Use):
            return [_Line(f"use {self.raw(s.path)}", end)]
        if isinstance(s, ast.Let):
            return [_Line(f"let {_pad(s.name.value, width)} = {self.value(s.value)}", end)]
        if isinstance(s, ast.Image):
            return [_Line(f"image {_pad(s.name.value, width)} = {self.raw(s.uri)}", end)]
        if isinstance(s, ast.Frame):
            return [_Line(f"{_pad(s.kind, width)} {self.raw(s.uri)}", end)]
        if isinstance(s, ast.Shot):
            seconds = s.duration.span.text.removesuffix("s") + "s"
            name = f"{_pad(s.name.value, width)} " if s.name else ""
            return [_Line(f"shot {name}{seconds} {self.raw(s.prompt)}", end)]
        return self.element(s)

    def scene(self, s: ast.Scene) -> list[_Line]:
        """`scene NAME "FILE" [continues X [take N]]`, or its block: the scene's statements
        one a line, indented, laid out as a script's are; comments inside kept in place."""
        head = f"scene {s.name.value}"
        follows = ""
        if s.continues is not None:
            follows = f" continues {s.continues.scene.value}"
            if s.continues.take is not None:
                follows += f" take {s.continues.take.span.text}"
        if s.body is None:
            assert s.path is not None  # a scene is a file or a block
            return [_Line(f"{head} {self.raw(s.path)}{follows}", s.span.end)]
        brace = self.text.index("{", (s.continues or s.name).span.end)
        comments = tuple(c for c in self.script.comments if s.span.start < c.span.start < s.span.end)
        if not s.body and not comments:
            return [_Line(f"{head}{follows} {{}}", s.span.end)]
        lines = [_Line(f"{head}{follows} {{", brace + 1)]
        # the block laid out as a script of its own; its end-of-line comments are attached
        # with the film's, by offset, once every line is made
        inner = _Formatter(ast.Script(self.script.source, s.body, comments))
        inner.end_of_line = []
        items = inner.items()
        run_of = inner.runs(items)
        widths: dict[int, int] = {}
        for item in items:
            if item.statement is not None:
                key = run_of[id(item.statement)]
                widths[key] = max(widths.get(key, 0), inner.label_width(item.statement))
        for index, item in enumerate(items):
            if item.comment is not None:
                rendered = [_Line(INDENT + self.comment_text(item.comment))]
            else:
                assert item.statement is not None
                rendered = inner.statement(item.statement, widths[run_of[id(item.statement)]])
                rendered = [replace(line, code=_indent(line.code)) for line in rendered]
            rendered[0].blank_before = item.blank_before and index > 0
            lines += rendered
        lines.append(_Line("}", s.span.end, align=False))
        return lines

    def element(self, e: ast.Element) -> list[_Line]:
        brace = self.text.index("{", e.name.span.end)
        inside = (c for c in self.script.comments if e.span.start < c.span.start < e.span.end)
        if not e.fields and next(inside, None) is None:
            return [_Line(f"element {e.name.value} {{}}", e.span.end)]
        parts: list[tuple[int, _Line, str]] = []  # (attach point, line, indent of comments there)
        lines = [_Line(f"element {e.name.value} {{", brace + 1)]
        for field in e.fields:
            keyword = _pad(field.kind, _FIELD_WIDTH)
            for index, uri in enumerate(field.uris):
                last = index == len(field.uris) - 1
                end = uri.span.end if last else self._comma_after(uri.span.end) + 1
                code = self.raw(uri) + ("" if last else ",")
                if index == 0:
                    parts.append((field.span.start, _Line(f"{INDENT}{keyword} {code}", end), INDENT))
                else:
                    indent = INDENT + " " * (_FIELD_WIDTH + 1)
                    parts.append((uri.span.start, _Line(indent + code, end), indent))
        parts.append((e.span.end - 1, _Line("}", e.span.end, align=False), INDENT))
        comments = sorted(self.inner[id(e)], key=lambda c: c.span.start)
        points = [p for p, _, _ in parts]
        before: dict[int, list[ast.Comment]] = {}
        for comment in comments:
            index = min(bisect.bisect_right(points, comment.span.start), len(parts) - 1)
            before.setdefault(index, []).append(comment)
        for index, (_, line, indent) in enumerate(parts):
            for comment in before.get(index, ()):
                lines.append(_Line(indent + self.comment_text(comment)))
            lines.append(line)
        return lines

    def _comma_after(self, offset: int) -> int:
        index = offset
        while index < len(self.text) and self.text[index] in _BLANKS:
            index += 1
        if index >= len(self.text) or self.text[index] != ",":
            raise FormattingError(f"expected a comma at offset {index}")
        return index

    # -- comments --------------------------------------------------------------------

    def attach(self, lines: list[_Line]) -> None:
        """Put each end-of-line comment on the line of the token before it."""
        anchored = [line for line in lines if line.end is not None]
        ends = [line.end for line in anchored if line.end is not None]
        if any(a > b for a, b in itertools.pairwise(ends)):
            raise FormattingError("output lines are out of source order")
        for comment in self.end_of_line:
            index = bisect.bisect_right(ends, comment.span.start) - 1
            if index < 0:
                raise FormattingError(f"no code before the comment at offset {comment.span.start}")
            line = anchored[index]
            text = self.comment_text(comment)
            line.comment = text if line.comment is None else f"{line.comment} {text}"

    def emit(self, lines: list[_Line]) -> str:
        out: list[str] = []
        paragraphs: list[list[_Line]] = []
        for line in lines:
            if line.blank_before or not paragraphs:
                paragraphs.append([])
            paragraphs[-1].append(line)
        for number, paragraph in enumerate(paragraphs):
            if number:
                out.append("")
            aligns = [
                line.comment is not None and line.align and "\n" not in line.code and _width(line.code) <= ALIGN_LIMIT
                for line in paragraph
            ]
            column = (
                max((_width(line.code) for line, a in zip(paragraph, aligns, strict=False) if a), default=0)
                + COMMENT_GAP
            )
            for line, align in zip(paragraph, aligns, strict=False):
                code = line.code
                if line.comment is not None:
                    gap = column - _width(code) if align else COMMENT_GAP
                    code = code + " " * gap + line.comment if code else line.comment
                out.append(_strip_trailing(code))
        return "\n".join(out) + "\n" if out else ""


def _indent(code: str) -> str:
    """One level in: every physical line but those inside a triple-quoted string's body."""
    first, newline, rest = code.partition("\n")
    return INDENT + first + newline + rest


def _strip_trailing(code: str) -> str:
    """Trailing blanks go, except on lines inside a triple-quoted string (only the last
    physical line of `code` is ours)."""
    head, sep, last = code.rpartition("\n")
    return head + sep + last.rstrip(_TRAILING)


# -- verification -----------------------------------------------------------------------


def _fingerprint_value(value: ast.Value) -> tuple[object, ...]:
    if isinstance(value, ast.Text):
        content = value.value.replace("\r\n", "\n") if value.triple else value.value
        return ("text", content, value.triple)
    if isinstance(value, ast.ListValue):
        return ("list", tuple(_fingerprint_value(v) for v in value.items))
    return (type(value).__name__, value.value)


def _fingerprint(script: ast.Script) -> tuple[tuple[tuple[object, ...], ...], tuple[str, ...]]:
    out = _fingerprint_statements(script.statements)
    for scene in script.scenes:
        follows = scene.continues
        out.append(
            (
                "scene",
                scene.name.value,
                _fingerprint_value(scene.path) if scene.path is not None else None,
                (follows.scene.value, follows.take.value if follows.take else None) if follows else None,
                tuple(_fingerprint_statements(scene.body)) if scene.body is not None else None,
            )
        )
    comments = tuple(c.text.rstrip(_TRAILING) for c in script.comments)
    return tuple(out), comments


def _fingerprint_statements(statements: tuple[ast.Statement, ...]) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for s in statements:
        if isinstance(s, ast.Setting):
            out.append(("setting", s.key.value, _fingerprint_value(s.value)))
        elif isinstance(s, ast.Use):
            out.append(("use", _fingerprint_value(s.path)))
        elif isinstance(s, ast.Let):
            out.append(("let", s.name.value, _fingerprint_value(s.value)))
        elif isinstance(s, ast.Image):
            out.append(("image", s.name.value, _fingerprint_value(s.uri)))
        elif isinstance(s, ast.Element):
            out.append(
                (
                    "element",
                    s.name.value,
                    tuple((f.kind, tuple(_fingerprint_value(u) for u in f.uris)) for f in s.fields),
                )
            )
        elif isinstance(s, ast.Frame):
            out.append(("frame", s.kind, _fingerprint_value(s.uri)))
        else:
            out.append(("shot", s.name.value if s.name else None, s.duration.seconds, _fingerprint_value(s.prompt)))
    return out


def _verify(original: ast.Script, formatted: str, name: str) -> None:
    script, diagnostics = parse(Source(name, formatted))
    if diagnostics or script.partial:
        raise FormattingError(f"the formatted {name} does not parse: {diagnostics[0].message if diagnostics else ''}")
    if _fingerprint(script) != _fingerprint(original):
        raise FormattingError(f"formatting {name} would change its statements or comments")
