"""`run`, `status`, `ls` and `cancel`: the commands that spend money and show renders.

Wiring, not logic: compiles scripts (or reads a saved plan), checks the budget, asks for
consent (`cli.consent`), then hands `Job`s to `run.runner.Runner` with a live display. The
API key is read from `OXEN_API_KEY` here and passed to the client only; it is never
printed or stored.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import click

from klingspec import pricing
from klingspec.cli.options import (
    api_options,
    assets_option,
    budget_option,
    examples,
    out_option,
    pipeline_options,
    print_diagnostics,
    project_of,
    results_of,
    var_options,
    vars_table_option,
)
from klingspec.cli.report import Report
from klingspec.pipeline import Options, Result

if TYPE_CHECKING:
    from klingspec.run.jobs import Standing
    from klingspec.run.ledger import Ledger, Render
    from klingspec.run.runner import Job, PollPolicy, Runner

SANDBOX_LEDGER_URL = "sandbox://local"


@click.command(
    epilog=examples(
        "klingspec run --sandbox --yes examples/teaser.kvs   # offline: no key, no money",
        "klingspec run examples/teaser.kvs --budget 10",
        "klingspec run plan.json --yes   # exactly what `plan -o plan.json` showed",
        "klingspec run scene.kvs --vars-table variants.csv --budget 20   # one render per row",
        "klingspec run launch.kvs --budget 20   # a film: scene by scene, chained, then joined",
    ),
)
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@var_options
@vars_table_option
@assets_option
@click.option("--dry-run", is_flag=True, help="Show the plan and the exact request bodies; send nothing.")
@click.option("--sandbox", is_flag=True, help="Run against the built-in emulator: no key, no money.")
@click.option("--queue/--sync", "queue", default=True, help="Use the async queue (default) or the sync endpoint.")
@budget_option("Refuse (exit 4) if this run plus renders in flight would cost more.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@out_option
@click.option("--again", is_flag=True, help="Render anew even if this exact request was rendered before.")
@click.option("--concurrency", type=click.IntRange(1, 16), default=4, help="Renders in flight at once.")
@click.option("--poll", "poll_only", is_flag=True, help="Follow by polling only (no server-sent events).")
@click.option("--no-join", is_flag=True, help="A film: leave the scenes' clips, do not join them into one MP4.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one object on stdout when done (no table, no live view, no question: "
    "spending at the API needs --yes or --budget).",
)
@api_options
def run(
    files: tuple[str, ...],
    var_options: tuple[str, ...],
    var_files: tuple[str, ...],
    vars_table: str | None,
    assets: str | None,
    dry_run: bool,
    sandbox: bool,
    queue: bool,
    budget: float | None,
    yes: bool,
    out_dir: str | None,
    again: bool,
    concurrency: int,
    poll_only: bool,
    no_join: bool,
    fmt: str,
    api_url: str | None,
    ledger_path: str | None,
) -> None:
    """Plan, confirm, submit, follow and download renders. FILE is a script or a saved plan.json."""
    project = project_of(_scripts_of(files))
    if len(files) == 1 and files[0].endswith(".json") and any(d.is_error for d in project.problems):
        # a saved plan runs no pipeline: the project file's mistakes would go unseen
        print_diagnostics([project], "text", sys.stderr)
        raise SystemExit(Report(errors=len(project.problems)).return_code)
    if vars_table is not None and len(files) == 1 and files[0].endswith(".json"):
        raise click.UsageError("a saved plan already holds its variants: leave out --vars-table")
    report = _run(
        files=files,
        options=pipeline_options(var_options, var_files, assets=assets, vars_table=vars_table),
        dry_run=dry_run,
        sandbox=sandbox,
        mode="queue" if queue else "sync",
        budget=budget,
        cap=budget if budget is not None else project.value("budget"),
        yes=yes,
        out_dir=out_dir or project.value("out"),
        again=again,
        concurrency=concurrency,
        sse=not poll_only,
        api_url=api_url or project.value("api_url"),
        ledger_path=ledger_path,
        json_out=fmt == "json",
        join=not no_join,
    )
    raise SystemExit(report.return_code)


@click.command(
    epilog=examples(
        "klingspec status",
        "klingspec status --refresh   # ask the API about renders in flight",
    ),
)
@click.option("--all", "show_all", is_flag=True, help="Also finished renders.")
@click.option("--refresh", is_flag=True, help="Ask the API for the current state of renders in flight.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@api_options
def status(show_all: bool, refresh: bool, fmt: str, api_url: str | None, ledger_path: str | None) -> None:
    """Show renders in flight (from the local ledger)."""
    report = _status(active_only=not show_all, refresh=refresh, fmt=fmt, api_url=api_url, ledger_path=ledger_path)
    raise SystemExit(report.return_code)


@click.command(
    name="ls",
    epilog=examples(
        "klingspec ls -n 5",
        "klingspec ls --spend --format json",
    ),
)
@click.option("-n", "limit", type=click.IntRange(1, 10_000), default=20, help="How many renders.")
@click.option("--spend", is_flag=True, help="Total what the ledger says was spent, per day and per script.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@api_options
def ls_(limit: int, spend: bool, fmt: str, api_url: str | None, ledger_path: str | None) -> None:
    """List recent renders and their files (--spend: what they cost)."""
    if spend:
        raise SystemExit(_spending(fmt=fmt, ledger_path=ledger_path).return_code)
    raise SystemExit(_listing(limit=limit, fmt=fmt, ledger_path=ledger_path).return_code)


@click.command(
    epilog=examples(
        "klingspec cancel 3   # render #3 of the ledger (klingspec status shows the ids)",
    ),
)
@click.argument("render_or_generation")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@api_options
def cancel(render_or_generation: str, fmt: str, api_url: str | None, ledger_path: str | None) -> None:
    """Cancel a render (ledger id) or one generation (its id) that is still in flight."""
    said = _Said(json_out=fmt == "json")
    report = _cancel(render_or_generation, said, api_url=api_url, ledger_path=ledger_path)
    said.finish(render_or_generation)
    raise SystemExit(report.return_code)


class _Said:
    """What `cancel` says: lines for people as it goes, or (`--format json`) one object at
    the end: `target`, `render`, `state`, `generations` (`generation_id`, `status`),
    `message` and `error`. Errors also go to stderr in both modes."""

    def __init__(self, json_out: bool):
        self.json_out = json_out
        self.fields: dict[str, Any] = {"render": None, "state": None, "generations": [], "error": None}
        self.lines: list[str] = []

    def say(self, line: str, **fields: Any) -> None:
        self.lines.append(line)
        self.fields |= fields
        if not self.json_out:
            click.echo(line)

    def fail(self, line: str, **fields: Any) -> None:
        self.fields |= fields | {"error": line}
        click.echo(f"klingspec: {line}", err=True)

    def finish(self, target: str) -> None:
        if self.json_out:
            message = "; ".join(self.lines) or None
            click.echo(json.dumps({"target": target} | self.fields | {"message": message}, indent=2))


# -- what a run will submit ---------------------------------------------------------------


def _jobs_from_scripts(files: Sequence[str], options: Options, out_dir: str | None) -> tuple[list[Job], list[Result]]:
    """Jobs for the scripts, or no jobs (and the diagnostics printed) if any has errors."""
    from klingspec.run.jobs import Upload
    from klingspec.run.runner import Job

    results = results_of(files, options, options.vars_table)
    print_diagnostics([r for r in results if r.diagnostics], "text", sys.stderr)
    if any(not r.ok or r.request is None or r.estimate is None for r in results):
        return [], results
    return [
        Job.create(
            r.path,
            r.request.body,
            r.request.generations,
            r.request.content_hash,
            out_dir,
            tuple(Upload.of(u) for u in r.uploads),
            r.variant,
        )
        for r in results
        if r.request is not None and r.estimate is not None
    ], results


def _scripts_of(files: Sequence[str]) -> list[str]:
    """The scripts a run is about: the files given, or those a saved plan was made from
    (whose project file applies, wherever the plan was saved)."""
    if len(files) == 1 and files[0].endswith(".json"):
        from klingspec.cli.plans import PlanStale, PlanUnreadable, read_saved

        try:
            return [s.script for s in read_saved(files[0])] or list(files)
        except (PlanUnreadable, PlanStale):
            return list(files)  # reported when the plan is read for the run
    return list(files)


def _jobs_from_plan(path: str, out_dir: str | None) -> list[Job]:
    """A saved plan: the exact bodies, refused if any input file changed since."""
    from klingspec.cli.plans import PlanStale, PlanUnreadable, read_saved
    from klingspec.run.runner import Job

    try:
        saved = read_saved(path)
    except PlanUnreadable as error:
        raise click.UsageError(str(error)) from None
    except PlanStale as error:
        click.echo(f"klingspec: {error}", err=True)
        return []
    return [Job.create(s.script, s.body, s.generations, s.request_hash, out_dir, s.uploads, s.variant) for s in saved]


@contextlib.contextmanager
def connected_runner(
    *, sandbox: bool, api_url: str | None, ledger_path: str | None, mode: str, sse: bool, again: bool, concurrency: int
) -> Iterator[tuple[Runner, Ledger, str]]:
    """The API (or the sandbox), the ledger and a `Runner` over both, as `run` uses them
    for scripts and films alike; yields the runner, the ledger and the ledger's API URL.
    The caller closes `runner.client` when it is done with the network."""
    from klingspec.run.client import OxenClient
    from klingspec.run.ledger import Ledger
    from klingspec.run.runner import Runner

    with api_connection(sandbox, api_url) as (base_url, key, ledger_url), Ledger(ledger_path) as ledger:
        client = OxenClient.create(base_url, key)
        runner = Runner(
            client,
            ledger,
            api_url=ledger_url,
            mode=mode,
            sse=sse,
            poll=poll_policy(sandbox),
            again=again,
            concurrency=concurrency,
        )
        yield runner, ledger, ledger_url


@contextlib.contextmanager
def api_connection(sandbox: bool, api_url: str | None) -> Iterator[tuple[str, str | None, str]]:
    """(base URL, key, ledger identity of the API): the built-in sandbox, or the API with
    the user's key."""
    if sandbox:
        from klingspec.sandbox import SandboxConfig, running_sandbox

        with running_sandbox(SandboxConfig()) as base_url:
            yield base_url, "sandbox", SANDBOX_LEDGER_URL
        return
    from klingspec.run.client import DEFAULT_API_URL

    url = (api_url or DEFAULT_API_URL).rstrip("/")
    key = os.environ.get("OXEN_API_KEY")
    if not key:
        raise click.UsageError("set OXEN_API_KEY to your Oxen API key (or use --sandbox to try it for free)")
    yield url, key, url


