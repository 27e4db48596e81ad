"""`check`, `compile` and `plan`: the language commands. They read scripts and print
diagnostics, a request body or a cost preview. Only `check --online` touches the network,
through `run/reachability.py`, to ask image hosts what they answer (never the API)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from klingspec.cli.options import (
    api_options,
    assets_option,
    examples,
    pipeline_options,
    print_diagnostics,
    project_of,
    refuse_films,
    report_of,
    results_of,
    var_options,
    vars_table_option,
    write_atomically,
)
from klingspec.diagnostics import Diagnostic
from klingspec.loading import discover_scripts

if TYPE_CHECKING:
    from collections.abc import Sequence

    from klingspec.binding import BoundScript
    from klingspec.comparing import Trial
    from klingspec.pipeline import Options, Result


@dataclass(frozen=True)
class _Cached:
    """A file's diagnostics answered from the check cache."""

    diagnostics: tuple[Diagnostic, ...]


@click.command(
    epilog=examples(
        "klingspec check examples/teaser.kvs",
        "klingspec check examples/ --format sarif > klingspec.sarif",
        "klingspec check --online examples/teaser.kvs   # also ask each image URL",
    ),
)
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True))
@var_options
@vars_table_option
@assets_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "sarif"]),
    default="text",
    help="Diagnostics for people (text) or programs (json, sarif).",
)
@click.option("--no-cache", is_flag=True, help="Check every file anew; neither read nor write the result cache.")
@click.option(
    "--max-seconds",
    type=click.IntRange(min=1),
    default=None,
    metavar="SECONDS",
    help="A film may run no longer than this (KVS-film-length).",
)
@click.option(
    "--online",
    is_flag=True,
    help="Also fetch the headers of every http(s) image URL and report what the servers answer (no credentials sent).",
)
@click.option(
    "--online-timeout",
    type=click.FloatRange(min=0.1, max=120),
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="How long --online waits for each URL, redirects included.",
)
def check(
    files: tuple[str, ...],
    var_options: tuple[str, ...],
    var_files: tuple[str, ...],
    vars_table: str | None,
    assets: str | None,
    fmt: str,
    no_cache: bool,
    online: bool,
    online_timeout: float,
    max_seconds: int | None,
) -> None:
    """Parse, expand, bind and check scripts (and films, scene by scene); print diagnostics."""
    if vars_table is not None:
        if online:
            raise click.UsageError("--online checks a script's URLs once: leave out --vars-table")
        _check_variants(files, var_options, var_files, vars_table, assets, fmt, max_seconds)
    from klingspec.cli.cache import CheckCache

    cache = CheckCache.open(enabled=not no_cache)
    results: list[_Cached] = []
    scripts: list[BoundScript | None] = []
    from klingspec.films import without_scenes

    for path in without_scenes(discover_scripts(files)):
        # --online needs the bound script (its URLs and their places), so it always runs the
        # pipeline; it still stores the offline result, which is what a plain check prints
        # --online needs the bound script; --max-seconds is not part of the cache's key
        found = None if online or max_seconds else cache.get(path, var_options, var_files, assets=assets)
        bound = None
        if found is None:  # the pipeline (and the parser, Jinja) load only on a miss
            from klingspec.pipeline import run_pipeline

            options = _check_options(var_options, var_files, assets, max_seconds)
            reader = cache.reader()
            result = run_pipeline(path, options, reader)
            found, bound = result.diagnostics, result.bound
            if max_seconds is None:  # the cache's key does not hold --max-seconds
                cache.put(path, var_options, var_files, reader, found, assets=assets)
        results.append(_Cached(found))
        scripts.append(bound)
    if online:
        results = _online(results, scripts, online_timeout, cache_enabled=not no_cache, say=fmt == "text")
    print_diagnostics(results, fmt)
    report = report_of(results)
    if fmt == "text":
        from klingspec.printing import summary

        click.echo(summary(report.errors, report.warnings, report.files), err=True)
    raise SystemExit(report.return_code)


def _compile_variants(file: str, output: str | None, options: Options, vars_table: str, fmt: str) -> None:
    """One body per row, `SCRIPT.row-N.json` in the folder; none at all when a row has errors."""
    results = results_of([file], options, vars_table)
    refuse_films(results, "compile")
    print_diagnostics(results, fmt, sys.stderr)
    report = report_of(results)
    if report.errors or any(r.request is None for r in results):
        report.errors = report.errors or 1
        raise SystemExit(report.return_code)
    stem = os.path.splitext(os.path.basename(file))[0]
    folder = output or os.path.join(os.path.dirname(file), stem + ".bodies")
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise click.BadParameter(f"{folder} is a file: with --vars-table, -o names a folder", param_hint="-o")
    os.makedirs(folder, exist_ok=True)
    import glob

    for stale in glob.glob(os.path.join(glob.escape(folder), glob.escape(stem) + ".row-*.json")):
        os.unlink(stale)  # an earlier table's rows: whoever sends the folder must not send them too
    for result in results:
        assert result.request is not None and result.variant is not None
        row = result.variant.split()[-1]
        write_atomically(os.path.join(folder, f"{stem}.row-{row}.json"), result.request.json)
    click.echo(f"wrote {len(results)} bodies to {folder}", err=True)
    raise SystemExit(report.return_code)


