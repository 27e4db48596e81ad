"""What several commands share: the template-variable and API options, how diagnostics
are printed, and how pipeline results are counted into a `Report`.

Imports nothing heavy: `check` starts through here.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any, Protocol, TypeVar

import click

from klingspec.cli.report import Report

if TYPE_CHECKING:
    from klingspec.diagnostics import Diagnostic
    from klingspec.pipeline import Options, Result
    from klingspec.project import Project

F = TypeVar("F", bound=Callable[..., Any])


class Checked(Protocol):
    """A file's diagnostics: a pipeline `Result`, or a check answered from the cache."""

    @property
    def diagnostics(self) -> Sequence[Diagnostic]: ...


def examples(*lines: str) -> str:
    """A command's `--help` epilog: example command lines, kept one per line (click's `\\b`)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


def color(stream: IO[str]) -> bool:
    """Colour only for a terminal, and never when NO_COLOR is set or TERM is dumb."""
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def print_diagnostics(results: Sequence[Checked], fmt: str, stream: IO[str] | None = None) -> None:
    from klingspec import __version__, printing

    stream = stream or sys.stdout
    diagnostics = distinct(results)
    if fmt == "json":
        stream.write(printing.as_json(diagnostics))
    elif fmt == "sarif":
        stream.write(printing.as_sarif(diagnostics, __version__))
    else:
        stream.write(printing.texts(diagnostics, printing.TextStyle(color=color(stream))))


def distinct(results: Sequence[Checked]) -> list[Diagnostic]:
    """Every result's diagnostics in order, each told once: a file `use`d by several
    scripts, or an error every row of a vars table has, is one mistake, not one per result."""
    seen: set[tuple[object, ...]] = set()
    found = []
    for result in results:
        for d in result.diagnostics:
            key = (d.sort_key(), tuple((r.span.path, r.span.start, r.message) for r in d.related))
            if key not in seen:
                seen.add(key)
                found.append(d)
    return found


def report_of(results: Sequence[Checked]) -> Report:
    diagnostics = distinct(results)
    paths = {getattr(r, "path", i) for i, r in enumerate(results)}  # a vars table's rows are one file
    return Report(
        errors=sum(d.severity == "error" for d in diagnostics),
        warnings=sum(d.severity == "warning" for d in diagnostics),
        files=len(paths),
    )


def _name_value(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    """`--var` must be NAME=VALUE: anything else is a usage error (exit 2)."""
    for value in values:
        name, sep, _ = value.partition("=")
        if not sep or not re.fullmatch(r"[^\W\d]\w*", name):
            raise click.BadParameter(f"{value!r} is not NAME=VALUE (names are letters, digits and _)")
    return values


def var_options(function: F) -> F:
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


def vars_table_option(function: F) -> F:
    return click.option(
        "--vars-table",
        "vars_table",
        metavar="FILE",
        type=click.Path(exists=True, dir_okay=False),
        default=None,
        help="One variant per row: CSV (a header of `let` names, then a row per variant) or JSON Lines "
        "(.jsonl, an object per line); each row renders once, between --vars and --var.",
    )(function)


def results_of(files: Sequence[str], options: Options, vars_table: str | None = None) -> list[Result]:
    """The pipeline on each file, or with a vars table on each file once per row (each
    result carrying its row, and its diagnostics a note of it). A table that cannot be used
    is one result of its own, with its diagnostics and nothing to render."""
    from dataclasses import replace

    from klingspec.pipeline import Result, run_pipeline

    if vars_table is None:
        return [run_pipeline(path, options) for path in files]
    from klingspec.variants import annotate, read_table

    variants, problems = read_table(vars_table)
    if problems:
        return [Result(vars_table, tuple(problems))]
    results = []
    for path in files:
        rows = [run_pipeline(path, replace(options, variables=v.variables, variant=v.label)) for v in variants]
        results += annotate(rows, variants)
    return results


def refuse_films(results: Sequence[Result], command: str) -> None:
    """Films are checked and formatted today; planning, rendering and previewing them is
    the next step: say so plainly instead of failing without a word."""
    films = [r.path for r in results if r.film is not None]
    if films:
        raise click.UsageError(
            f"{films[0]} is a film (a script of scenes): `klingspec {command}` takes scene scripts for now "
            "(`klingspec plan` shows a film); "
            "`klingspec check` checks a film and each of its scenes"
        )


def shown_as(path: str, variant: str | None) -> str:
    """How a result is named to people: the script, and its row when it is a variant."""
    return f"{path} [{variant}]" if variant else path


def pipeline_options(var_options: Sequence[str], var_files: Sequence[str], **more: Any) -> Options:
    from klingspec.pipeline import Options

    return Options(tuple(var_options), tuple(var_files), **more)


def _assets_target(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """`--assets` must be NAMESPACE/REPO[@BRANCH]: anything else is a usage error (exit 2)."""
    from klingspec.assets import parse_target

    if value is not None:
        found = parse_target(value, "--assets")
        if isinstance(found, str):
            raise click.BadParameter(found)
    return value


def assets_option(function: F) -> F:
    return click.option(
        "--assets",
        default=None,
        metavar="NAMESPACE/REPO[@BRANCH]",
        callback=_assets_target,
        help="The Oxen repository local images are uploaded to (branch main unless given); "
        "overrides the script's `assets` and klingspec.toml.",
    )(function)


def api_options(function: F) -> F:
    function = click.option(
        "--api-url",
        envvar="KLINGSPEC_API_URL",
        default=None,
        metavar="URL",
        help="API base URL (default https://hub.oxen.ai/api; env KLINGSPEC_API_URL).",
    )(function)
    return ledger_option(function)


def ledger_option(function: F) -> F:
    return click.option(
        "--ledger",
        "ledger_path",
        envvar="KLINGSPEC_LEDGER",
        default=None,
        metavar="FILE",
        help="The job ledger (default ~/.klingspec/ledger.sqlite; env KLINGSPEC_LEDGER).",
    )(function)


def out_option(function: F) -> F:
    return click.option(
        "--out",
        "out_dir",
        type=click.Path(file_okay=False),
        default=None,
        help="Where videos land (default: renders/ beside each script).",
    )(function)


def write_atomically(path: str, text: str) -> None:
    """Replace `path` with `text` (UTF-8, `\\n`) in one step: a crash leaves the old file or
    the new one, never half of either. An existing file keeps its permissions; a new one
    gets the usual ones (the umask's), not the temporary file's private 0600. A symlink is
    written through: its target gets the text and the link stays a link (as black does)."""
    import tempfile  # `check` never writes: kept off its start-up path

    path = os.path.realpath(path)  # the file a symlink (or a chain of them) stands for
    folder = os.path.dirname(path)
    handle, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(text.encode("utf-8"))
        try:
            mode = os.stat(path).st_mode & 0o7777
        except OSError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _budget(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """A budget is a finite amount of dollars, zero or more (`nan` or `inf` would make
    every comparison with it meaningless)."""
    import math

    if value is not None and (not math.isfinite(value) or value < 0):
        raise click.BadParameter("a budget is a finite amount of USD, 0 or more")
    return value


def budget_option(help_text: str) -> Callable[[F], F]:
    """`--budget USD` for the commands that spend (`run`, `watch --run`)."""
    return click.option("--budget", type=click.FLOAT, default=None, metavar="USD", callback=_budget, help=help_text)


def project_of(paths: Sequence[str]) -> Project:
    """The project file of the first script (or plan, or folder) a command was given: its
    `budget`, `out` and `api_url` stand where the command line gives none."""
    from klingspec.project import Project, load

    if not paths:
        return Project()
    first = paths[0]
    return load(os.path.join(first, "_") if os.path.isdir(first) else first)