def ledger_url(sandbox: bool, api_url: str | None) -> str:
    """The ledger's name for the API a run would use (as `api_connection` yields it)."""
    from klingspec.run.client import DEFAULT_API_URL

    return SANDBOX_LEDGER_URL if sandbox else (api_url or DEFAULT_API_URL).rstrip("/")


def poll_policy(sandbox: bool) -> PollPolicy:
    """The sandbox renders in seconds, so it is polled more often than the API."""
    from klingspec.run.runner import PollPolicy

    return PollPolicy(initial=0.2, factor=1.5, cap=2.0, sse_check=5.0) if sandbox else PollPolicy()


# -- run -------------------------------------------------------------------------------------


def _run(
    *,
    files: Sequence[str],
    options: Options,
    dry_run: bool,
    sandbox: bool,
    mode: str,
    budget: float | None,
    yes: bool,
    out_dir: str | None,
    again: bool,
    concurrency: int,
    sse: bool,
    cap: float | None = None,
    api_url: str | None,
    ledger_path: str | None,
    json_out: bool = False,
    join: bool = True,
) -> Report:
    from klingspec.cli import plans
    from klingspec.run import display, uploading

    # how this run reaches the API and the ledger, opened only once something is to be sent
    connection = functools.partial(
        connected_runner,
        sandbox=sandbox,
        api_url=api_url,
        ledger_path=ledger_path,
        mode=mode,
        sse=sse,
        again=again,
        concurrency=concurrency,
    )
    results: list[Result] | None = None
    if len(files) == 1 and files[0].endswith(".json"):
        jobs = _jobs_from_plan(files[0], out_dir)
    else:
        jobs, results = _jobs_from_scripts(files, options, out_dir)
        if any(r.film is not None for r in results):
            if len(results) != 1 or options.vars_table is not None:
                raise click.UsageError("run takes a film alone, for now without --vars-table")
            if not results[0].ok:
                return Report(errors=1)
            from klingspec.cli.filmruns import dry_run_film, run_film

            if dry_run:
                return dry_run_film(
                    results[0],
                    options,
                    sandbox=sandbox,
                    api_url=api_url,
                    ledger_path=ledger_path,
                    again=again,
                    mode=mode,
                    json_out=json_out,
                )
            return run_film(
                results[0],
                options,
                connection,
                sandbox=sandbox,
                mode=mode,
                budget=budget,
                cap=cap,
                yes=yes,
                out_dir=out_dir,
                join=join,
                json_out=json_out,
            )
    if not jobs:
        return Report(errors=1)
    if mode == "sync" and any(j.generations > 1 for j in jobs):
        raise click.UsageError("`generations` above 1 needs the queue; drop --sync")
    previews = None if results is None else [plans.plan_of(r, options) for r in results]

    def show(marks: Sequence[Standing], uploaded: frozenset[str]) -> None:
        """The plan `run` is about to act on: each render's bill, its local images still to
        upload, where it stands by the ledger, and the new spend (as `klingspec plan` shows it).
        With --format json the plan is not printed: stdout holds the one object at the end."""
        if json_out:
            return
        if previews is not None:
            plans.print_table(previews, marks, uploaded)
            return
        display.saved_plan(jobs)
        for mark in marks:
            click.echo(f"{mark.job.shown}: {plans.stand_line(mark)}")
        for upload in uploading.distinct(needs_uploads(marks)):
            state = "uploaded already" if upload.url in uploaded else "to upload"
            click.echo(f"{_shown_path(upload.path)}: {state} ({upload.size:,} B) -> {upload.remote_path}")
        click.echo(f"new spend: {pricing.usd_quote(plans.new_spend(marks))}")

    if dry_run:
        marks = plans.ledger_standings(jobs, sandbox=sandbox, api_url=api_url, ledger_path=ledger_path, again=again)
        uploaded = plans.ledger_uploaded(sandbox=sandbox, api_url=api_url, ledger_path=ledger_path)
        show(marks, uploaded)
        if json_out:
            click.echo(json.dumps(dry_run_json(jobs, marks, uploaded, mode), indent=2, ensure_ascii=False))
            return Report()
        print_requests(jobs, marks, uploaded, mode)
        click.echo("dry run: nothing was sent", err=True)
        return Report()
    from klingspec.cli.consent import Consent, amount, ask, can_ask, decide, refusal
    from klingspec.run.runner import BudgetRefused
    from klingspec.run.states import RenderState
    from klingspec.run.uploading import Uploader, UploadFailed

    with connection() as (runner, ledger, ledger_url):
        client = runner.client
        marks = runner.submitting.standings(jobs)
        wanted = uploading.distinct(needs_uploads(marks))
        needed = uploading.pending(ledger, ledger_url, wanted)
        every = uploading.distinct(jobs)
        show(marks, frozenset(u.url for u in every) - {u.url for u in uploading.pending(ledger, ledger_url, every)})
        # what was shown is what may be paid for: a render the ledger gains meanwhile is not sent
        runner.consented = frozenset(m.job.request_hash for m in marks if m.paid is not None)
        if cap is not None:  # --budget, else the project file's `budget` (a cap, not consent)
            try:
                runner.check_budget(jobs, Decimal(str(cap)))
            except BudgetRefused as refused:
                click.echo(f"klingspec: budget refused: {refused}", err=True)
                return Report(budget_refused=True)
        new = [m.paid for m in marks if m.paid is not None]
        consent = decide(sandbox=sandbox, yes=yes, budget=budget, terminal=can_ask() and not json_out)
        if new and consent is not Consent.GIVEN:
            cost = amount(pricing.add(j.bill for j in new))
            if consent is Consent.REFUSED:
                click.echo(refusal(f"this would spend {cost} at the API"), err=True)
                return Report(consent_refused=True)
            question = f"Submit {len(new)} render{'s' if len(new) != 1 else ''} for {cost}?"
            if needed:
                size = plans.size_text(sum(u.size for u in needed))
                question = f"Upload {len(needed)} image{'s' if len(needed) != 1 else ''} ({size}) and s{question[1:]}"
            if not ask(question):
                click.echo("nothing was sent", err=True)
                return Report()
        if needed:
            uploader = Uploader(client, ledger, ledger_url, on_event=display.upload_event)
            try:
                uploader.upload_all(needed)
            except UploadFailed as refused:
                client.close()
                click.echo(f"klingspec: {refused}; nothing was submitted", err=True)
                if "(401)" in str(refused):
                    click.echo("klingspec: the API refused the key: check OXEN_API_KEY", err=True)
                return Report(api_failures=1)
            except KeyboardInterrupt:
                client.close()
                click.echo("interrupted while uploading: nothing was submitted", err=True)
                return Report(interrupted=True)
        view = display.LiveView(jobs)
        if not json_out:
            runner.on_event = view
        try:
            with contextlib.nullcontext() if json_out else view:
                outcomes = runner.run(jobs)
        except KeyboardInterrupt:
            click.echo(
                "interrupted: renders in flight keep going; `klingspec status` shows them, and running "
                "the same command again picks them up without paying twice",
                err=True,
            )
            return Report(interrupted=True)
        finally:
            client.close()
        if json_out:
            click.echo(json.dumps(display.run_json(outcomes, sandbox=sandbox), indent=2, ensure_ascii=False))
        else:
            display.summary(outcomes, sandbox=sandbox)
        failed = [o for o in outcomes if o.state != RenderState.DONE]
        interrupted = any(o.state == RenderState.INTERRUPTED for o in outcomes)
        if any(o.error and "(401)" in o.error for o in failed) and not interrupted:
            click.echo("klingspec: the API refused the key: check OXEN_API_KEY", err=True)
        return Report(api_failures=len(failed), interrupted=interrupted, files=len(jobs))


