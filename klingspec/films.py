"""Films: a script of scenes, each an ordinary scene script (`scene intro "intro.kvs"`) or
written in place (`scene outro { ... }`), in order; a scene that `continues` another starts
on the last frame of that scene's chosen take (its first, or `take N`).

One request to the Kling models yields at most 15 s; a film is how a longer piece is
written. Checking a film checks every scene as `check` checks a script (each through the
same pipeline, its diagnostics at its own file's lines, or the film's for a scene written
in place) plus the film's own rules, reported at the film's lines:

- a film holds scenes only (`KVS-film-mixed`);
- scene names are unique and `continues` names an earlier scene (`KVS-scene-name`), so
  the chains run forward and can never loop;
- a scene's file is not itself a film (`KVS-scene-film`);
- a continued scene gets its start frame from the scene before it: it declares none of
  its own (`KVS-scene-start`), its model takes start frames (`KVS-scene-frames`), and
  `take N` is a take that scene renders (`KVS-scene-take`);
- the film is no longer than `--max-seconds` (`KVS-film-length`).

A continued scene's own checks run as if its start frame were there (it will be, at run
time): the rules that want a start frame do not fire for it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING

from klingspec import ast
from klingspec.diagnostics import Diagnostic, Related, sort_unique

if TYPE_CHECKING:
    from klingspec.binding import BoundScript
    from klingspec.loading import Program, Reader
    from klingspec.pipeline import Options, Result

# What a continued scene's start frame, given at run time, answers.
_ANSWERED_BY_CONTINUING = frozenset({"KVS-start-required", "KVS-end-without-start"})


@dataclass(frozen=True)
class FilmScene:
    """One scene of a film and what the pipeline made of it."""

    scene: ast.Scene
    result: Result
    path: str  # the scene's script, or the film for a scene written in place
    continues: str | None  # the scene it starts from
    take: int  # 1-based: which take of that scene gives the last frame

    @property
    def name(self) -> str:
        return self.scene.name.value


@dataclass(frozen=True)
class Film:
    scenes: tuple[FilmScene, ...]

    @property
    def seconds(self) -> Decimal | None:
        """The running time: every scene's shots (None while a scene could not be read)."""
        seconds = [s.result.bound.total_seconds for s in self.scenes if s.result.bound is not None]
        return sum(seconds, Decimal(0)) if len(seconds) == len(self.scenes) else None

    def chain_of(self, name: str) -> tuple[str, ...]:
        """The scenes `name` waits for, nearest first."""
        by_name = {s.name: s for s in self.scenes}
        chain: list[str] = []
        at = by_name.get(name)
        while at is not None and at.continues is not None and at.continues not in chain:
            chain.append(at.continues)
            at = by_name.get(at.continues)
        return tuple(chain)


def run_film(path: str, program: Program, options: Options, reader: Reader, diagnostics: list[Diagnostic]) -> Result:
    """The pipeline's result for a film: every scene's diagnostics and the film's own."""
    from klingspec.pipeline import Result

    main = program.main
    diagnostics = list(diagnostics)
    if main.statements:
        first = main.statements[0]
        diagnostics.append(
            Diagnostic.of(
                "KVS-film-mixed",
                first.span,
                f"this file is a film (it has {len(main.scenes)} scene{'s' if len(main.scenes) != 1 else ''}): "
                "it holds scenes only",
                "move settings, bindings and shots into a scene: `scene NAME { ... }` or a scene script of its own",
            )
        )
    seen: dict[str, ast.Scene] = {}
    scenes: list[FilmScene] = []
    for scene in main.scenes:
        name = scene.name.value
        if name in seen:
            diagnostics.append(
                Diagnostic.of(
                    "KVS-scene-name",
                    scene.name.span,
                    f"a scene named `{name}` is already in this film",
                    "give each scene its own name: `continues` and the plan refer to scenes by name",
                    related=[Related(seen[name].name.span, "first named here")],
                )
            )
        continues, take = _continues(scene, seen, diagnostics, main.partial)
        seen.setdefault(name, scene)
        result, scene_path = _scene_result(path, scene, options, reader, diagnostics, main.comments)
        if continues is not None:
            result = _continued(scene, result, diagnostics, options, reader)
        filmed = FilmScene(scene, result, scene_path, continues, take)
        if continues is not None and not options.check_only:
            filmed = _priced(path, filmed, options)
        scenes.append(filmed)
    _takes(scenes, diagnostics)
    scenes = _unused_variables(scenes)
    film = Film(tuple(scenes))
    _length(film, main, options, diagnostics)
    every = diagnostics + [d for s in scenes for d in s.result.diagnostics]
    # everything the film's result depends on, for `watch` and the editor: its scenes' files too
    read = [*program.dependencies]
    for s in scenes:
        if s.result.program is not None:
            read += [d for d in s.result.program.dependencies if d not in read]
        elif os.path.abspath(s.path) not in read:
            read.append(os.path.abspath(s.path))  # a scene still missing: its creation re-checks the film
    return Result(path, sort_unique(every), replace(program, dependencies=tuple(read)), film=film)


