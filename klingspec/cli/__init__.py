"""The command line: thin commands over `pipeline`, exit codes from `report.Report`.

The contract is ../shared/design/CLI.md. Heavy imports (rich, jsonschema, httpx,
watchfiles, pygls) happen inside the commands that need them, so `check` starts fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import click

from klingspec import __version__
from klingspec.cli.report import Exit, Report
from klingspec.pipeline import Options, Result, run_pipeline


def _color(stream) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def _print_diagnostics(results: Sequence[Result], fmt: str, stream=None) -> None:
    from klingspec import printing

    stream = stream or sys.stdout
    diagnostics = [d for r in results for d in r.diagnostics]
    if fmt == "json":
        stream.write(printing.as_json(diagnostics))
    elif fmt == "sarif":
        stream.write(printing.as_sarif(diagnostics, __version__))
    else:
        stream.write(printing.texts(diagnostics, printing.TextStyle(color=_color(stream))))


def _report(results: Sequence[Result]) -> Report:
    return Report(errors=sum(r.errors for r in results), warnings=sum(r.warnings for r in results), files=len(results))


def _name_value(ctx, param, values):
    """`--var` must be NAME=VALUE: anything else is a usage error (exit 2)."""
    import re

    for value in values:
        name, sep, _ = value.partition("=")
        if not sep or not re.fullmatch(r"[^\W\d]\w*", name):
            raise click.BadParameter(f"{value!r} is not NAME=VALUE (names are letters, digits and _)")
    return values


def var_options(function):
    function = click.option(
        "--vars",
        "var_files",
        multiple=True,
        metavar="FILE",
        type=click.Path(exists=True, dir_okay=False),
        help="Template variables from a JSON or TOML file (repeatable).",
    )(function)
    function = click.option(
        "--var",
        "var_options",
        multiple=True,
        metavar="NAME=VALUE",
        callback=_name_value,
        help="Set a template variable; overrides `let` (repeatable).",
    )(function)
    return function


class _Group(click.Group):
    """Lists commands in the order of the contract rather than alphabetically."""

    def list_commands(self, ctx):
        return list(self.commands)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="klingspec")
def main_group() -> None:
    """klingspec: scene scripts (.kvs) to checked, priced Kling video requests."""


@main_group.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True))
@var_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "sarif"]),
    default="text",
    help="Diagnostics for people (text) or programs (json, sarif).",
)
def check(files, var_options, var_files, fmt) -> None:
    """Parse, expand, bind and check scripts; print diagnostics."""
    paths = expand_paths(files)
    options = Options(tuple(var_options), tuple(var_files), validate_schema=False, library_ok=True)
    results = [run_pipeline(path, options) for path in paths]
    _print_diagnostics(results, fmt)
    report = _report(results)
    if fmt == "text":
        from klingspec.printing import summary

        click.echo(summary(report.errors, report.warnings, report.files), err=True)
    raise SystemExit(report.return_code)


def expand_paths(files: Sequence[str]) -> list[str]:
    """A folder stands for the .kvs files inside it (recursively, sorted)."""
    paths: list[str] = []
    for item in files:
        if os.path.isdir(item):
            for root, dirs, names in os.walk(item):
                dirs.sort()
                paths += [os.path.join(root, n) for n in sorted(names) if n.endswith(".kvs")]
        else:
            paths.append(item)
    return paths


@main_group.command(name="compile")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the JSON here instead of stdout.")
@var_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    help="How diagnostics are printed (on stderr).",
)
def compile_(file, output, var_options, var_files, fmt) -> None:
    """Check a script, then print its request body as JSON."""
    result = run_pipeline(file, Options(tuple(var_options), tuple(var_files)))
    _print_diagnostics([result], fmt, sys.stderr)
    report = _report([result])
    if report.errors or result.request is None:
        raise SystemExit(Exit.SCRIPT_ERRORS)
    if output:
        _write_atomically(output, result.request.json)
    else:
        sys.stdout.write(result.request.json)
    raise SystemExit(report.return_code)


def _write_atomically(path: str, text: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    os.replace(tmp, path)


@main_group.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@var_options
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Save the exact request bodies and their content hashes (for `run`).",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def plan(files, var_options, var_files, output, fmt) -> None:
    """Check scripts, then preview the cost: per shot, total seconds, price, generations, USD."""
    from klingspec.cli import plans as planning

    options = Options(tuple(var_options), tuple(var_files))
    results = [run_pipeline(path, options) for path in files]
    failed = [r for r in results if not r.ok or r.request is None]
    _print_diagnostics(results, "json" if fmt == "json" and failed else "text", sys.stderr)
    report = _report(results)
    if failed:
        if not report.errors:  # a library given to plan: no shot is an error here
            report.errors = len(failed)
        raise SystemExit(report.return_code)
    plans = [planning.plan_of(r, options) for r in results]
    if fmt == "json":
        sys.stdout.write(planning.as_json(plans))
    else:
        planning.print_table(plans)
    if output:
        _write_atomically(output, planning.saved_file(plans))
        click.echo(f"saved {len(plans)} request{'s' if len(plans) != 1 else ''} to {output}", err=True)
    raise SystemExit(report.return_code)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: runs a command and returns its exit code; never shows a traceback."""
    try:
        main_group.main(args=list(argv) if argv is not None else None, prog_name="klingspec", standalone_mode=False)
    except SystemExit as done:
        return int(done.code or 0)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        return Exit.INTERRUPTED
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return Exit.INTERRUPTED
    except BrokenPipeError:
        return Exit.OK
    except Exception as error:  # a klingspec bug: say so plainly, without a traceback
        click.echo(
            f"klingspec: internal error: {type(error).__name__}: {error}\n"
            "please report this with the script that caused it",
            err=True,
        )
        if os.environ.get("KLINGSPEC_DEBUG"):
            raise
        return Exit.SCRIPT_ERRORS
    return Exit.OK


