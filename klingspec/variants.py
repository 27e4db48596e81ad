"""Variant batches: one script, one row of a vars table per render (`--vars-table FILE`).

A table is CSV (a header row of `let` names, then one row per variant) or JSON Lines (one
object per line). Each row becomes the template variables of one pipeline run, as a
`--vars` file's would, between the `--vars` files and the `--var` options (so a `--var`
still wins). Every cell keeps its place in the table as a span: a row whose value is of
the wrong kind, or a column no `let` declares, is reported at the table's own line and
column, and the message names the row and the column.

CSV cells are text and are read as the type of the `let` they set, as `--var` values are
(`true`, `3`, `2.5`); JSON Lines values keep their JSON types and must match, as a vars
file's do. An empty cell sets nothing: the `let`'s default stands.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from klingspec.diagnostics import Diagnostic, Related
from klingspec.loading import Reader, Var, decode, read_bytes
from klingspec.source import Source, Span

if TYPE_CHECKING:
    from klingspec.pipeline import Result

MAX_ROWS = 1000  # a batch is paid per row: more than this is a mistake, not a plan
_NAME = re.compile(r"[^\W\d]\w*\Z")


@dataclass(frozen=True)
class Variant:
    """One row: its number (1 = the first row of values), a label for people, and the
    variables it sets, each spanning its cell."""

    row: int
    variables: tuple[Var, ...]
    span: Span  # the row's line in the table

    @property
    def label(self) -> str:
        return f"row {self.row}"


def annotate(results: list[Result], variants: list[Variant]) -> list[Result]:
    """The results of one script's rows, in row order, each diagnostic about the script
    noting the row it is of. A diagnostic every row has (a syntax error, a shot too long
    whatever the values) does not depend on the values: it gets no note, so it is printed
    once (`cli.options.distinct`), yet every row still has it (and is not renderable)."""

    def key(d: Diagnostic) -> tuple[str, str, int, int, str]:
        return (d.code, d.span.source.name, d.span.start, d.span.end, d.message)

    common = set.intersection(*({key(d) for d in r.diagnostics} for r in results)) if results else set()
    annotated = []
    for result, variant in zip(results, variants, strict=True):
        note = Related(variant.span, f"with the values of {variant.label} of {variant.span.source.name}")
        diagnostics = tuple(
            d
            if key(d) in common or variant.span.source.name in {d.span.path, *(r.span.path for r in d.related)}
            else replace(d, related=(*d.related, note))
            for d in result.diagnostics
        )
        annotated.append(replace(result, diagnostics=diagnostics))
    return annotated


def read_table(path: str, reader: Reader = read_bytes) -> tuple[list[Variant], list[Diagnostic]]:
    """The variants of a table, or the reasons it cannot be used (then no variants)."""
    try:
        data = reader(path)
    except OSError as error:
        return [], [_problem(Source(path, ""), 0, 0, f"cannot read vars table {path}: {error.strerror or error}")]
    source, problems = decode(path, data)
    if problems:
        return [], problems
    if path.lower().endswith((".jsonl", ".ndjson")):
        variants, problems = _json_lines(path, source)
    else:
        variants, problems = _csv(path, source)
    if not problems and not variants:
        problems = [_problem(source, 0, 0, f"{path} has no rows: nothing to render")]
    if not problems and len(variants) > MAX_ROWS:
        problems = [_problem(source, 0, 0, f"{path} has {len(variants)} rows; a batch holds at most {MAX_ROWS}")]
    return ([] if problems else variants), problems


@dataclass(frozen=True)
class _Cell:
    text: str
    start: int  # offsets of the value in the file (inside the quotes of a quoted cell)
    end: int


def _records(text: str) -> Iterator[tuple[int, int, list[_Cell]]]:
    """CSV records as RFC 4180 reads them, with where each starts and ends and its cells'
    offsets: quoted cells may hold commas, newlines and doubled quotes; records end at LF
    or CRLF only. An unquoted cell is taken without the spaces around it."""
    i, n = 0, len(text)
    while i < n:
        start = i
        cells: list[_Cell] = []
        while True:
            while i < n and text[i] in " \t":
                i += 1
            if i < n and text[i] == '"':
                i += 1
                value, cell_start = [], i
                while i < n:
                    if text[i] == '"' and text[i + 1 : i + 2] == '"':
                        value.append('"')
                        i += 2
                    elif text[i] == '"':
                        break
                    else:
                        value.append(text[i])
                        i += 1
                cells.append(_Cell("".join(value), cell_start, i))
                i += 1  # the closing quote
                while i < n and text[i] not in ",\r\n":
                    i += 1  # anything after a closing quote: not CSV, and ignored
            else:
                cell_start = i
                while i < n and text[i] not in ",\r\n":
                    i += 1
                raw = text[cell_start:i]
                lead = len(raw) - len(raw.lstrip(" \t"))
                value_text = raw.strip(" \t")
                cells.append(_Cell(value_text, cell_start + lead, cell_start + lead + len(value_text)))
            if i < n and text[i] == ",":
                i += 1
                continue
            end = i
            if text.startswith("\r\n", i):
                i += 2
            elif i < n:
                i += 1
            yield start, end, cells
            break


def _csv(path: str, source: Source) -> tuple[list[Variant], list[Diagnostic]]:
    records = [r for r in _records(source.text) if any(c.text for c in r[2]) or len(r[2]) > 1]
    if not records:
        return [], []
    _, _, header = records[0]
    problems = []
    names: list[str] = []
    for cell in header:
        if not _NAME.match(cell.text):
            message = f"column `{cell.text}` of {path} is not a `let` name"
            problems.append(_problem(source, cell.start, max(1, cell.end - cell.start), message))
        elif cell.text in names:
            problems.append(
                _problem(source, cell.start, cell.end - cell.start, f"column `{cell.text}` appears twice in {path}")
            )
        names.append(cell.text)
    if problems:
        return [], problems
    variants = []
    for row, (start, end, cells) in enumerate(records[1:], start=1):
        if len(cells) != len(names):
            problems.append(
                _problem(
                    source,
                    start,
                    max(1, end - start),
                    f"row {row} of {path} has {len(cells)} cell{'s' if len(cells) != 1 else ''}; "
                    f"the header names {len(names)}",
                )
            )
            continue
        found = []
        for name, cell in zip(names, cells, strict=True):
            if cell.text == "":
                continue  # the `let`'s default stands
            span = source.span(cell.start, max(cell.end, cell.start + 1))
            found.append(Var(name, cell.text, span, f"{path} row {row}", as_text=True))
        variants.append(Variant(row, tuple(found), source.span(start, max(end, start + 1))))
    return variants, problems


def _json_lines(path: str, source: Source) -> tuple[list[Variant], list[Diagnostic]]:
    import json

    variants, problems = [], []
    row = 0
    offset = 0
    for line in source.text.split("\n"):
        start, offset = offset, offset + len(line) + 1
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        row += 1
        try:
            values = json.loads(line)
        except json.JSONDecodeError as error:
            problems.append(_problem(source, start + error.pos, 1, f"row {row} of {path}: {error.msg}"))
            continue
        if not isinstance(values, dict):
            message = f"row {row} of {path} is not an object"
            problems.append(_problem(source, start, len(line.rstrip()), message))
            continue
        found = []
        for name, value in values.items():
            at, length = _key_place(line, name)
            if not _NAME.match(name):
                message = f"`{name}` in row {row} is not a `let` name"
                problems.append(_problem(source, start + at, max(1, len(name)), message))
                continue
            span = source.span(start + at, start + at + length)
            found.append(Var(name, value, span, f"{path} row {row}"))
        variants.append(Variant(row, tuple(found), source.span(start, start + max(1, len(line)))))
    return variants, problems


def _key_place(line: str, name: str) -> tuple[int, int]:
    """Where the key `name` is written in a JSON object's line, and its length (a key, not
    a value equal to it: the one followed by `:`), however it is escaped; the line's start
    when not found."""
    import json

    for written in (json.dumps(name, ensure_ascii=False), json.dumps(name)):
        found = re.search(re.escape(written) + r"\s*:", line)
        if found:
            return found.start(), len(written)
    return 0, 1


def _problem(source: Source, offset: int, length: int, message: str) -> Diagnostic:
    return Diagnostic.of(
        "KVS-vars-table",
        source.span(offset, offset + length),
        message,
        "a vars table is CSV (a header of `let` names, then one row per variant) or JSON Lines "
        "(.jsonl: one object per line)",
    )
