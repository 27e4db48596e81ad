"""The one composition of the phases: load -> parse -> expand -> bind -> (read local
images) -> check -> compile -> price. `check` stops after the checks (`Options.check_only`):
it prints diagnostics only, so it neither loads nor runs the compiler and the pricer.

The CLI, the watcher and the language server all call `run_pipeline`; they differ only in
how they present the `Result`.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from klingspec.assets import is_local_path
from klingspec.binding import BoundScript, bind
from klingspec.checking import check
from klingspec.diagnostics import Diagnostic, has_errors, sort_unique
from klingspec.loading import Program, Reader, Var, load, parse_var_options, read_bytes, read_vars_file
from klingspec.project import Project, severity_of
from klingspec.project import load as load_project
from klingspec.source import Source
from klingspec.templating import expand

if TYPE_CHECKING:
    from klingspec.compiling import Request
    from klingspec.films import Film
    from klingspec.images import LocalImage
    from klingspec.pricing import Estimate


@dataclass(frozen=True)
class Options:
    """What a command adds to a script: template variables and how far to go."""

    var_options: tuple[str, ...] = ()
    var_files: tuple[str, ...] = ()
    validate_schema: bool = True
    library_ok: bool = False  # `check` accepts a declarations-only file (a `use` library)
    overlays: Mapping[str, str] = field(default_factory=dict)
    assets: str | None = None  # `--assets NAMESPACE/REPO[@BRANCH]`: beats the script and klingspec.toml
    model: str | None = None  # `plan --compare`: the model tried instead of the script's own
    check_only: bool = False  # stop after the checks: no request, no estimate (`check`)
    variables: tuple[Var, ...] = ()  # one row of a `--vars-table`: after the --vars files, before --var
    variant: str | None = None  # that row's label (`row 3`), carried to the result
    vars_table: str | None = None  # the table the rows come from (a plan's input, hashed)
    max_seconds: int | None = None  # a film may run no longer (`--max-seconds`)


@dataclass(frozen=True)
class Result:
    """What the pipeline made of one script: as far as it got, and every diagnostic."""

    path: str
    diagnostics: tuple[Diagnostic, ...]
    program: Program | None = None
    bound: BoundScript | None = None
    request: Request | None = None
    estimate: Estimate | None = None
    variant: str | None = None  # the `--vars-table` row this result is of (`row 3`)
    film: Film | None = None  # the file is a film: its scenes, each with its own result

    @property
    def ok(self) -> bool:
        return not has_errors(self.diagnostics)

    @property
    def errors(self) -> int:
        return sum(d.severity == "error" for d in self.diagnostics)

    @property
    def warnings(self) -> int:
        return sum(d.severity == "warning" for d in self.diagnostics)

    @property
    def uploads(self) -> tuple[LocalImage, ...]:
        """The local images the request sends, each once (by content), with the URL the
        body holds for it: what `run` uploads before it submits. Empty for URL-only
        scripts, and for images that have no assets target or could not be read."""
        return self.bound.unique_uploads() if self.bound is not None else ()


def outside_variables(options: Options, reader: Reader = read_bytes) -> tuple[list[Var], list[Diagnostic]]:
    """`--vars` files in order, then `--var` options: later ones win."""
    variables: list[Var] = []
    problems: list[Diagnostic] = []
    for path in options.var_files:
        found, bad = read_vars_file(path, reader)
        variables += found
        problems += bad
    variables += options.variables
    found, bad = parse_var_options(options.var_options)
    return variables + found, problems + bad


def run_pipeline(path: str, options: Options = Options(), reader: Reader = read_bytes) -> Result:
    """Run every phase on `path`. Never raises: a klingspec bug becomes KVS-internal."""
    try:
        with _no_cycle_collection():
            result = _run(path, options, reader)
        return replace(result, variant=options.variant) if options.variant is not None else result
    except Exception as error:  # a bug, not the user's fault (RecursionError, MemoryError too)
        source = Source(path, "")
        return Result(
            path,
            (
                Diagnostic.of(
                    "KVS-internal",
                    source.span(0),
                    f"klingspec failed: {type(error).__name__}: {error}",
                    "please report this with the script that caused it",
                ),
            ),
        )


@contextlib.contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """The pipeline makes millions of small objects for a script of many shots (tokens,
    trees, spans), nearly none in reference cycles, and keeps most of them to the end:
    the cyclic collector's passes over them were half the time of `check` on 290,000 shots
    (35 s of it), for nothing. It is paused for the run and resumed as it was found
    (reference counting still frees everything as usual)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _run(path: str, options: Options, reader: Reader) -> Result:
    diagnostics: list[Diagnostic] = []
    program, problems = load(path, overlays=options.overlays, reader=reader)
    diagnostics += problems
    if program is None:
        return Result(path, sort_unique(diagnostics + outside_variables(options, reader)[1]))
    if program.main.film:
        from klingspec.films import run_film  # a film: each scene through this pipeline

        return run_film(path, program, options, reader, diagnostics)
    return run_program(path, program, options, reader, diagnostics)


def run_program(
    path: str, program: Program, options: Options, reader: Reader, diagnostics: list[Diagnostic] | None = None
) -> Result:
    """The phases after loading, on a loaded `program` (a script, or a film's scene written
    in place); `diagnostics`: the loader's."""
    diagnostics = list(diagnostics or [])
    variables, problems = outside_variables(options, reader)
    diagnostics += problems
    project = load_project(path, reader)
    diagnostics += project.problems
    expansion, problems = expand(program, variables)
    diagnostics += problems
    bound, problems = bind(program, expansion, library_ok=options.library_ok)
    diagnostics += problems
    if options.model is not None:
        bound = replace(bound, model_override=options.model)
    if project.value("model") is not None:
        bound = replace(bound, project_model=project.value("model"))
    if any(is_local_path(bound.expansion[text]) for text in bound.uri_texts()):
        from klingspec.images import attach  # Pillow loads only for scripts that name a local file

        bound, problems = attach(bound, options.assets, reader, project)
        diagnostics += problems
    diagnostics += check(bound)
    # What the project and the script's allowances make of the problems decides whether a
    # request is built: a warning the project raises to an error stops it, as any error.
    diagnostics = _allowed(_leveled(diagnostics, project), program)
    if has_errors(diagnostics) or not bound.shots or options.check_only:
        return Result(path, sort_unique(diagnostics), program, bound)
    from klingspec.compiling import compile_script, validate
    from klingspec.pricing import estimate

    request = compile_script(bound)
    if options.validate_schema:
        diagnostics += _leveled(validate(request), project)
        if has_errors(diagnostics):  # the body breaks its schema: no request to send
            return Result(path, sort_unique(diagnostics), program, bound)
    return Result(path, sort_unique(diagnostics), program, bound, request, estimate(bound))


def _leveled(diagnostics: list[Diagnostic], project: Project) -> list[Diagnostic]:
    """The project's `[severity]` applied: ignored warnings dropped, raised ones made
    errors (an error is never lowered: project.py refuses that)."""
    if not project.severity:
        return diagnostics
    levels = [(d, severity_of(d, project)) for d in diagnostics]
    return [replace(d, escalated=level == "error") for d, level in levels if level != "ignore"]


def _allowed(diagnostics: list[Diagnostic], program: Program) -> list[Diagnostic]:
    """Without the warnings `# kvs: allow(CODE)` comments silence (a warning the project
    raised to an error is an error here, and stays)."""
    if any(c.text.find("kvs:") >= 0 for script in program.files for c in script.comments):
        from klingspec import allowances

        return allowances.apply(diagnostics, program.files)
    return diagnostics