# -- running ---------------------------------------------------------------------------


def _api_options(function):
    function = click.option(
        "--api-url",
        envvar="KLINGSPEC_API_URL",
        default=None,
        metavar="URL",
        help="API base URL (default https://hub.oxen.ai/api; env KLINGSPEC_API_URL).",
    )(function)
    function = click.option(
        "--ledger",
        "ledger_path",
        envvar="KLINGSPEC_LEDGER",
        default=None,
        metavar="FILE",
        help="The job ledger (default ~/.klingspec/ledger.sqlite; env KLINGSPEC_LEDGER).",
    )(function)
    return function


@main_group.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@var_options
@click.option("--dry-run", is_flag=True, help="Show the plan and the exact request bodies; send nothing.")
@click.option("--sandbox", is_flag=True, help="Run against the built-in emulator: no key, no money.")
@click.option("--queue/--sync", "queue", default=True, help="Use the async queue (default) or the sync endpoint.")
@click.option(
    "--budget",
    type=click.FLOAT,
    default=None,
    metavar="USD",
    help="Refuse (exit 4) if this run plus renders in flight would cost more.",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where videos land (default: renders/ beside each script).",
)
@click.option("--again", is_flag=True, help="Render anew even if this exact request was rendered before.")
@click.option("--concurrency", type=click.IntRange(1, 16), default=4, help="Renders in flight at once.")
@click.option("--poll", "poll_only", is_flag=True, help="Follow by polling only (no server-sent events).")
@_api_options
def run(
    files,
    var_options,
    var_files,
    dry_run,
    sandbox,
    queue,
    budget,
    yes,
    out_dir,
    again,
    concurrency,
    poll_only,
    api_url,
    ledger_path,
) -> None:
    """Plan, confirm, submit, follow and download renders. FILE is a script or a saved plan.json."""
    from klingspec.cli import renders as runcommand

    raise SystemExit(
        runcommand.run(
            files=files,
            options=Options(tuple(var_options), tuple(var_files)),
            dry_run=dry_run,
            sandbox=sandbox,
            mode="queue" if queue else "sync",
            budget=budget,
            yes=yes,
            out_dir=out_dir,
            again=again,
            concurrency=concurrency,
            sse=not poll_only,
            api_url=api_url,
            ledger_path=ledger_path,
        )
    )