def _continues(
    scene: ast.Scene, seen: dict[str, ast.Scene], diagnostics: list[Diagnostic], partial: bool
) -> tuple[str | None, int]:
    if scene.continues is None:
        return None, 1
    target = scene.continues.scene
    take = scene.continues.take.value if scene.continues.take is not None else 1
    if target.value not in seen and partial:
        return None, take  # the scene it names may be one the syntax errors above dropped
    if target.value not in seen:
        later = target.value == scene.name.value
        diagnostics.append(
            Diagnostic.of(
                "KVS-scene-name",
                target.span,
                f"a scene cannot continue itself: `{target.value}`"
                if later
                else f"no scene named `{target.value}` comes before this one",
                "a scene continues one written above it in the film: "
                + (", ".join(f"`{n}`" for n in seen) if seen else "there is none yet"),
            )
        )
        return None, take
    return target.value, take


def _scene_result(
    film_path: str,
    scene: ast.Scene,
    options: Options,
    reader: Reader,
    diagnostics: list[Diagnostic],
    comments: tuple[ast.Comment, ...],
) -> tuple[Result, str]:
    from klingspec.loading import Loader, Program
    from klingspec.pipeline import Result, run_program

    alone = replace(options, max_seconds=None, variant=None, library_ok=False)  # a scene is never a library
    loader = Loader(options.overlays, reader)
    if scene.body is not None:  # written in place: the film's own lines (and its comments)
        # its comments go with it: a `# kvs: allow(...)` inside works as in a script
        inside = tuple(c for c in comments if scene.span.start < c.span.start < scene.span.end)
        inline = ast.Script(scene.span.source, scene.body, inside)
        key = os.path.abspath(film_path)
        statements = loader.splice(inline, film_path)
        files = (inline, *loader.scripts.values())
        program = Program(inline, files, tuple(statements), dependencies=(key, *loader.order))
        result = run_program(film_path, program, alone, reader, loader.diagnostics)
        return _anchored(result, scene), film_path
    assert scene.path is not None  # the grammar gives a scene a file or a body
    written = scene.path.value
    target = os.path.join(os.path.dirname(film_path), written)
    name = os.path.normpath(os.path.join(os.path.dirname(film_path), written))
    if not written.endswith(".kvs"):  # as `use`: `scene x "/proc/self/environ"` shows no secret
        message = f"cannot read {name}: a scene is a .kvs script"
        diagnostics.append(Diagnostic.of("KVS-file-unreadable", scene.path.span, message))
        return Result(name, ()), name
    script = loader.script(target, name, scene.path.span)  # through the reader: regular files, size-capped
    if script is None:
        diagnostics += [
            replace(d, help="a scene's path is relative to the film") if d.span == scene.path.span else d
            for d in loader.diagnostics
        ]
        return Result(name, ()), name
    if script.film:  # never run: a film of films would check itself without end
        diagnostics.append(
            Diagnostic.of(
                "KVS-scene-film",
                scene.path.span,
                f"{name} is a film, not a scene script",
                "a film's scenes are scene scripts; put the scenes of both films in one film",
            )
        )
        return Result(name, ()), name
    statements = loader.splice(script, target)
    program = Program(
        script, tuple(loader.scripts[k] for k in loader.order), tuple(statements), dependencies=tuple(loader.order)
    )
    return run_program(name, program, alone, reader, loader.diagnostics), name


