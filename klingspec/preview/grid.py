"""The variants grid of a storyboard (`preview --vars-table`): one row per variant of the
script, with the values it sets, its cost and request hash, and its takes from the ledger
side by side (rows x takes).

The takes come from `takes.read` (every version of the script the ledger holds); a row's
takes are those of the version whose request hash is the row's own, so a row rendered
before shows its videos and one never rendered says so.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from klingspec import pricing

if TYPE_CHECKING:
    from klingspec.pipeline import Result
    from klingspec.preview.takes import Take, Takes
    from klingspec.variants import Variant


@dataclass(frozen=True)
class Value:
    name: str
    text: str  # as the table gives it: a CSV cell, or JSON for a JSON Lines value that is not text


@dataclass(frozen=True)
class VariantRow:
    label: str  # `row 3`
    row: int
    values: tuple[Value, ...]
    cost: str  # `pricing.usd_quote` of the row's estimate, or why there is none
    request_hash: str | None  # None: the row has errors
    errors: int
    takes: tuple[Take, ...]
    same_as: str | None = None  # an earlier row with the very same request: rendered (and paid) once


@dataclass(frozen=True)
class Grid:
    table: str
    rows: tuple[VariantRow, ...]
    total: str  # the rows' costs added (`pricing.add`), worded by `pricing.usd_quote`

    @property
    def takes(self) -> int:
        return sum(len(r.takes) for r in self.rows)


def grid_of(table: str, variants: Sequence[Variant], results: Sequence[Result], takes: Takes | None) -> Grid:
    """The grid of `results` (one per variant, in row order) and the ledger's `takes`."""
    by_hash: dict[str, list[Take]] = {}
    for version in takes.versions if takes is not None else ():
        by_hash.setdefault(version.request_hash, []).extend(k for r in version.renders for k in r.takes)
    rows = []
    first_of: dict[str, str] = {}  # request hash -> the first row that sends it
    for variant, result in zip(variants, results, strict=True):
        request_hash = result.request.content_hash if result.ok and result.request is not None else None
        if result.estimate is not None and result.ok:
            cost = pricing.usd_quote(result.estimate.quote, "unknown (the model has no published price)")
        else:
            cost = "not priced: the row has errors"
        rows.append(
            VariantRow(
                variant.label,
                variant.row,
                tuple(Value(v.name, _text(v.value)) for v in variant.variables),
                cost,
                request_hash,
                result.errors,
                tuple(by_hash.get(request_hash, ())) if request_hash else (),
                first_of.get(request_hash) if request_hash else None,
            )
        )
        if request_hash:
            first_of.setdefault(request_hash, variant.label)
    # as `plan` and `run` count them: one request, one bill, however many rows ask for it
    once: dict[str, pricing.Quote] = {}
    for result in results:
        if result.ok and result.request is not None and result.estimate is not None:
            once.setdefault(result.request.content_hash, result.estimate.quote)
    priced = all(r.ok and r.estimate is not None for r in results)
    total = pricing.usd_quote(pricing.add(once.values()), "unknown") if priced else "not priced: some rows have errors"
    return Grid(table, tuple(rows), total)


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