def print_requests(jobs: Sequence[Job], marks: Sequence[Standing], uploaded: frozenset[str], mode: str) -> None:
    """`run --dry-run`: each upload still to make and each request, as it would be sent."""
    from klingspec.run import uploading
    from klingspec.run.jobs import Stand

    for upload in uploading.distinct(needs_uploads(marks)):
        if upload.url not in uploaded:
            click.echo(
                f"# upload {_shown_path(upload.path)} ({upload.size:,} B)\n"
                f"PUT /repos/{upload.namespace}/{upload.repo}/file/{upload.branch}/{upload.remote_path}"
            )
    paid = {m.job.request_hash: m.paid for m in marks if m.paid is not None and m.stand == Stand.TOP_UP}
    for job in jobs:
        payload = dict(job.body)
        if mode == "queue":
            payload["num_generations"] = (paid.get(job.request_hash) or job).generations
        click.echo(
            f"# {job.shown}  {job.request_hash}"
            + (" (top-up: the missing generations only)" if job.request_hash in paid else "")
            + f"\nPOST {'/ai/queue' if mode == 'queue' else '/ai/videos/generate'}"
        )
        click.echo(json.dumps(payload, indent=2, ensure_ascii=False))


def dry_run_json(jobs: Sequence[Job], marks: Sequence[Standing], uploaded: frozenset[str], mode: str) -> dict[str, Any]:
    """`run --dry-run --format json`: what would be uploaded and sent, nothing more."""
    from klingspec.cli import plans
    from klingspec.run import uploading
    from klingspec.run.jobs import Stand

    paid = {m.job.request_hash: m.paid for m in marks if m.paid is not None and m.stand == Stand.TOP_UP}
    requests = []
    for job, mark in zip(jobs, marks, strict=True):
        payload = dict(job.body)
        if mode == "queue":
            payload["num_generations"] = (paid.get(job.request_hash) or job).generations
        requests.append(
            {
                "script": job.script,
                "request_hash": job.request_hash,
                "standing": str(mark.stand),
                "route": "POST /ai/queue" if mode == "queue" else "POST /ai/videos/generate",
                "body": payload,
            }
        )
    new = plans.new_spend(marks)
    uploads = [
        {"path": u.path, "bytes": u.size, "url": u.url, "uploaded": u.url in uploaded}
        for u in uploading.distinct(needs_uploads(marks))
    ]
    return {
        "dry_run": True,
        "requests": requests,
        "uploads": uploads,
        "new_usd": pricing.usd_number(new.amount),
        "max_new_usd": pricing.usd_number(new.ceiling),
    }