@main_group.command()
@click.option("--all", "show_all", is_flag=True, help="Also finished renders.")
@click.option("--refresh", is_flag=True, help="Ask the API for the current state of renders in flight.")
@_api_options
def status(show_all, refresh, api_url, ledger_path) -> None:
    """Show renders in flight (from the local ledger)."""
    from klingspec.cli import renders as runcommand

    raise SystemExit(
        runcommand.status(active_only=not show_all, refresh=refresh, api_url=api_url, ledger_path=ledger_path)
    )


@main_group.command(name="ls")
@click.option("-n", "limit", type=click.IntRange(1, 10_000), default=20, help="How many renders.")
@_api_options
def ls_(limit, api_url, ledger_path) -> None:
    """List recent renders and their files."""
    from klingspec.cli import renders as runcommand

    raise SystemExit(runcommand.listing(limit=limit, ledger_path=ledger_path))


@main_group.command()
@click.argument("render_or_generation")
@_api_options
def cancel(render_or_generation, api_url, ledger_path) -> None:
    """Cancel a render (ledger id) or one generation (its id) that is still in flight."""
    from klingspec.cli import renders as runcommand

    raise SystemExit(runcommand.cancel(render_or_generation, api_url=api_url, ledger_path=ledger_path))


@main_group.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8765, help="Port on 127.0.0.1 (0: any free port).")
@click.option("--host", default="127.0.0.1", help="Interface to bind (loopback by default).")
@click.option("--processing-seconds", type=click.FLOAT, default=None, help="How long each job takes to render.")
def sandbox(port, host, processing_seconds) -> None:
    """Serve the local emulator of the Oxen API until Ctrl-C."""
    from klingspec.cli import renders as runcommand

    raise SystemExit(runcommand.serve_sandbox(host=host, port=port, processing_seconds=processing_seconds))


@main_group.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@var_options
@click.option("--run", "render", is_flag=True, help="Re-render when the compiled request changes.")
@click.option(
    "--budget",
    type=click.FLOAT,
    default=None,
    metavar="USD",
    help="With --run: never spend more than this in the whole watch session.",
)
@click.option("--cancel-stale", is_flag=True, help="With --run: cancel an in-flight render a newer edit superseded.")
@click.option("--sandbox", is_flag=True, help="With --run: render against the built-in emulator.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where videos land (default: renders/ beside each script).",
)
@_api_options
def watch(paths, var_options, var_files, render, budget, cancel_stale, sandbox, out_dir, api_url, ledger_path) -> None:
    """Re-check (and with --run re-render) scripts on every save. PATH: scripts or folders."""
    from klingspec.cli import renders as runcommand

    raise SystemExit(
        runcommand.watch(
            paths=paths,
            options=Options(tuple(var_options), tuple(var_files)),
            render=render,
            budget=budget,
            cancel_stale=cancel_stale,
            sandbox=sandbox,
            out_dir=out_dir,
            api_url=api_url,
            ledger_path=ledger_path,
        )
    )


@main_group.command()
@var_options
def lsp(var_options, var_files) -> None:
    """Run the language server on stdin/stdout (for editors; needs the [lsp] extra)."""
    try:
        from klingspec.lsp import server
    except ImportError as error:  # pygls is an optional dependency
        raise click.ClickException(f"the language server needs pygls: pip install 'klingspec[lsp]' ({error})") from None
    server.main(Options(tuple(var_options), tuple(var_files)))


@main_group.command(name="fmt")
@click.argument("files", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.option("--check", is_flag=True, help="Write nothing; list the files that would change and exit 1 if any.")
@click.option("--diff", "show_diff", is_flag=True, help="Write nothing; print what would change as a unified diff.")
def fmt_command(files, check, show_diff) -> None:
    """Rewrite scripts in the canonical layout (`-`: stdin to stdout). FILE may be a folder."""
    from klingspec import formatting

    paths = [f if f == "-" else p for f in files for p in ([f] if f == "-" else expand_paths([f]))]
    raise SystemExit(formatting.run_fmt(paths, check=check, diff=show_diff, color=_color(sys.stderr)))
