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
    whatever the values) does not depend on the values: it is reported once, with the
    first row, and without a note."""

    def key(d: Diagnostic) -> tuple[str, str, int, int, str]:
        return (d.code, d.span.source.name, d.span.start, d.span.end, d.message)

    common = set.intersection(*({key(d) for d in r.diagnostics} for r in results)) if results else set()
    annotated = []
    for i, (result, variant) in enumerate(zip(results, variants, strict=True)):
        note = Related(variant.span, f"with the values of {variant.label} of {variant.span.source.name}")
        diagnostics = tuple(
            d
            if key(d) in common or variant.span.source.name in {d.span.path, *(r.span.path for r in d.related)}
            else replace(d, related=(*d.related, note))
            for d in result.diagnostics
            if i == 0 or key(d) not in common
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
    lines = source.text.splitlines(keepends=True)
    if path.lower().endswith((".jsonl", ".ndjson")):
        variants, problems = _json_lines(path, source, lines)
    else:
        variants, problems = _csv(path, source, lines)
    if not problems and not variants:
        problems = [_problem(source, 0, 0, f"{path} has no rows: nothing to render")]
    if not problems and len(variants) > MAX_ROWS:
        problems = [_problem(source, 0, 0, f"{path} has {len(variants)} rows; a batch holds at most {MAX_ROWS}")]
    return ([] if problems else variants), problems


def _csv(path: str, source: Source, lines: list[str]) -> tuple[list[Variant], list[Diagnostic]]:
    import csv

    starts = _line_starts(lines)
    rows = [(number, line) for number, line in enumerate(lines) if line.strip()]
    if not rows:
        return [], []
    header_number, header_line = rows[0]
    header = next(csv.reader([header_line]))
    problems = []
    columns: list[tuple[str, int]] = []  # name, offset of its header cell
    for name, column in zip(header, _cell_columns(header_line, len(header)), strict=True):
        name = name.strip()
        offset = starts[header_number] + column
        if not _NAME.match(name):
            problems.append(_problem(source, offset, len(name) or 1, f"column `{name}` of {path} is not a `let` name"))
        elif name in (c for c, _ in columns):
            problems.append(_problem(source, offset, len(name), f"column `{name}` appears twice in {path}"))
        columns.append((name, offset))
    if problems:
        return [], problems
    variants = []
    for row, (number, line) in enumerate(rows[1:], start=1):
        cells = next(csv.reader([line]))
        if len(cells) != len(columns):
            problems.append(
                _problem(
                    source,
                    starts[number],
                    len(line.rstrip("\r\n")) or 1,
                    f"row {row} of {path} has {len(cells)} cell{'s' if len(cells) != 1 else ''}; "
                    f"the header names {len(columns)}",
                )
            )
            continue
        found = []
        for (name, _), cell, column in zip(columns, cells, _cell_columns(line, len(cells)), strict=True):
            if cell == "":
                continue  # the `let`'s default stands
            span = source.span(starts[number] + column, starts[number] + column + max(1, len(cell)))
            found.append(Var(name, cell, span, f"{path} row {row}", as_text=True))
        variants.append(Variant(row, tuple(found), _line_span(source, starts[number], line)))
    return variants, problems


def _json_lines(path: str, source: Source, lines: list[str]) -> tuple[list[Variant], list[Diagnostic]]:
    import json

    starts = _line_starts(lines)
    variants, problems = [], []
    row = 0
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        row += 1
        try:
            values = json.loads(line)
        except json.JSONDecodeError as error:
            problems.append(_problem(source, starts[number] + error.pos, 1, f"row {row} of {path}: {error.msg}"))
            continue
        if not isinstance(values, dict):
            message = f"row {row} of {path} is not an object"
            problems.append(_problem(source, starts[number], len(line.rstrip()), message))
            continue
        found = []
        for name, value in values.items():
            at = line.find(json.dumps(name))
            offset = starts[number] + max(at, 0)
            if not _NAME.match(name):
                problems.append(_problem(source, offset, len(name) + 2, f"`{name}` in row {row} is not a `let` name"))
                continue
            found.append(Var(name, value, source.span(offset, offset + len(name) + 2), f"{path} row {row}"))
        variants.append(Variant(row, tuple(found), _line_span(source, starts[number], line)))
    return variants, problems


def _line_span(source: Source, start: int, line: str) -> Span:
    return source.span(start, start + max(1, len(line.rstrip("\r\n"))))


def _line_starts(lines: list[str]) -> list[int]:
    starts, offset = [], 0
    for line in lines:
        starts.append(offset)
        offset += len(line)
    return starts


def _cell_columns(line: str, count: int) -> list[int]:
    """Where each of a CSV line's `count` cells starts (inside its quotes, if quoted)."""
    columns, position, quoted = [0], 0, False
    while position < len(line) and len(columns) < count:
        char = line[position]
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            columns.append(position + 1)
        position += 1
    columns += [len(line)] * (count - len(columns))
    return [c + 1 if line[c : c + 1] == '"' else c for c in columns]


def _problem(source: Source, offset: int, length: int, message: str) -> Diagnostic:
    return Diagnostic.of(
        "KVS-vars-table",
        source.span(offset, offset + length),
        message,
        "a vars table is CSV (a header of `let` names, then one row per variant) or JSON Lines "
        "(.jsonl: one object per line)",
    )
