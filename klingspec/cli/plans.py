"""The cost preview: a plan per script, shown as a table, as JSON, or saved for `run`.

A saved plan holds the exact request bodies, their content hashes and the hashes of every
file they were compiled from, so a later `run plan.json` submits exactly what was
previewed and refuses if a script changed since.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from klingspec import __version__
from klingspec.pipeline import Options, Result
from klingspec.pricing import Estimate

PLAN_FORMAT = "klingspec-plan/1"


@dataclass(frozen=True)
class Plan:
    path: str
    estimate: Estimate
    body: dict
    generations: int
    request_hash: str
    inputs: dict[str, str]  # file path -> sha256 of its bytes, for every file read

    def as_dict(self) -> dict:
        e = self.estimate
        return {
            "path": self.path,
            "model": e.model,
            "shots": [
                {"name": s.name, "line": s.line, "duration": s.seconds, "cost_usd": _money(s.cost)} for s in e.shots
            ],
            "total_seconds": e.seconds,
            "price_per_second": float(e.price_per_second) if e.price_per_second is not None else None,
            "generations": e.generations,
            "total_usd": _money(e.total),
            "assumptions": list(e.assumptions),
            "request_hash": self.request_hash,
        }


def _money(value: Decimal | None) -> float | None:
    """A Decimal amount as a JSON number (exact for per-shot costs, cents for totals)."""
    return None if value is None else float(value)


def file_hash(path: str) -> str:
    with open(path, "rb") as handle:
        return "sha256:" + hashlib.sha256(handle.read()).hexdigest()


def plan_of(result: Result, options: Options) -> Plan:
    assert result.request is not None and result.estimate is not None
    files = [
        result.path,
        *[
            f
            for f in (result.program.dependencies if result.program else ())
            if os.path.abspath(f) != os.path.abspath(result.path)
        ],
        *options.var_files,
    ]
    inputs = {f: file_hash(f) for f in files if os.path.exists(f)}
    return Plan(
        result.path,
        result.estimate,
        result.request.body,
        result.request.generations,
        result.request.content_hash,
        inputs,
    )


def as_json(plans: Sequence[Plan]) -> str:
    if len(plans) == 1:
        return json.dumps(plans[0].as_dict(), indent=2, ensure_ascii=False) + "\n"
    known = [p.estimate.total for p in plans]
    payload = {
        "plans": [p.as_dict() for p in plans],
        "total_seconds": sum(p.estimate.seconds * p.estimate.generations for p in plans),
        "total_usd": None if None in known else float(sum((k for k in known if k is not None), Decimal(0))),
    }
    return json.dumps(payload, indent=2, ensure_ascii=False) + "\n"


def saved_file(plans: Sequence[Plan]) -> str:
    payload = {
        "format": PLAN_FORMAT,
        "klingspec": __version__,
        "requests": [
            {
                "path": p.path,
                "inputs": p.inputs,
                "request_hash": p.request_hash,
                "num_generations": p.generations,
                "body": p.body,
                "total_usd": _money(p.estimate.total),
            }
            for p in plans
        ],
    }
    return json.dumps(payload, indent=2, ensure_ascii=False) + "\n"


def print_table(plans: Sequence[Plan]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    grand = Decimal(0)
    unknown = False
    for plan in plans:
        e = plan.estimate
        console.print(f"[bold]{plan.path}[/]  [dim]{e.model}[/]")
        table = Table(show_footer=True)
        rate = e.price_per_second
        table.add_column("shot", footer="one video")
        table.add_column("line", justify="right")
        table.add_column("seconds", justify="right", footer=f"{e.seconds} s")
        table.add_column(
            "cost", justify="right", footer=f"${_fmt(rate * e.seconds)}" if rate is not None else "unknown"
        )
        for shot in e.shots:
            table.add_row(
                shot.name,
                str(shot.line),
                f"{shot.seconds} s",
                f"${_fmt(shot.cost)}" if shot.cost is not None else "unknown",
            )
        console.print(table)
        if rate is None:
            console.print(f"  price per second: [bold yellow]unknown[/] for {e.model}: the cost cannot be previewed")
            unknown = True
        else:
            console.print(
                f"  {e.seconds} s × ${rate}/s × {e.generations} generation"
                f"{'s' if e.generations != 1 else ''} = [bold]${e.total}[/]"
            )
            assert e.total is not None  # priced: the rate is known
            grand += e.total
        for note in e.assumptions:
            console.print(f"  [dim]assumes {note}[/]")
        console.print()
    if len(plans) > 1:
        console.print(f"[bold]total: {'unknown (a model has no published price)' if unknown else f'${grand}'}[/]")


def _fmt(value: Decimal) -> str:
    text = f"{value:.4f}".rstrip("0")
    return text + "0" if text.endswith(".") else text if len(text.split(".")[1]) >= 2 else text + "0"
