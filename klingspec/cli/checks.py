"""`check`, `compile` and `plan`: the language commands. They read scripts and print
diagnostics, a request body or a cost preview; none of them touches the network."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import click

from klingspec.cli.options import (
    assets_option,
    pipeline_options,
    print_diagnostics,
    report_of,
    var_options,
    write_atomically,
)
from klingspec.diagnostics import Diagnostic
from klingspec.loading import discover_scripts


@dataclass(frozen=True)
class _Cached:
    """A file's diagnostics answered from the check cache."""

    diagnostics: tuple[Diagnostic, ...]


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True))
@var_options
@assets_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "sarif"]),
    default="text",
    help="Diagnostics for people (text) or programs (json, sarif).",
)
@click.option("--no-cache", is_flag=True, help="Check every file anew; neither read nor write the result cache.")
def check(
    files: tuple[str, ...],
    var_options: tuple[str, ...],
    var_files: tuple[str, ...],
    assets: str | None,
    fmt: str,
    no_cache: bool,
) -> None:
    """Parse, expand, bind and check scripts; print diagnostics."""
    from klingspec.cli.cache import CheckCache, RecordingReader

    cache = CheckCache.open(enabled=not no_cache)
    results: list[_Cached] = []
    for path in discover_scripts(files):
        found = cache.get(path, var_options, var_files, assets=assets)
        if found is None:  # the pipeline (and Lark, Jinja) load only on a miss
            from klingspec.pipeline import run_pipeline

            options = pipeline_options(var_options, var_files, validate_schema=False, library_ok=True, assets=assets)
            reader = RecordingReader()
            found = run_pipeline(path, options, reader).diagnostics
            cache.put(path, var_options, var_files, reader, found, assets=assets)
        results.append(_Cached(found))
    print_diagnostics(results, fmt)
    report = report_of(results)
    if fmt == "text":
        from klingspec.printing import summary

        click.echo(summary(report.errors, report.warnings, report.files), err=True)
    raise SystemExit(report.return_code)


@click.command(name="compile")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the JSON here instead of stdout.")
@var_options
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
    assets: str | None,
    fmt: str,
) -> None:
    """Check a script, then print its request body as JSON (local images as the URL they
    are uploaded to; nothing is uploaded)."""
    from klingspec.pipeline import run_pipeline

    result = run_pipeline(file, pipeline_options(var_options, var_files, assets=assets))
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


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@var_options
@assets_option
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Save the exact request bodies and their content hashes (for `run`).",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def plan(
    files: tuple[str, ...],
    var_options: tuple[str, ...],
    var_files: tuple[str, ...],
    assets: str | None,
    output: str | None,
    fmt: str,
) -> None:
    """Check scripts, then preview the cost: per shot, total seconds, price, generations, USD."""
    from klingspec.cli import plans
    from klingspec.pipeline import run_pipeline

    options = pipeline_options(var_options, var_files, assets=assets)
    results = [run_pipeline(path, options) for path in files]
    failed = [r for r in results if not r.ok or r.request is None]
    print_diagnostics(results, "json" if fmt == "json" and failed else "text", sys.stderr)
    report = report_of(results)
    if failed:
        if not report.errors:  # a library given to plan: no shot is an error here
            report.errors = len(failed)
        raise SystemExit(report.return_code)
    previews = [plans.plan_of(r, options) for r in results]
    if fmt == "json":
        sys.stdout.write(plans.as_json(previews))
    else:
        plans.print_table(previews)
    if output:
        write_atomically(output, plans.saved_file(previews))
        click.echo(f"saved {len(previews)} request{'s' if len(previews) != 1 else ''} to {output}", err=True)
    raise SystemExit(report.return_code)