def _anchored(result: Result, scene: ast.Scene) -> Result:
    """A scene written in place: a diagnostic about the whole scene (no shots, say), which
    the pipeline puts at the end of the file, is put at the scene's name instead."""
    inside = scene.span
    moved = tuple(
        d
        if d.span.source is not inside.source or inside.start <= d.span.start < inside.end - 1  # before its `}`
        else replace(d, span=scene.name.span)
        for d in result.diagnostics
    )
    return replace(result, diagnostics=moved)


def _continued(
    scene: ast.Scene, result: Result, diagnostics: list[Diagnostic], options: Options, reader: Reader
) -> Result:
    """A continued scene: its start frame comes from the scene before."""
    assert scene.continues is not None
    kept = tuple(d for d in result.diagnostics if d.code not in _ANSWERED_BY_CONTINUING)
    result = replace(result, diagnostics=kept)
    bound = result.bound
    if bound is None:
        return result
    where = scene.continues.span
    if bound.start is not None:
        diagnostics.append(
            Diagnostic.of(
                "KVS-scene-start",
                bound.start.span,
                f"scene `{scene.name.value}` continues `{scene.continues.scene.value}`: "
                "its start frame is that scene's last frame, not one of its own",
                "remove this `start`, or the `continues` to start the scene from this image",
                related=[Related(where, "the start frame comes from here")],
            )
        )
    model = bound.model
    frames = model is None or bool(model.frames)
    if model is not None and not frames:
        diagnostics.append(
            Diagnostic.of(
                "KVS-scene-frames",
                where,
                f"scene `{scene.name.value}` continues another, but {model.id} takes no start frame",
                "give the scene a model that takes a start frame (see `klingspec models`), or drop `continues`",
            )
        )
    if frames and bound.start is None and not _has_assets_target(result, bound, options, reader):
        diagnostics.append(
            Diagnostic.of(
                "KVS-assets-missing",
                where,
                f"scene `{scene.name.value}` starts on the last frame of `{scene.continues.scene.value}`, "
                "a local image uploaded before the scene is sent, and the scene has no Oxen repository for it",
                'add `assets NAMESPACE/REPO` to the scene (or `[assets] repo = "NAMESPACE/REPO"` to a '
                "klingspec.toml beside the film, or pass --assets NAMESPACE/REPO)",
            )
        )
    return result


def _has_assets_target(result: Result, bound: BoundScript, options: Options, reader: Reader) -> bool:
    """--assets, the scene's own `assets` or its project file's `[assets]` (as `images.attach`
    chooses; a malformed one is reported by its own rule)."""
    from klingspec.project import load as load_project

    if options.assets or "assets" in bound.settings:
        return True
    project = load_project(result.path, reader)
    return project.assets is not None or bool(project.problems)


def _unused_variables(scenes: list[FilmScene]) -> list[FilmScene]:
    """A `--var` or `--vars` value is unused only when no scene uses it: each scene's own
    warning is kept for the first scene alone, and only when every scene has it."""

    def key(d: Diagnostic) -> tuple[str, int, str]:
        return (d.span.path, d.span.start, d.message)

    unused = [{key(d) for d in s.result.diagnostics if d.code == "KVS-var-unused"} for s in scenes]
    everywhere = set.intersection(*unused) if unused else set()
    kept = []
    for index, scene in enumerate(scenes):
        diagnostics = tuple(
            d for d in scene.result.diagnostics if d.code != "KVS-var-unused" or (index == 0 and key(d) in everywhere)
        )
        kept.append(replace(scene, result=replace(scene.result, diagnostics=diagnostics)))
    return kept


def _takes(scenes: list[FilmScene], diagnostics: list[Diagnostic]) -> None:
    by_name: dict[str, FilmScene] = {}
    for scene in scenes:
        by_name.setdefault(scene.name, scene)  # `continues` names the first of a name
    for scene in scenes:
        take = scene.scene.continues.take if scene.scene.continues is not None else None
        if take is None or scene.continues is None:
            continue
        before = by_name[scene.continues].result
        generations = before.bound.generations() if before.bound is not None else None
        if take.value < 1 or (generations is not None and take.value > generations):
            diagnostics.append(
                Diagnostic.of(
                    "KVS-scene-take",
                    take.span,
                    f"take {take.value} of `{scene.continues}`, which renders "
                    + (f"{generations} take{'s' if generations != 1 else ''}" if generations else "no take"),
                    f"takes are numbered from 1 to the scene's `generations` ({generations or 1})",
                )
            )