def needs_uploads(marks: Sequence[Standing]) -> list[Job]:
    """The jobs whose local images must be in the repository before the run: every one
    but those reattached to a finished render (nothing of theirs is sent again)."""
    from klingspec.run.jobs import Stand

    return [m.job for m in marks if m.stand not in (Stand.REUSE, Stand.DUPLICATE)]


def _shown_path(path: str) -> str:
    relative = os.path.relpath(path)
    return path if relative.startswith(os.pardir) else relative


# -- status, ls, cancel ----------------------------------------------------------------------


def _ledger(ledger_path: str | None) -> Ledger:
    from klingspec.run.ledger import Ledger

    return Ledger(ledger_path)


def _status(*, active_only: bool, refresh: bool, fmt: str, api_url: str | None, ledger_path: str | None) -> Report:
    from rich.markup import escape  # scripts, models and paths are text, never markup
    from rich.table import Table

    from klingspec import printing
    from klingspec.run.display import ledger_bill

    console = printing.console()
    report = Report()
    with _ledger(ledger_path) as ledger:
        renders = ledger.renders(active_only=active_only, limit=200)
        if refresh and renders:
            report.api_failures = _refresh(ledger, renders, api_url)
            renders = ledger.renders(active_only=active_only, limit=200)
        missing = _missing_videos(ledger)
        if fmt == "json":
            rows = [_render_json(ledger, r) | {"generations": _generations_json(ledger, r)} for r in renders]
            click.echo(json.dumps({"renders": rows, "missing": missing or None}, indent=2, ensure_ascii=False))
            return report
        if not renders:
            console.print("no renders in flight" if active_only else "the ledger is empty")
            if missing:
                console.print(missing, markup=False)
            return report
        table = Table(title="renders in flight" if active_only else "renders", title_justify="left")
        for column in ("id", "script", "state", "generations", "cost", "api"):
            table.add_column(column, overflow="fold")  # a path or an id is never cut to "…"
        for r in renders:
            gens = ledger.generations(r.id)
            detail = ", ".join(f"{g.generation_id[:8]} {g.status}" for g in gens) or "-"
            table.add_row(
                str(r.id), escape(r.script), _state(ledger, r), escape(detail), ledger_bill(r), escape(r.api_url)
            )
        console.print(table)
        if missing:
            console.print(missing, markup=False)
    return report


