"""What the ledger says was spent: per day and per script, sandbox renders kept apart.

Each render is put in one of three columns by what reached the API:
- *spent*: the API accepted it (in flight, done, partly done, or failed after it ran);
- *may be billed*: cancelled while it ran, or sent with its answer lost;
- not counted: never sent, or refused by the API before it made anything.
The figures are the bills the ledger recorded when the render was sent (`pricing.charge`,
summed with `pricing.total`): an unknown price stays unknown and is counted by name.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from klingspec import pricing
from klingspec.run.ledger import Render
from klingspec.run.states import RenderState

_MAY_BE_BILLED = (RenderState.CANCELLED, RenderState.UNKNOWN)
_NOT_SENT = (RenderState.INTENT,)


def column_of(render: Render, generations: int) -> str | None:
    """ "spent", "maybe" or None (not counted); `generations`: how many ids the API gave it."""
    if render.state in _NOT_SENT or (render.sent_at is None and generations == 0):
        return None  # never sent (a cancelled intent too)
    if render.state in _MAY_BE_BILLED or render.state == RenderState.SENT:
        return "maybe"
    if render.state == RenderState.FAILED and generations == 0:
        return None  # refused before anything was made
    return "spent"


@dataclass(frozen=True)
class Tally:
    """Renders counted under one label (a day or a script)."""

    label: str
    renders: int
    spent: Decimal  # the known part
    unknown: int  # renders in `spent` whose price is unknown
    may_be_billed: Decimal
    may_be_billed_unknown: int

    def as_dict(self, key: str) -> dict[str, Any]:
        return {
            key: self.label,
            "renders": self.renders,
            "spent_usd": float(self.spent),
            "unknown_price_renders": self.unknown,
            "may_be_billed_usd": float(self.may_be_billed),
            "may_be_billed_unknown_price_renders": self.may_be_billed_unknown,
        }


@dataclass(frozen=True)
class Spend:
    """One side of the report (real API renders, or sandbox renders)."""

    total: Tally
    days: tuple[Tally, ...]
    scripts: tuple[Tally, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total.as_dict("label"),
            "days": [d.as_dict("day") for d in self.days],
            "scripts": [s.as_dict("script") for s in self.scripts],
        }


@dataclass(frozen=True)
class SpendReport:
    real: Spend
    sandbox: Spend

    def as_dict(self) -> dict[str, Any]:
        return {"real": self.real.as_dict(), "sandbox": self.sandbox.as_dict()}


def _tally(label: str, entries: Iterable[tuple[Render, str]]) -> Tally:
    entries = list(entries)
    spent = [_usd(r) for r, column in entries if column == "spent"]
    maybe = [_usd(r) for r, column in entries if column == "maybe"]
    return Tally(
        label,
        len(entries),
        pricing.total(a for a in spent if a is not None) or Decimal(0),
        sum(a is None for a in spent),
        pricing.total(a for a in maybe if a is not None) or Decimal(0),
        sum(a is None for a in maybe),
    )


def _usd(render: Render) -> Decimal | None:
    return Decimal(render.estimate_usd) if render.estimate_usd is not None else None


def _day(render: Render) -> str:
    """The local calendar day the render was sent (money is committed when it is sent)."""
    return time.strftime("%Y-%m-%d", time.localtime(render.sent_at or render.created_at))


def _spend(entries: list[tuple[Render, str]]) -> Spend:
    days: dict[str, list[tuple[Render, str]]] = {}
    scripts: dict[str, list[tuple[Render, str]]] = {}
    for entry in entries:
        days.setdefault(_day(entry[0]), []).append(entry)
        scripts.setdefault(entry[0].script, []).append(entry)
    return Spend(
        _tally("total", entries),
        tuple(_tally(day, days[day]) for day in sorted(days)),
        tuple(_tally(script, scripts[script]) for script in sorted(scripts)),
    )


def spend_report(renders: Iterable[Render], generation_counts: Mapping[int, int]) -> SpendReport:
    """The report over `renders`; `generation_counts`: render id -> generation ids known."""
    real: list[tuple[Render, str]] = []
    sandbox: list[tuple[Render, str]] = []
    for render in renders:
        column = column_of(render, generation_counts.get(render.id, 0))
        if column is not None:
            (sandbox if render.in_sandbox else real).append((render, column))
    return SpendReport(_spend(real), _spend(sandbox))
