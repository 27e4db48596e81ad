"""Showing a run: one rich progress display for every render, and the closing summary.

`running.py` reports `Event`s and never prints; this module turns them into a live view
on stderr (so stdout stays clean for `--format json`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from klingspec import pricing
from klingspec.run.runner import Event, Job, Outcome

_STEPS = {
    "submit": 1,
    "submitted": 2,
    "reattach": 2,
    "reconcile": 2,
    "queued": 2,
    "processing": 3,
    "succeeded": 4,
    "downloading": 4,
    "download": 5,
    "done": 6,
    "failed": 6,
    "cancelled": 6,
}
TOTAL_STEPS = 6


class LiveView:
    """A progress row per render, updated from worker threads."""

    def __init__(self, jobs: Sequence[Job], console: Console | None = None):
        self.console = console or Console(stderr=True, highlight=False)
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.tasks = {id(job): self.progress.add_task(_label(job), total=TOTAL_STEPS, status="waiting") for job in jobs}
        self.lock = threading.Lock()

    def __enter__(self) -> LiveView:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, event: Event) -> None:
        task = self.tasks.get(id(event.job))
        if task is None:
            return
        step = _STEPS.get(event.status or event.kind)
        with self.lock:
            fields: dict[str, Any] = {"status": event.status or event.kind}
            if step is not None:
                self.progress.update(task, completed=max(step, self.progress.tasks[task].completed), **fields)
            else:
                self.progress.update(task, **fields)
            if event.kind in ("reconcile", "note", "failed", "reattach"):
                self.progress.console.print(f"  [dim]{_label(event.job)}:[/] {event.message}")


def _label(job: Job) -> str:
    return f"{job.stem} [dim]{job.request_hash.removeprefix('sha256:')[:8]}[/]"


def _shown(path: str) -> str:
    """Paths under the working folder are shown relative to it."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def money(amount: Decimal | None, unknown: str = "unknown") -> str:
    """Dollars and cents of a figure `pricing` computed; `unknown` when it could not."""
    return unknown if amount is None else f"${amount:.2f}"


def saved_plan(jobs: Sequence[Job]) -> None:
    """What a saved plan will submit (its scripts are not compiled again)."""
    import click

    for job in jobs:
        click.echo(
            f"{job.script}  {job.model}  {pricing.seconds_of(job.body)} s × {job.generations} = "
            f"{money(job.estimate_usd)}"
        )
    if len(jobs) > 1:
        click.echo(f"total: {money(pricing.total(j.estimate_usd for j in jobs))}")


def summary(outcomes: Sequence[Outcome], console: Console | None = None, *, sandbox: bool = False) -> None:
    console = console or Console(highlight=False)
    table = Table(title="renders", title_justify="left")
    for column in ("script", "state", "seconds", "cost", "files"):  # paths fold, never cut to "…"
        table.add_column(
            column,
            justify="right" if column in ("seconds", "cost") else "left",
            overflow="fold",
            no_wrap=column in ("state", "seconds", "cost"),
        )
    for outcome in outcomes:
        seconds = pricing.seconds_of(outcome.job.body)
        cost = "reused ($0 new)" if outcome.reused else money(outcome.spent_usd)
        files = "\n".join(_shown(f.path) for f in outcome.files) or (outcome.error or "")
        made = f"{outcome.top_up} (top-up)" if outcome.top_up else str(outcome.job.generations)
        table.add_row(outcome.job.script, outcome.state, f"{seconds} s × {made}", cost, files)
    console.print(table)
    # known new spend; a render whose cost is unknown says "unknown" in its own row above
    spent = pricing.total(o.spent_usd for o in outcomes if not o.reused and o.spent_usd is not None) or Decimal(0)
    if sandbox:
        console.print(f"sandbox: nothing was charged (the same renders would cost {money(spent)} at the API)")
    else:
        console.print(f"new spend this run: [bold]{money(spent)}[/]")
