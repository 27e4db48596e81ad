"""`preview`: the storyboard of a script, one self-contained HTML file (klingspec/preview/).

It runs the pipeline as `plan` does and writes the page even when the script has errors
(then with the diagnostics in it, and exit 1): what the pipeline got to is still worth
seeing. Nothing is sent; `--open` hands the file to the web browser. When the job ledger
holds renders of the script, the page ends its timeline with their takes, playable
(klingspec/preview/takes.py); `--renders` shows that section even when there are none
and opens the page on it, `--no-renders` leaves the ledger unread.
"""

from __future__ import annotations

import os
import sys

import click

from klingspec.cli.options import (
    assets_option,
    examples,
    ledger_option,
    pipeline_options,
    print_diagnostics,
    refuse_films,
    report_of,
    var_options,
    vars_table_option,
    write_atomically,
)

SUFFIX = ".storyboard.html"


def default_output(script: str) -> str:
    """`scene.storyboard.html` beside `scene.kvs`."""
    stem, _ = os.path.splitext(script)
    return stem + SUFFIX


@click.command(
    epilog=examples(
        "klingspec preview examples/teaser.kvs   # writes examples/teaser.storyboard.html",
        "klingspec preview examples/campaign.kvs --vars examples/campaign.vars.toml -o campaign.html --open",
        "klingspec preview examples/morph.kvs -o -   # the page on stdout",
        "klingspec preview examples/teaser.kvs --renders --open   # its takes, played side by side",
        "klingspec preview examples/campaign.kvs --vars-table examples/campaign.variants.csv   # rows x takes",
    ),
)
@click.argument("script", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True),
    default=None,
    help="Where to write the page (default: SCRIPT's name with .storyboard.html, beside it; - for stdout).",
)
@click.option("--open", "open_it", is_flag=True, help="Open the page in the web browser once written.")
@click.option(
    "--renders/--no-renders",
    "renders",
    default=None,
    help="The takes already rendered (the ledger's, sandbox ones included): --renders shows the section "
    "even when there are none and opens the page on it; --no-renders leaves it out "
    "(default: shown when the ledger has renders of SCRIPT).",
)
@ledger_option
@var_options
@vars_table_option
@assets_option
def preview(
    script: str,
    output: str | None,
    open_it: bool,
    renders: bool | None,
    ledger_path: str | None,
    var_options: tuple[str, ...],
    var_files: tuple[str, ...],
    vars_table: str | None,
    assets: str | None,
) -> None:
    """Write a storyboard of SCRIPT: one HTML page with a timeline of its shots (each as wide
    as it is long), their prompts as sent with each @-reference under the author's name and
    its image, the start and end frames, the settings, seconds, generations and cost, and
    any diagnostics; then every take of SCRIPT the job ledger holds, playable, grouped by
    version with the current one first. Nothing is sent; the page needs no network to be
    viewed."""
    from klingspec.pipeline import run_pipeline
    from klingspec.preview import takes as sheet
    from klingspec.preview.storyboard import storyboard

    if open_it and output == "-":
        raise click.UsageError("--open needs a file: give -o FILE, or leave -o out")
    options = pipeline_options(var_options, var_files, assets=assets, vars_table=vars_table)
    if vars_table is not None:
        from dataclasses import replace

        from klingspec.cli.options import results_of

        results = results_of([script], options, vars_table)
        refuse_films(results, "preview")
        # the timeline is row 1's (a broken table: only its diagnostics); every row's are listed
        result = replace(results[0], diagnostics=tuple(d for r in results for d in r.diagnostics))
    else:
        result = run_pipeline(script, options)
        results = [result]
    print_diagnostics([result], "text", sys.stderr)
    report = report_of([result])
    if result.bound is not None and not result.bound.shots and not report.errors:
        report.errors = 1  # a library (declarations only): nothing to show, as `plan` says
    target = output or default_output(script)
    takes = None
    if renders is not False:
        current = result.request.content_hash if result.request is not None and result.ok else None
        page_dir = None if target == "-" else os.path.dirname(os.path.abspath(target))
        takes = sheet.read(script, current, ledger_path, page_dir, focus=bool(renders))
    grid = None
    if vars_table is not None and results[0].variant is not None:
        from klingspec.preview.grid import grid_of
        from klingspec.variants import read_table

        variants, _ = read_table(vars_table)
        page_dir = None if target == "-" else os.path.dirname(os.path.abspath(target))
        grid = grid_of(vars_table, variants, results, sheet.read(script, None, ledger_path, page_dir))
    if result.film is not None:  # a film: its scenes on one timeline, then the joined film
        from klingspec.cli.options import project_of
        from klingspec.preview.filmboard import film_page

        page_dir = None if target == "-" else os.path.dirname(os.path.abspath(target))
        out_dir = project_of([script]).value("out")
        page = film_page(result, options, ledger_path=ledger_path, page_dir=page_dir, out_dir=out_dir)
    else:
        page = storyboard(result, takes=takes, grid=grid)
    if target == "-":
        sys.stdout.write(page)
    else:
        try:
            write_atomically(target, page)
        except OSError as error:
            raise click.BadParameter(f"cannot write {target}: {error.strerror or error}", param_hint="-o") from None
        click.echo(f"wrote {target}", err=True)
        if open_it:
            import pathlib
            import webbrowser

            uri = pathlib.Path(target).resolve().as_uri()
            webbrowser.open(uri + "#takes" if renders else uri)
    raise SystemExit(report.return_code)