def _check_variants(
    files: tuple[str, ...],
    var_options: tuple[str, ...],
    var_files: tuple[str, ...],
    vars_table: str,
    assets: str | None,
    fmt: str,
    max_seconds: int | None = None,
) -> None:
    """`check --vars-table`: every script once per row (uncached: a row is not a file)."""
    options = _check_options(var_options, var_files, assets, max_seconds)
    from klingspec.films import without_scenes

    results = results_of(without_scenes(discover_scripts(files)), options, vars_table)
    print_diagnostics(results, fmt)
    report = report_of(results)
    if fmt == "text":
        from klingspec.printing import summary

        bad = sorted({r.variant for r in results if not r.ok and r.variant}, key=lambda v: int(v.split()[-1]))
        if bad:
            rows = f"{len(bad)} row has" if len(bad) == 1 else f"{len(bad)} rows have"
            click.echo(f"{vars_table}: {rows} errors: {', '.join(bad)}", err=True)
        click.echo(summary(report.errors, report.warnings, report.files), err=True)
    raise SystemExit(report.return_code)


def _check_options(
    var_options: tuple[str, ...], var_files: tuple[str, ...], assets: str | None, max_seconds: int | None
) -> Options:
    """What `check` asks of the pipeline: checks only (no body, no schema), libraries welcome."""
    return pipeline_options(
        var_options,
        var_files,
        validate_schema=False,
        library_ok=True,
        assets=assets,
        check_only=True,
        max_seconds=max_seconds,
    )


def _online(
    results: list[_Cached], scripts: list[BoundScript | None], timeout: float, *, cache_enabled: bool, say: bool
) -> list[_Cached]:
    """Each file's diagnostics with what its http(s) URLs answer (`run/reachability.py`):
    every distinct URL of every file is asked once, in parallel."""
    from klingspec.checking import _all_uris  # the places the URI rules look at
    from klingspec.diagnostics import sort_unique
    from klingspec.media_urls import http_url
    from klingspec.run.reachability import AnswerCache, ask_all, diagnostics_of

    places = [
        [(text, url) for text in _all_uris(bound) if http_url(url := bound.uri(text))] if bound else []
        for bound in scripts
    ]
    asked = ask_all((url for file in places for _, url in file), timeout, AnswerCache.open(enabled=cache_enabled))
    if say:
        fetched = len(asked.answers) - asked.cached
        click.echo(f"online: {_urls(len(asked.answers))} ({fetched} fetched, {asked.cached} from the cache)", err=True)
    return [
        _Cached(sort_unique([*result.diagnostics, *(d for t, u in file for d in diagnostics_of(asked.answers[u], t))]))
        for result, file in zip(results, places, strict=True)
    ]


def _urls(n: int) -> str:
    return f"{n} URL{'s' if n != 1 else ''} checked"


@click.command(
    name="compile",
    epilog=examples(
        "klingspec compile examples/teaser.kvs",
        "klingspec compile examples/campaign.kvs --vars examples/campaign.vars.toml -o body.json",
        "klingspec compile examples/campaign.kvs --vars-table variants.csv -o bodies/   # one body per row",
    ),
)
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(),
    help="Write the JSON here instead of stdout (with --vars-table: a folder, one SCRIPT.row-N.json per row; "
    "default SCRIPT.bodies/ beside the script).",
)
@var_options
@vars_table_option
@assets_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    help="How diagnostics are printed (on stderr).",
)
def compile_(
    file: str,
    output: str | None,
    var_options: tuple[str, ...],
    var_files: tuple[str, ...],
    vars_table: str | None,
    assets: str | None,
    fmt: str,
) -> None:
    """Check a script, then print its request body as JSON (local images as the URL they
    are uploaded to; nothing is uploaded)."""
    from klingspec.pipeline import run_pipeline

    if vars_table is not None:
        if output == "-":
            raise click.BadParameter("with --vars-table, -o names a folder (one body per row)", param_hint="-o")
        _compile_variants(file, output, pipeline_options(var_options, var_files, assets=assets), vars_table, fmt)
    if output is not None and os.path.isdir(output):
        raise click.BadParameter(f"{output} is a folder: name a file", param_hint="-o")

    result = run_pipeline(file, pipeline_options(var_options, var_files, assets=assets))
    refuse_films([result], "compile")
    print_diagnostics([result], fmt, sys.stderr)
    report = report_of([result])
    if result.request is None:
        report.errors = report.errors or 1
    if report.errors or result.request is None:
        raise SystemExit(report.return_code)
    if output:
        write_atomically(output, result.request.json)
    else:
        sys.stdout.write(result.request.json)
    raise SystemExit(report.return_code)


