"""`plan --compare`: the models side by side, as a table for people or as plan JSON fields.

The trials come from `comparing` (the whole pipeline, once per model); every figure is
formatted by `pricing`, never computed here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from klingspec import pricing
from klingspec.comparing import Trial, cheapest
from klingspec.diagnostics import Diagnostic


def as_json(trials: Sequence[Trial]) -> dict[str, Any]:
    """`compare` (one object per model, the script's own first) and `cheapest_valid`."""
    best = cheapest(trials)
    return {
        "compare": [
            {
                "model": t.model,
                "own": t.own,
                "status": t.status,
                "valid": t.valid,
                "total_seconds": t.seconds,
                "total_usd": pricing.usd_number(t.quote.amount) if t.quote else None,
                "max_total_usd": pricing.usd_number(t.quote.ceiling) if t.quote else None,
                "rejected": [_problem(d) for d in t.errors],
                "warnings": [_problem(d) for d in t.warnings],
            }
            for t in trials
        ],
        "cheapest_valid": best.model if best else None,
    }


def _problem(diagnostic: Diagnostic) -> dict[str, Any]:
    line, column = diagnostic.span.start_position
    return {"code": diagnostic.code, "line": line, "column": column, "message": diagnostic.message}


def _cost(trial: Trial) -> str:
    return pricing.usd_quote(trial.quote) if trial.quote else "unknown"


def print_comparison(path: str, trials: Sequence[Trial]) -> None:
    """Cost, status and verdict per model, the cheapest valid one marked, then what each
    model rejects or warns about, at the script's own lines."""
    best = cheapest(trials)
    rows = [("model", "cost", "status", "verdict")]
    for t in trials:
        if t.errors:
            verdict = f"rejected ({len(t.errors)} error{'s' if len(t.errors) != 1 else ''})"
        else:
            verdict = "retired" if t.status == "retired" else "ok"
        verdict += ", the script's model" if t.own else ""
        rows.append((t.model, _cost(t), t.status, verdict + ("  ← cheapest valid" if t is best else "")))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    click.echo(f"\n{path}: the same shots on {len(trials)} models")
    for row in rows:
        click.echo("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[3])
    for t in trials:
        for d in (*t.errors, *t.warnings):
            line, column = d.span.start_position
            click.echo(f"  {t.model}: {path}:{line}:{column}: {d.severity}[{d.code}]: {d.message}")
    if best is not None and best.quote is not None:
        click.echo(f"cheapest valid: {best.model} at {_cost(best)}")
    else:
        click.echo("cheapest valid: none (no model takes the script at a known price)")