def _render_json(ledger: Ledger, render: Render) -> dict[str, Any]:
    """A render as `status` and `ls` print it in JSON (`cost_usd`: the ledger's own
    figure, priced by `pricing` when the render was made)."""
    return {
        "id": render.id,
        "script": render.script,
        "model": render.model,
        "state": str(render.state),
        "detail": _state(ledger, render),
        "cost_usd": pricing.usd_number(render.estimate_usd),
        "sandbox": render.in_sandbox,
        "api": render.api_url,
    }


def _files_json(ledger: Ledger, render: Render) -> list[dict[str, Any]]:
    return [{"path": f.path, "bytes": f.bytes} for f in ledger.all_files(render.id)]


def _generations_json(ledger: Ledger, render: Render) -> list[dict[str, Any]]:
    return [
        {"generation_id": g.generation_id, "status": str(g.status), "result_url": g.result_url, "error": g.error}
        for g in ledger.generations(render.id)
    ]


def _state(ledger: Ledger, render: Render) -> str:
    """A render's state as `status` and `ls` show it: a partial render says how many
    videos it kept and what its request still misses; a top-up, which render it completes."""
    from klingspec.run.states import GenerationStatus, RenderState

    text = str(render.state)
    if render.state == RenderState.PARTIAL:
        kept = sum(g.status == GenerationStatus.SUCCEEDED for g in ledger.generations(render.id))
        text = f"partial: {kept} of {render.generations} videos"
    if render.completes is not None:
        text += f" (top-up of #{render.completes})"
    if render.state == RenderState.PARTIAL:
        missing = _missing(ledger, render)
        text += f"; {missing} missing" if missing else "; completed by a top-up"
    return text


