"""The `run`, `status`, `ls`, `cancel` and `sandbox` commands: wiring, not logic.

Compiles scripts (or reads a saved plan), checks the budget, asks for confirmation, then
hands `Job`s to `running.Runner` with a live display. The API key is read from
`OXEN_API_KEY` here and passed to the client only; it is never printed or stored.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from decimal import Decimal

import click

from klingspec.cli.report import Exit
from klingspec.pipeline import Options, Result, run_pipeline

SANDBOX_LEDGER_URL = "sandbox://local"


def _diagnostics(results: Sequence[Result]) -> None:
    from klingspec import printing

    diagnostics = [d for r in results for d in r.diagnostics]
    if diagnostics:
        sys.stderr.write(printing.texts(diagnostics, printing.TextStyle(color=sys.stderr.isatty())))


def _jobs_from_scripts(files: Sequence[str], options: Options, out_dir: str | None):
    from klingspec.run.runner import Job

    results = [run_pipeline(path, options) for path in files]
    _diagnostics(results)
    if any(not r.ok or r.request is None for r in results):
        return None, results
    jobs = []
    for r in results:
        assert r.request is not None  # refused above otherwise
        est = r.estimate.total if r.estimate else None
        jobs.append(
            Job(
                r.path,
                r.request.body,
                r.request.generations,
                r.request.content_hash,
                r.estimate.exact if r.estimate is not None and est is not None else None,
                out_dir or os.path.join(os.path.dirname(os.path.abspath(r.path)), "renders"),
            )
        )
    return jobs, results


def _jobs_from_plan(path: str, out_dir: str | None):
    """A saved plan: the exact bodies, refused if any input file changed since."""
    from klingspec.cli.plans import PLAN_FORMAT, file_hash
    from klingspec.compiling import request_hash
    from klingspec.run.runner import Job, seconds_of
    from klingspec.targets import model as lookup_model

    try:
        with open(path, encoding="utf-8") as handle:
            saved = json.load(handle)
    except (OSError, ValueError) as error:
        raise click.UsageError(f"cannot read the plan {path}: {error}") from None
    if not isinstance(saved, dict) or saved.get("format") != PLAN_FORMAT:
        raise click.UsageError(f"{path} is not a klingspec plan (format {saved.get('format')!r})")
    jobs = []
    for item in saved["requests"]:
        for input_path, digest in item["inputs"].items():
            if not os.path.exists(input_path):
                click.echo(
                    f"klingspec: {input_path}, which {path} was planned from, is missing; "
                    "run `klingspec plan -o` again (from the same folder)",
                    err=True,
                )
                return None
            if file_hash(input_path) != digest:
                click.echo(
                    f"klingspec: {input_path} changed since {path} was saved; "
                    "run `klingspec plan -o` again to preview the new cost",
                    err=True,
                )
                return None
        if request_hash(item["body"], item["num_generations"]) != item["request_hash"]:
            click.echo(f"klingspec: {path} was edited by hand (request hash mismatch); refusing", err=True)
            return None
        model = lookup_model(item["body"].get("model", ""))
        exact = (
            model.price_per_second * seconds_of(item["body"]) * item["num_generations"]
            if model and model.price_per_second is not None
            else None
        )
        script = item["path"]
        jobs.append(
            Job(
                script,
                item["body"],
                item["num_generations"],
                item["request_hash"],
                exact,
                out_dir or os.path.join(os.path.dirname(os.path.abspath(script)), "renders"),
            )
        )
    return jobs


@contextlib.contextmanager
def _api(sandbox: bool, api_url: str | None) -> Iterator[tuple[str, str | None, str]]:
    """(base URL, key, ledger identity of the API)."""
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


def run(
    *,
    files,
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
    api_url: str | None,
    ledger_path: str | None,
) -> int:
    from klingspec.cli import plans as planning

    if len(files) == 1 and files[0].endswith(".json"):
        jobs = _jobs_from_plan(files[0], out_dir)
        if jobs is None:
            return Exit.SCRIPT_ERRORS
        results = None
    else:
        jobs, results = _jobs_from_scripts(files, options, out_dir)
        if jobs is None:
            return Exit.SCRIPT_ERRORS
    if mode == "sync" and any(j.generations > 1 for j in jobs):
        raise click.UsageError("`generations` above 1 needs the queue; drop --sync")
    if results is not None:
        plans = [planning.plan_of(r, options) for r in results]
        planning.print_table(plans)
    else:
        _print_saved_plan(jobs)
    if dry_run:
        for job in jobs:
            payload = dict(job.body)
            if mode == "queue":
                payload["num_generations"] = job.generations
            click.echo(
                f"# {job.script}  {job.request_hash}\nPOST {'/ai/queue' if mode == 'queue' else '/ai/videos/generate'}"
            )
            click.echo(json.dumps(payload, indent=2, ensure_ascii=False))
        click.echo("dry run: nothing was sent", err=True)
        return Exit.OK
    from klingspec.run import display
    from klingspec.run.client import OxenClient
    from klingspec.run.ledger import Ledger
    from klingspec.run.runner import BudgetRefused, PollPolicy, Runner

    with _api(sandbox, api_url) as (base_url, key, ledger_url), Ledger(ledger_path) as ledger:
        client = OxenClient.create(base_url, key)
        poll = PollPolicy(initial=0.2, factor=1.5, cap=2.0, sse_check=5.0) if sandbox else PollPolicy()
        runner = Runner(
            client, ledger, api_url=ledger_url, mode=mode, sse=sse, poll=poll, again=again, concurrency=concurrency
        )
        if budget is not None:
            try:
                runner.check_budget(jobs, Decimal(str(budget)))
            except BudgetRefused as refused:
                click.echo(f"klingspec: budget refused: {refused}", err=True)
                return Exit.BUDGET_REFUSED
        new = runner.new_jobs(jobs)
        if new and not yes and not sandbox:
            cost = sum((j.estimate_usd or Decimal(0) for j in new), Decimal(0))
            unknown = any(j.estimate_usd is None for j in new)
            if not sys.stdin.isatty():
                raise click.UsageError("confirmation needed: pass --yes to submit without a prompt")
            if not click.confirm(
                f"Submit {len(new)} render{'s' if len(new) != 1 else ''} for "
                f"{'an unknown amount' if unknown else f'${cost:.2f}'}?",
                err=True,
            ):
                click.echo("nothing was sent", err=True)
                return Exit.OK
        view = display.LiveView(jobs)
        runner.on_event = view
        try:
            with view:
                outcomes = runner.run(jobs)
        except KeyboardInterrupt:
            click.echo(
                "interrupted: renders in flight keep going; `klingspec status` shows them, and running "
                "the same command again picks them up without paying twice",
                err=True,
            )
            return Exit.INTERRUPTED
        finally:
            client.close()
        display.summary(outcomes, sandbox=sandbox)
        if any(o.state == "interrupted" for o in outcomes):
            return Exit.INTERRUPTED
        if any(o.state != "done" for o in outcomes):
            if any(o.error and "(401)" in o.error for o in outcomes):
                click.echo("klingspec: the API refused the key: check OXEN_API_KEY", err=True)
            return Exit.API_FAILURE
        return Exit.OK


def _print_saved_plan(jobs) -> None:
    """What a saved plan will submit (its scripts are not compiled again)."""
    from klingspec.run.runner import seconds_of

    total, unknown = Decimal(0), False
    for job in jobs:
        cost = "unknown" if job.estimate_usd is None else f"${job.estimate_usd:.2f}"
        click.echo(f"{job.script}  {job.model}  {seconds_of(job.body)} s × {job.generations} = {cost}")
        if job.estimate_usd is None:
            unknown = True
        else:
            total += job.estimate_usd
    if len(jobs) > 1:
        click.echo(f"total: {'unknown' if unknown else f'${total:.2f}'}")


def _ledger(ledger_path: str | None):
    from klingspec.run.ledger import Ledger

    return Ledger(ledger_path)


def status(*, active_only: bool, refresh: bool, api_url: str | None, ledger_path: str | None) -> int:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    code: int = Exit.OK
    with _ledger(ledger_path) as ledger:
        renders = ledger.renders(active_only=active_only, limit=200)
        if refresh and renders:
            code = _refresh(ledger, renders, api_url)
            renders = ledger.renders(active_only=active_only, limit=200)
        if not renders:
            console.print("no renders in flight" if active_only else "the ledger is empty")
            return code
        table = Table(title="renders in flight" if active_only else "renders", title_justify="left")
        for column in ("id", "script", "state", "generations", "cost", "api"):
            table.add_column(column)
        for r in renders:
            gens = ledger.generations(r.id)
            detail = ", ".join(f"{g.generation_id[:8]} {g.status}" for g in gens) or "-"
            table.add_row(
                str(r.id),
                r.script,
                r.state,
                detail,
                f"${Decimal(r.estimate_usd):.2f}" if r.estimate_usd else "?",
                r.api_url,
            )
        console.print(table)
    return code


def _refresh(ledger, renders, api_url: str | None) -> int:
    from klingspec.run.client import ApiError, OxenClient

    key = os.environ.get("OXEN_API_KEY")
    if not key:
        raise click.UsageError("set OXEN_API_KEY to refresh from the API")
    code = Exit.OK
    for render in renders:
        if render.api_url.startswith("sandbox:") or not render.active:
            continue
        client = OxenClient.create(api_url or render.api_url, key)
        try:
            for g in ledger.generations(render.id):
                try:
                    item = client.generation(g.generation_id)
                except ApiError as error:
                    click.echo(f"klingspec: {error}", err=True)
                    code = Exit.API_FAILURE
                    continue
                ledger.update_generation(
                    g.generation_id, item.get("status", g.status), item.get("result_url"), item.get("error_message")
                )
        finally:
            client.close()
    return code


def listing(*, limit: int, ledger_path: str | None) -> int:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    with _ledger(ledger_path) as ledger:
        renders = ledger.renders(limit=limit)
        if not renders:
            console.print("the ledger is empty")
            return Exit.OK
        table = Table(title="renders", title_justify="left")
        for column in ("id", "script", "model", "state", "cost", "files"):
            table.add_column(column)
        for r in renders:
            files = "\n".join(f"{f.path} ({f.bytes:,} B)" for f in ledger.all_files(r.id)) or "-"
            table.add_row(
                str(r.id),
                r.script,
                r.model,
                r.state,
                f"${Decimal(r.estimate_usd):.2f}" if r.estimate_usd else "?",
                files,
            )
        console.print(table)
    return Exit.OK


def cancel(target: str, *, api_url: str | None, ledger_path: str | None) -> int:
    from klingspec.run.client import ApiError, OxenClient

    with _ledger(ledger_path) as ledger:
        if target.isdigit():
            render = ledger.render(int(target))
            generations = ledger.generations(int(target)) if render else []
        else:
            one = ledger.find_generation(target)
            render = ledger.render(one.render_id) if one else None
            generations = [one] if one else []
        if render is None:
            click.echo(f"klingspec: no render or generation {target} in the ledger", err=True)
            return Exit.API_FAILURE
        if render.api_url.startswith("sandbox:"):
            click.echo("klingspec: this render ran in the in-process sandbox, which is gone", err=True)
            return Exit.API_FAILURE
        if not render.active:
            click.echo(f"render {render.id} is {render.state}: nothing to cancel")
            return Exit.OK
        live = [g for g in generations if g.status not in ("succeeded", "failed", "cancelled")]
        if not live:
            if render.state == "intent" and target.isdigit():  # recorded, never sent
                ledger.set_state(render.id, "cancelled", "cancelled before it was sent")
                click.echo(f"cancelled render {render.id} (it was never sent)")
                return Exit.OK
            if render.state in ("sent", "unknown"):
                click.echo(
                    f"klingspec: render {render.id} was sent but its generation ids are not known yet; "
                    "`klingspec run` the script again to find them, then cancel",
                    err=True,
                )
                return Exit.API_FAILURE
            click.echo(f"render {render.id}: no generation is still in flight")
            return Exit.OK
        key = os.environ.get("OXEN_API_KEY")
        if not key:
            raise click.UsageError("set OXEN_API_KEY to cancel a render at the API")
        client = OxenClient.create(api_url or render.api_url, key)
        code = Exit.OK
        try:
            for g in live:
                try:
                    client.cancel(g.generation_id)
                    item = client.generation(g.generation_id)
                except ApiError as error:
                    click.echo(f"klingspec: {error}", err=True)
                    code = Exit.API_FAILURE
                    continue
                status = item.get("status", "cancelled")
                ledger.update_generation(g.generation_id, status, item.get("result_url"), item.get("error_message"))
                click.echo(f"{g.generation_id}: {status}")
            statuses = [g.status for g in ledger.generations(render.id)]
            if (
                all(s in ("succeeded", "failed", "cancelled") for s in statuses)
                and "cancelled" in statuses
                and "succeeded" not in statuses
            ):
                ledger.set_state(render.id, "cancelled")
        finally:
            client.close()
        return code


def serve_sandbox(*, host: str, port: int, processing_seconds: float | None) -> int:
    from klingspec.sandbox import SandboxConfig, serve

    config = SandboxConfig() if processing_seconds is None else SandboxConfig(processing_seconds=processing_seconds)
    click.echo(f"klingspec sandbox: http://{host}:{port}/api (any bearer key; Ctrl-C stops)", err=True)
    serve(host, port, config)
    return Exit.OK


def watch(
    *,
    paths,
    options: Options,
    render: bool,
    budget: float | None,
    cancel_stale: bool,
    sandbox: bool,
    out_dir: str | None,
    api_url: str | None,
    ledger_path: str | None,
) -> int:
    """`klingspec watch`: runs until Ctrl-C, then exits 0 with the ledger consistent."""
    import threading

    from klingspec.cli.watching import SessionRenders, Watcher, loop

    lock = threading.Lock()

    def out(line: str) -> None:
        with lock:
            click.echo(line)
            sys.stdout.flush()

    stack = contextlib.ExitStack()
    renders = None
    try:
        if render:
            from klingspec.run.client import OxenClient
            from klingspec.run.ledger import Ledger
            from klingspec.run.runner import PollPolicy, Runner

            base_url, key, ledger_url = stack.enter_context(_api(sandbox, api_url))
            poll = PollPolicy(initial=0.2, factor=1.5, cap=2.0, sse_check=5.0) if sandbox else PollPolicy()

            def make_runner():
                return Runner(OxenClient.create(base_url, key), Ledger(ledger_path), api_url=ledger_url, poll=poll)

            renders = SessionRenders(
                make_runner=make_runner,
                out=out,
                budget=Decimal(str(budget)) if budget is not None else None,
                cancel_stale=cancel_stale,
                out_dir=out_dir,
            )
        watcher = Watcher(paths, options, out=out, render=renders)
        with contextlib.suppress(KeyboardInterrupt):
            loop(watcher)
        in_flight = renders.stop() if renders else 0
        out(
            "watch: stopped"
            + (
                f"; {in_flight} render{'s' if in_flight != 1 else ''} still in flight "
                "(`klingspec status` shows them; `klingspec run` picks them up)"
                if in_flight
                else ""
            )
        )
        return Exit.OK
    finally:
        with contextlib.suppress(KeyboardInterrupt):
            stack.close()