@click.command(
    epilog=examples(
        "klingspec plan examples/teaser.kvs",
        "klingspec plan examples/teaser.kvs --compare all",
        "klingspec plan examples/teaser.kvs -o plan.json   # then: klingspec run plan.json",
    ),
)
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@var_options
@vars_table_option
@assets_option
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Save the exact request bodies and their content hashes (for `run`).",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("--sandbox", is_flag=True, help="Price against the sandbox's renders in the ledger, not the API's.")
@click.option("--again", is_flag=True, help="Show the full price, as `run --again` would pay it.")
@click.option(
    "--compare",
    "compare_with",
    metavar="MODEL[,MODEL...]",
    default=None,
    help="Also price each script on these models (or `all`), with what each would reject.",
)
@api_options
def plan(
    files: tuple[str, ...],
    var_options: tuple[str, ...],
    var_files: tuple[str, ...],
    vars_table: str | None,
    assets: str | None,
    output: str | None,
    fmt: str,
    sandbox: bool,
    again: bool,
    api_url: str | None,
    ledger_path: str | None,
    compare_with: str | None,
) -> None:
    """Check scripts, then preview the cost: per shot, total seconds, price, generations, USD,
    and what the ledger already holds (new spend)."""
    from klingspec.cli import plans

    if vars_table is not None and compare_with is not None:
        raise click.UsageError("--compare prices one script on several models: leave out --vars-table")
    options = pipeline_options(var_options, var_files, assets=assets, vars_table=vars_table)
    results = results_of(files, options, vars_table)
    if any(r.film is not None for r in results):
        if len(results) != 1 or compare_with is not None or output is not None:
            raise click.UsageError("plan takes a film alone, for now without --vars-table, --compare or -o")
        _plan_film(results[0], options, fmt, sandbox=sandbox, again=again, api_url=api_url, ledger_path=ledger_path)
    failed = [r for r in results if not r.ok or r.request is None]
    print_diagnostics(results, "json" if fmt == "json" and failed else "text", sys.stderr)
    report = report_of(results)
    trials = _trials(files, options, compare_with)
    if failed:
        if not report.errors:  # a library given to plan: no shot is an error here
            report.errors = len(failed)
        if trials is not None:  # which model would take the script is most useful now
            _print_trials(files, trials, fmt)
        raise SystemExit(report.return_code)
    api_url = api_url or project_of(files).value("api_url")  # the API `run` would use
    previews = [plans.plan_of(r, options) for r in results]
    jobs = [p.job() for p in previews]
    marks = plans.ledger_standings(jobs, sandbox=sandbox, api_url=api_url, ledger_path=ledger_path, again=again)
    uploaded = (
        plans.ledger_uploaded(sandbox=sandbox, api_url=api_url, ledger_path=ledger_path)
        if any(p.uploads for p in previews)
        else frozenset()
    )
    if fmt == "json":
        from klingspec.cli import comparisons

        compared = [comparisons.as_json(t) for t in trials] if trials is not None else None
        sys.stdout.write(plans.as_json(previews, marks, uploaded, compared))
    else:
        plans.print_table(previews, marks, uploaded)
        if trials is not None:
            _print_trials(files, trials, fmt)
    if output:
        write_atomically(output, plans.saved_file(previews))
        click.echo(f"saved {len(previews)} request{'s' if len(previews) != 1 else ''} to {output}", err=True)
    raise SystemExit(report.return_code)


def _plan_film(
    result: Result,
    options: Options,
    fmt: str,
    *,
    sandbox: bool,
    again: bool,
    api_url: str | None,
    ledger_path: str | None,
) -> None:
    """`plan FILM` (cli/filmplans.py): its scenes, stages, total and new spend."""
    from klingspec.cli import filmplans

    print_diagnostics([result], "json" if fmt == "json" and not result.ok else "text", sys.stderr)
    report = report_of([result])
    if not result.ok:
        raise SystemExit(report.return_code)
    assert result.film is not None
    api_url = api_url or project_of([result.path]).value("api_url")
    scenes = filmplans.plan_film(
        result, options, sandbox=sandbox, again=again, api_url=api_url, ledger_path=ledger_path
    )
    if fmt == "json":
        sys.stdout.write(filmplans.as_json(result.path, result.film, scenes))
    else:
        filmplans.print_film(result.path, result.film, scenes)
    raise SystemExit(report.return_code)


def _trials(files: Sequence[str], options: Options, compare_with: str | None) -> list[list[Trial]] | None:
    """`--compare`: each script tried on its own model and on each model named."""
    if compare_with is None:
        return None
    from klingspec.comparing import compare, wanted

    models = wanted(compare_with)
    if not models:
        raise click.BadParameter("name at least one model, or `all`", param_hint="--compare")
    return [compare(path, options, models) for path in files]


def _print_trials(files: Sequence[str], trials: Sequence[Sequence[Trial]], fmt: str) -> None:
    import json

    from klingspec.cli import comparisons

    if fmt == "json":  # the plans could not be made: the comparisons alone, one per script
        payload = [{"path": path} | comparisons.as_json(t) for path, t in zip(files, trials, strict=True)]
        sys.stdout.write(json.dumps(payload[0] if len(payload) == 1 else {"plans": payload}, indent=2) + "\n")
        return
    for path, each in zip(files, trials, strict=True):
        comparisons.print_comparison(path, each)