def _missing(ledger: Ledger, render: Render) -> int:
    """How many videos the request of `render` still misses (from all its renders)."""
    root = ledger.render(render.root)
    wanted = root.generations if root is not None else render.generations
    return max(0, wanted - len(ledger.kept_files(render.root)))


def _missing_videos(ledger: Ledger) -> str:
    """A note on requests whose newest render is partial: running them again renders
    (and pays for) only the missing videos. Empty when there are none."""
    from klingspec.run.states import RenderState

    partial = [
        r
        for r in ledger.renders(limit=200)
        if r.state == RenderState.PARTIAL
        and _missing(ledger, r)
        and (latest := ledger.latest_for(r.request_hash, r.api_url)) is not None
        and latest.id == r.id
    ]
    if not partial:
        return ""
    which = ", ".join(f"#{r.id} {os.path.basename(r.script)} ({_missing(ledger, r)} missing)" for r in partial)
    return (
        f"partial: {which}. Their other videos are kept; `klingspec run` the same script again to "
        "render only the missing ones (`klingspec ls` lists the files)"
    )


def _refresh(ledger: Ledger, renders: Sequence[Render], api_url: str | None) -> int:
    """Ask the API for each generation in flight; returns how many questions failed."""
    from klingspec.run.client import ApiError, OxenClient

    key = os.environ.get("OXEN_API_KEY")
    if not key:
        raise click.UsageError("set OXEN_API_KEY to refresh from the API")
    failures = 0
    configured = ledger_url(False, api_url)
    for render in renders:
        if render.in_sandbox or not render.active:
            continue
        if render.api_url.rstrip("/") != configured:  # the key goes to the configured API only
            click.echo(
                f"klingspec: render {render.id} was sent to {render.api_url}, not to {configured}: "
                f"not refreshed (pass --api-url {render.api_url} to ask that API with your key)",
                err=True,
            )
            continue
        client = OxenClient.create(configured, key)
        try:
            for g in ledger.generations(render.id):
                try:
                    item = client.generation(g.generation_id)
                except ApiError as error:
                    click.echo(f"klingspec: {error}", err=True)
                    failures += 1
                    continue
                ledger.update_generation(
                    g.generation_id, item.get("status", g.status), item.get("result_url"), item.get("error_message")
                )
        finally:
            client.close()
    return failures


