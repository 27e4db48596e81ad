"""Showing a run: one rich progress display for every render, and the closing summary.

The runner reports `Event`s and never prints; this module turns them into a live view
on stderr (so stdout stays clean for `--format json`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from klingspec import pricing, printing
from klingspec.run.runner import Event, Job, Outcome
from klingspec.run.states import RenderState

if TYPE_CHECKING:
    from klingspec.run.ledger import Render
    from klingspec.run.uploading import UploadEvent

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
    """A progress row per render, updated from worker threads.

    The jobs known up front get their rows at once; a job that exists only later (a
    film's continued scene, made when the scene it continues is done) gets one with
    `add` when it starts. Events of a job without a row are not shown."""

    def __init__(self, jobs: Sequence[Job], console: Console | None = None):
        self.console = console or printing.console(stderr=True)
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.lock = threading.Lock()
        self.tasks: dict[int, TaskID] = {}  # by id(job): events carry the job object itself
        self.jobs: list[Job] = []  # kept alive, so no later job can take a shown one's id
        for job in jobs:
            self.add(job)

    def add(self, job: Job) -> TaskID:
        """The row of `job`, made now (as "waiting") unless it has one; from any thread.
        Rows are per job object, as events are matched to them."""
        with self.lock:
            task = self.tasks.get(id(job))
            if task is None:
                task = self.tasks[id(job)] = self.progress.add_task(_label(job), total=TOTAL_STEPS, status="waiting")
                self.jobs.append(job)
            return task

    def __enter__(self) -> LiveView:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, event: Event) -> None:
        step = _STEPS.get(event.status or event.kind)
        with self.lock:
            task = self.tasks.get(id(event.job))
            if task is None:
                return
            fields: dict[str, Any] = {"status": event.status or event.kind}
            if step is not None:
                self.progress.update(task, completed=max(step, self.progress.tasks[task].completed), **fields)
            else:
                self.progress.update(task, **fields)
            if event.kind in ("reconcile", "note", "failed", "reattach"):
                self.progress.console.print(f"  [dim]{_label(event.job)}:[/] {escape(event.message)}")


def _label(job: Job) -> str:
    """The job as rich markup: its script's name is escaped (a path may hold `[/`)."""
    return f"{escape(job.stem)} [dim]{job.request_hash.removeprefix('sha256:')[:8]}[/]"


def _shown(path: str) -> str:
    """Paths under the working folder are shown relative to it."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


money = pricing.usd  # dollars and cents of a figure `pricing` computed; "unknown" when it could not


def saved_plan(jobs: Sequence[Job]) -> None:
    """What a saved plan will submit (its scripts are not compiled again)."""
    import click

    for job in jobs:
        click.echo(
            f"{job.shown}  {job.model}  {pricing.seconds_of(job.body)} s × {job.generations} = "
            f"{pricing.usd_quote(job.bill)}"
        )
    if len(jobs) > 1:
        bill = pricing.add(j.bill for j in jobs)
        click.echo(f"total: {pricing.usd_quote(bill)}")


CANCELLED_NOTE = "cancelled — may be billed for work done"
SANDBOX_NOT_CHARGED = "sandbox: not charged"


def ledger_bill(render: Render) -> str:
    """A render's bill as the ledger recorded it (with the ceiling the plan showed, where
    the price is open), and what kind of bill it is: what `status`, `ls` and the
    storyboard's takes show for it."""
    recorded = Decimal(render.estimate_usd) if render.estimate_usd is not None else None
    quoted = pricing.quote_body(render.body, render.generations)
    ceiling = quoted.ceiling if recorded is not None and recorded == quoted.amount else recorded
    amount = pricing.usd_quote(pricing.Quote(recorded, ceiling))
    if render.in_sandbox:
        return f"{amount} ({SANDBOX_NOT_CHARGED})"
    if render.state == RenderState.CANCELLED:
        return f"{amount} {CANCELLED_NOTE}"
    return amount


def _bill(outcome: Outcome) -> pricing.Quote:
    """What an outcome newly committed, with the ceiling the plan showed for it (audio
    without a published price): the same figure as the plan, never recomputed."""
    spent = outcome.spent_usd
    if spent is None:
        return pricing.Quote(None, None)
    paid = outcome.job.for_generations(outcome.top_up) if outcome.top_up else outcome.job
    return pricing.Quote(spent, paid.ceiling_usd if spent == paid.estimate_usd else spent)