def _length(film: Film, main: ast.Script, options: Options, diagnostics: list[Diagnostic]) -> None:
    seconds = film.seconds
    if options.max_seconds is None or seconds is None or seconds <= options.max_seconds:
        return
    diagnostics.append(
        Diagnostic.of(
            "KVS-film-length",
            main.scenes[-1].span,
            f"the film runs {seconds} s, longer than --max-seconds {options.max_seconds}",
            "shorten or remove scenes, or raise --max-seconds",
        )
    )


_SCENE_LINE = re.compile(r'^[ \t\ufeff]*scene[ \t]+[^\W\d]\w*[ \t]+"((?:[^"\\\n]|\\.)*)"', re.M)


def scene_paths(path: str) -> list[str]:
    """The scene scripts a film names, found by a look at its lines (no parse, no reading
    of anything but the film, bounded as every read): for `check FOLDER`, which checks a
    scene through its film. A file that is no film names none."""
    from klingspec.loading import read_bytes

    try:
        text = read_bytes(path).decode("utf-8", errors="replace")
    except OSError:
        return []
    folder = os.path.dirname(path)
    return [os.path.join(folder, m.group(1)) for m in _SCENE_LINE.finditer(text)]


def without_scenes(paths: list[str]) -> list[str]:
    """The scripts to check (`check FOLDER`, `watch FOLDER`), less the scene scripts of
    films among them: a scene is checked through its film, which knows where its start
    frame comes from (checked alone, a continued scene would want a start frame of its
    own, and `watch --run` would render, and pay for, a request no film sends), and is
    reported once. A script named alone is kept."""
    if len(paths) < 2:
        return paths
    scenes = {os.path.abspath(s) for path in paths for s in scene_paths(path)}
    return [p for p in paths if os.path.abspath(p) not in scenes]


def start_line(image: str) -> str:
    """The statement `start "IMAGE"`, the path escaped as a string of the language."""
    escaped = "".join("\\" + c if c in '\\"{}' else c for c in image)
    return f'start "{escaped}"\n'


def _priced(film_path: str, scene: FilmScene, options: Options) -> FilmScene:
    """A continued scene whose model wants a start frame compiles only with one: it is
    compiled with a stand-in frame (a blank PNG, uploaded nowhere) so `plan` and `run` can
    price it; the real frame comes at run time, and the price does not depend on it."""
    result = scene.result
    if not result.ok or result.request is not None or result.bound is None or not result.bound.shots:
        return scene
    import tempfile

    from PIL import Image  # only for a scene whose model needs a start frame

    descriptor, stand_in = tempfile.mkstemp(prefix="klingspec-start-", suffix=".png")
    try:
        with os.fdopen(descriptor, "wb") as file:
            Image.new("RGB", (512, 512), (128, 128, 128)).save(file, "PNG")
        priced = with_start(film_path, scene, stand_in, options)
    finally:
        os.unlink(stand_in)
    if not priced.ok or priced.request is None or priced.estimate is None:
        return scene
    return replace(scene, result=replace(result, request=priced.request, estimate=priced.estimate))


def with_start(film_path: str, scene: FilmScene, image: str, options: Options) -> Result:
    """A continued scene compiled again once the scene before is rendered: the same
    statements plus `start "IMAGE"` (the local file of that scene's last frame), through the
    same pipeline, as an overlay: the scene's script with the line added, or for a scene
    written in place, its block's text as a script beside the film."""
    from klingspec.pipeline import run_pipeline

    alone = replace(options, max_seconds=None, variant=None, library_ok=False)
    program = scene.result.program
    assert program is not None  # the film checked without errors
    if scene.scene.body is None:
        text = program.main.source.text
        path = scene.path
    else:
        film_text = scene.scene.span.source.text
        opened = film_text.index("{", scene.scene.span.start)
        text = film_text[opened + 1 : scene.scene.span.end - 1]
        stem = os.path.splitext(os.path.basename(film_path))[0]
        path = os.path.join(os.path.dirname(film_path), f".{stem}.{scene.name}.scene.kvs")
    overlays = {**options.overlays, os.path.abspath(path): text.rstrip() + "\n" + start_line(image)}
    result = run_pipeline(path, replace(alone, overlays=overlays))
    return replace(result, path=scene.path)