def _listing(*, limit: int, fmt: str, ledger_path: str | None) -> Report:
    from rich.markup import escape  # scripts, models and paths are text, never markup
    from rich.table import Table

    from klingspec import printing
    from klingspec.run.display import ledger_bill

    console = printing.console()
    with _ledger(ledger_path) as ledger:
        renders = ledger.renders(limit=limit)
        if fmt == "json":
            rows = [_render_json(ledger, r) | {"files": _files_json(ledger, r)} for r in renders]
            click.echo(json.dumps({"renders": rows}, indent=2, ensure_ascii=False))
            return Report()
        if not renders:
            console.print("the ledger is empty")
            return Report()
        table = Table(title="renders", title_justify="left")
        for column in ("id", "script", "model", "state", "cost", "files"):
            table.add_column(column, overflow="fold")  # a path or an id is never cut to "…"
        for r in renders:
            files = "\n".join(f"{f.path} ({f.bytes:,} B)" for f in ledger.all_files(r.id)) or "-"
            table.add_row(
                str(r.id), escape(r.script), escape(r.model), _state(ledger, r), ledger_bill(r), escape(files)
            )
        console.print(table)
    return Report()


def _spending(*, fmt: str, ledger_path: str | None) -> Report:
    from rich.markup import escape  # scripts, models and paths are text, never markup
    from rich.table import Table

    from klingspec import printing
    from klingspec.run.spending import Spend, Tally, spend_report

    with _ledger(ledger_path) as ledger:
        report = spend_report(ledger.renders(limit=None), ledger.generation_counts())
        path = ledger.path
    if fmt == "json":
        click.echo(json.dumps({"ledger": path} | report.as_dict(), indent=2, ensure_ascii=False))
        return Report()
    console = printing.console()

    def figure(amount: Decimal, unknown: int) -> str:
        text = f"${amount:.2f}"
        return text + (f" + {unknown} unknown" if unknown else "")

    def table(title: str, key: str, tallies: tuple[Tally, ...], spend: Spend) -> None:
        grid = Table(title=title, title_justify="left", show_footer=True)
        total = spend.total
        grid.add_column(key, footer="total", overflow="fold")
        grid.add_column("renders", justify="right", footer=str(total.renders))
        grid.add_column("spent", justify="right", footer=figure(total.spent, total.unknown))
        grid.add_column(
            "may be billed", justify="right", footer=figure(total.may_be_billed, total.may_be_billed_unknown)
        )
        for t in tallies:
            grid.add_row(
                escape(t.label),
                str(t.renders),
                figure(t.spent, t.unknown),
                figure(t.may_be_billed, t.may_be_billed_unknown),
            )
        console.print(grid)

    real, sandbox = report.real, report.sandbox
    if not real.total.renders and not sandbox.total.renders:
        console.print(f"nothing was sent from this ledger ({path})", markup=False)
        return Report()
    if real.total.renders:
        table("spent at the API, per day", "day", real.days, real)
        table("spent at the API, per script", "script", real.scripts, real)
        console.print(
            "[dim]may be billed: cancelled while running (work done may be billed), or sent with the answer lost[/]"
        )
    else:
        console.print("nothing was sent to the API from this ledger")
    if sandbox.total.renders:
        s = sandbox.total
        console.print(
            f"sandbox (nothing was charged): {s.renders} render{'s' if s.renders != 1 else ''}, "
            f"{figure(s.spent, s.unknown)} at API prices"
        )
    return Report()