def _cost(outcome: Outcome) -> str:
    if outcome.reused:
        return "reused ($0 new)"
    if outcome.state == RenderState.CANCELLED:
        return f"{pricing.usd_quote(_bill(outcome))} {CANCELLED_NOTE}"
    return pricing.usd_quote(_bill(outcome))


def spend_line(outcomes: Sequence[Outcome], *, sandbox: bool = False) -> str:
    """The run's closing figure: the new spend (cancelled renders apart, unknowns named)."""
    new = [o for o in outcomes if not o.reused]
    cancelled = [o for o in new if o.state == RenderState.CANCELLED]
    paid = [o for o in new if o.state != RenderState.CANCELLED]
    known = pricing.add(_bill(o) for o in paid if o.spent_usd is not None)
    unknown = sum(o.spent_usd is None for o in paid)
    figure = pricing.usd_quote(known)
    if unknown:
        what = f"an unknown amount ({unknown} render{'s' if unknown != 1 else ''} without a known cost)"
        figure = what if not known.amount else f"{figure} + {what}"
    if sandbox:
        line = f"sandbox: nothing was charged (at the API this run would cost {figure})"
    else:
        line = f"new spend this run: {figure}"
    if cancelled:
        line += f"; {CANCELLED_NOTE}: {pricing.usd_quote(pricing.add(_bill(o) for o in cancelled))}"
    return line


def summary(outcomes: Sequence[Outcome], console: Console | None = None, *, sandbox: bool = False) -> None:
    console = console or printing.console()
    table = Table(title="renders", title_justify="left")
    for column in ("script", "state", "seconds", "cost", "files"):  # paths fold, never cut to "…"
        table.add_column(
            column,
            justify="right" if column in ("seconds", "cost") else "left",
            overflow="fold",
            no_wrap=column in ("state", "seconds"),
        )
    for outcome in outcomes:
        files = "\n".join(_shown(f.path) for f in outcome.files) or (outcome.error or "")
        made = f"{outcome.top_up} (top-up)" if outcome.top_up else str(outcome.job.generations)
        seconds = f"{pricing.seconds_of(outcome.job.body)} s × {made}"
        table.add_row(escape(outcome.job.shown), outcome.state, seconds, _cost(outcome), escape(files))
    console.print(table)
    console.print(spend_line(outcomes, sandbox=sandbox), markup=False)


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    """One render of a run, for `run --format json`: the same bill the table shows."""
    bill = _bill(outcome)
    return {
        "script": outcome.job.script,
        "render_id": outcome.render_id,
        "request_hash": outcome.job.request_hash,
        "state": str(outcome.state),
        "reused": outcome.reused,
        "top_up": outcome.top_up,
        "seconds": pricing.seconds_of(outcome.job.body),
        "generations": outcome.top_up or outcome.job.generations,
        "cost_usd": pricing.usd_number(bill.amount),
        "max_cost_usd": pricing.usd_number(bill.ceiling),
        "files": [{"path": f.path, "bytes": f.bytes, "sha256": f.sha256} for f in outcome.files],
        "error": outcome.error,
    }


def run_json(outcomes: Sequence[Outcome], *, sandbox: bool) -> dict[str, Any]:
    """`run --format json`: every render, and the closing figure as the text mode says it."""
    return {
        "renders": [outcome_json(o) for o in outcomes],
        "sandbox": sandbox,
        "spend": spend_line(outcomes, sandbox=sandbox),
    }


def upload_event(event: UploadEvent) -> None:
    """One step of uploading local images, on stderr (before the live view starts)."""
    import click

    upload = event.upload
    what = f"{_shown(upload.path)} ({upload.size:,} B)"
    if event.kind == "found":
        click.echo(f"{what}: already in {upload.namespace}/{upload.repo}; not uploaded again", err=True)
    elif event.kind == "uploading":
        click.echo(f"uploading {what} -> {upload.namespace}/{upload.repo}/{upload.remote_path}", err=True)
    elif event.kind == "uploaded":
        click.echo(f"uploaded {what} (commit {(event.commit_id or '?')[:12]})", err=True)
