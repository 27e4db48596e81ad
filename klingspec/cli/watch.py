"""`klingspec watch`: re-check (and with --run re-render) scripts on every save.

The engine is `klingspec.cli.watching` (folders, debounce, session renders); this module
wires it to the command line and, with --run, to the API and the ledger.
"""

from __future__ import annotations

import contextlib
import sys
from decimal import Decimal
from typing import TYPE_CHECKING

import click

from klingspec.cli.consent import Consent, amount, ask, can_ask, decide, refusal
from klingspec.cli.options import (
    api_options,
    assets_option,
    budget_option,
    examples,
    out_option,
    pipeline_options,
    project_of,
    var_options,
)
from klingspec.cli.report import Report

if TYPE_CHECKING:
    from klingspec.cli.watching import Say, Watcher
    from klingspec.preview.live import Server


@click.command(
    epilog=examples(
        "klingspec watch examples/",
        "klingspec watch examples/teaser.kvs --run --sandbox",
        "klingspec watch scenes/ --run --budget 5   # re-render on change, $5 at most",
        "klingspec watch examples/teaser.kvs --preview --open   # its storyboard, reloaded on every save",
    ),
)
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@var_options
@assets_option
@click.option("--run", "render", is_flag=True, help="Re-render when the compiled request changes.")
@budget_option("With --run: never spend more than this in the whole watch session.")
@click.option("--yes", "-y", is_flag=True, help="With --run: do not ask before rendering at the API.")
@click.option("--cancel-stale", is_flag=True, help="With --run: cancel an in-flight render a newer edit superseded.")
@click.option("--sandbox", is_flag=True, help="With --run: render against the built-in emulator.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Lines for people, or one JSON object per event (JSON Lines) for programs.",
)
@click.option(
    "--preview",
    is_flag=True,
    help="Serve each script's storyboard (as `klingspec preview` draws it) on 127.0.0.1 and reload it "
    "in the browser on every save; with --run its takes appear as they finish.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default="0: any free port",
    help="With --preview: the port to serve on.",
)
@click.option("--open", "open_it", is_flag=True, help="With --preview: open the page in the web browser.")
@out_option
@api_options
def watch(
    paths: tuple[str, ...],
    var_options: tuple[str, ...],
    var_files: tuple[str, ...],
    assets: str | None,
    render: bool,
    budget: float | None,
    yes: bool,
    cancel_stale: bool,
    sandbox: bool,
    out_dir: str | None,
    fmt: str,
    preview: bool,
    port: int,
    open_it: bool,
    api_url: str | None,
    ledger_path: str | None,
) -> None:
    """Re-check (and with --run re-render) scripts on every save. PATH: scripts or folders."""
    # Runs until Ctrl-C, then exits 0 with the ledger consistent.
    if (port or open_it) and not preview:
        raise click.UsageError("--port and --open go with --preview")
    options = pipeline_options(var_options, var_files, assets=assets)
    from klingspec.cli.watching import Say, SessionRenders, Watcher, loop

    project = project_of(paths)  # its budget caps the session (consent still comes from here)
    cap = budget if budget is not None else project.value("budget")
    out_dir = out_dir or project.value("out")
    api_url = api_url or project.value("api_url")

    def write(line: str) -> None:
        click.echo(line)
        sys.stdout.flush()

    out = Say(write, json_lines=fmt == "json")

    stack = contextlib.ExitStack()
    renders = None
    try:
        # the port is taken before anything is asked or opened: a busy one fails first
        server = _server(stack, port, ledger_path) if preview else None
        if render:
            from klingspec.cli.renders import api_connection, poll_policy
            from klingspec.run.client import OxenClient
            from klingspec.run.ledger import Ledger
            from klingspec.run.runner import Runner

            base_url, key, ledger_url = stack.enter_context(api_connection(sandbox, api_url))
            consent = decide(sandbox=sandbox, yes=yes, budget=budget, terminal=can_ask() and fmt != "json")
            if consent is not Consent.GIVEN:
                render = _session_consent(consent, Watcher(paths, options, out=out), out)
            poll = poll_policy(sandbox)

            def make_runner() -> Runner:
                return Runner(OxenClient.create(base_url, key), Ledger(ledger_path), api_url=ledger_url, poll=poll)

            if render:
                renders = SessionRenders(
                    make_runner=make_runner,
                    out=out,
                    budget=Decimal(str(cap)) if cap is not None else None,
                    cancel_stale=cancel_stale,
                    out_dir=out_dir,
                )
        watcher = Watcher(paths, options, out=out, render=renders)
        if server is not None:
            _serve(server, watcher, out, open_it)
        with contextlib.suppress(KeyboardInterrupt):
            loop(watcher)
        in_flight = renders.stop() if renders else 0
        out(
            "stopped",
            "watch: stopped"
            + (
                f"; {in_flight} render{'s' if in_flight != 1 else ''} still in flight "
                "(`klingspec status` shows them; `klingspec run` picks them up)"
                if in_flight
                else ""
            ),
            in_flight=in_flight,
        )
        raise SystemExit(Report().return_code)  # Ctrl-C is how a watch ends: not a failure
    finally:
        with contextlib.suppress(KeyboardInterrupt):
            stack.close()


def _server(stack: contextlib.ExitStack, port: int, ledger: str | None) -> Server:
    """The live storyboard server (klingspec/preview/live.py), listening; stopped with the watch."""
    from klingspec.preview.live import Live, Server

    try:
        server = Server(Live(ledger), port)
    except OSError as error:
        raise click.UsageError(f"cannot serve the preview on 127.0.0.1:{port}: {error.strerror or error}") from None
    stack.callback(server.close)
    return server


def _serve(server: Server, watcher: Watcher, out: Say, open_it: bool) -> None:
    """Serve the pages, told every check from the first on, so the first page already shows it."""
    live = server.live
    server.start()
    watcher.on_check = live.checked

    def told(event: str, fields: dict[str, object]) -> None:
        path = fields.get("path")
        if isinstance(path, str) and event in ("render-finished", "render-error"):
            live.changed(path)
        elif isinstance(path, str) and event == "removed":
            live.removed(path)

    out.listeners.append(told)
    out("serving", f"watch: storyboards at {server.url} (reloaded on every save)", url=server.url)
    if open_it:
        import webbrowser

        webbrowser.open(server.url)


def _session_consent(consent: Consent, watcher: Watcher, out: Say) -> bool:
    """Asked once for the whole session, before watching: True to render. Without a
    terminal to ask, nothing is watched or sent (exit 4); a "no" leaves a checker."""
    count, cost = watcher.startup_spend()
    first = (
        f"the first renders: {count} script{'s' if count != 1 else ''}, {amount(cost)}"
        if count
        else "nothing to render yet"
    )
    if consent is Consent.REFUSED:
        click.echo(
            refusal(
                f"this watch would render at the API on each save that changes a request ({first})",
                "to cap the session",
            ),
            err=True,
        )
        raise SystemExit(Report(consent_refused=True).return_code)
    if ask(f"This watch session renders at the API on each save that changes a request; {first}. Render?"):
        return True
    out("declined", "watch: not rendering this session (declined): checking only, nothing is sent")
    return False