def _cancel(target: str, said: _Said, *, api_url: str | None, ledger_path: str | None) -> Report:
    from klingspec.run.client import ApiError, OxenClient
    from klingspec.run.states import TERMINAL, GenerationStatus, RenderState

    with _ledger(ledger_path) as ledger:
        if target.isdigit():
            render = ledger.render(int(target))
            generations = ledger.generations(int(target)) if render else []
        else:
            one = ledger.find_generation(target)
            render = ledger.render(one.render_id) if one else None
            generations = [one] if one else []
        if render is None:
            said.fail(f"no render or generation {target} in the ledger")
            return Report(api_failures=1)
        known = {"render": render.id, "state": str(render.state), "generations": _generations_json(ledger, render)}
        said.fields |= known
        if render.in_sandbox:
            said.fail("this render ran in the in-process sandbox, which is gone", **known)
            return Report(api_failures=1)
        if not render.active:
            said.say(f"render {render.id} is {render.state}: nothing to cancel", **known)
            return Report()
        live = [g for g in generations if g.status not in TERMINAL]
        if not live:
            if render.state == RenderState.INTENT and target.isdigit():  # recorded, never sent
                ledger.set_state(render.id, RenderState.CANCELLED, "cancelled before it was sent")
                said.say(f"cancelled render {render.id} (it was never sent)", **known, state=str(RenderState.CANCELLED))
                return Report()
            if render.state in (RenderState.SENT, RenderState.UNKNOWN):
                said.fail(
                    f"render {render.id} was sent but its generation ids are not known yet; "
                    "`klingspec run` the script again to find them, then cancel",
                    **known,
                )
                return Report(api_failures=1)
            said.say(f"render {render.id}: no generation is still in flight", **known)
            return Report()
        key = os.environ.get("OXEN_API_KEY")
        if not key:
            raise click.UsageError("set OXEN_API_KEY to cancel a render at the API")
        configured = ledger_url(False, api_url)
        if render.api_url.rstrip("/") != configured:  # the key goes to the configured API only
            said.fail(
                f"render {render.id} was sent to {render.api_url}, not to {configured}: "
                f"pass --api-url {render.api_url} to cancel it there with your key"
            )
            return Report(api_failures=1)
        client = OxenClient.create(configured, key)
        report = Report()
        try:
            for g in live:
                try:
                    client.cancel(g.generation_id)
                    item = client.generation(g.generation_id)
                except ApiError as error:
                    said.fail(str(error))
                    report.api_failures += 1
                    continue
                status = item.get("status", GenerationStatus.CANCELLED)
                ledger.update_generation(g.generation_id, status, item.get("result_url"), item.get("error_message"))
                said.say(f"{g.generation_id}: {status}")
            statuses = [g.status for g in ledger.generations(render.id)]
            if (
                all(s in TERMINAL for s in statuses)
                and GenerationStatus.CANCELLED in statuses
                and GenerationStatus.SUCCEEDED not in statuses
            ):
                ledger.set_state(render.id, RenderState.CANCELLED)
        finally:
            client.close()
        after = ledger.render(render.id)
        said.fields |= {
            "state": str(after.state) if after else None,
            "generations": _generations_json(ledger, render),
        }
        return report
