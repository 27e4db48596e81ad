"""A film's scenes in the editor: which scene a place of the film belongs to, and the
few words every feature shows for a scene (its script, its seconds).

A film's own `Result` has no bindings and no shots: each scene has its own result
(`Result.film.scenes[i].result`), and a scene written in place (`scene NAME { ... }`) is
checked from the film's own lines, so its spans are the film's. The editor answers a
place inside such a block from that scene's result (`within`), the way it answers a
script from the script's: hover, @-references, image paths and completion then work in a
block as in a script, with no code of their own for films.
"""

from __future__ import annotations

import os

from klingspec.films import Film, FilmScene
from klingspec.pipeline import Result
from klingspec.pricing import Estimate, estimate, usd_quote


def inline_at(result: Result, offset: int) -> FilmScene | None:
    """The scene written in place whose lines (its `{ }` included) hold `offset` of the film."""
    if result.film is None:
        return None
    for scene in result.film.scenes:
        span = scene.scene.span
        if scene.scene.body is not None and span.start <= offset <= span.end:
            return scene
    return None


def within(result: Result, offset: int) -> Result:
    """The result that answers for `offset` of the main file: inside a scene written in
    place, that scene's own (the film's has nothing bound); anywhere else `result`."""
    scene = inline_at(result, offset)
    return scene.result if scene is not None else result


def script(scene: FilmScene, film_path: str) -> str:
    """Where the scene is written: its script, relative to the film, or `written in place`."""
    if scene.scene.body is not None:
        first, last = scene.scene.span.start_position[0], scene.scene.span.end_position[0]
        return f"written in place, lines {first} to {last}"
    return os.path.relpath(scene.path, os.path.dirname(os.path.abspath(film_path)))


def seconds(scene: FilmScene) -> str | None:
    """`11 s × 2` (seconds, times its generations when more than one), as `plan FILM`
    writes a scene's seconds: the estimate's, so whole seconds per shot as the cost beside
    them is priced; None when the scene could not be checked that far."""
    bound = scene.result.bound
    if bound is None:
        return None
    found = _estimate(scene)
    if found is not None:
        total, generations = str(found.seconds), found.generations
    else:  # no shots to price
        total, generations = format(bound.total_seconds.normalize(), "f"), bound.generations()
    return f"{total} s" + (f" × {generations}" if generations != 1 else "")


def cost(scene: FilmScene) -> str | None:
    """The scene's bill, worded by `pricing.usd_quote` as `plan FILM`'s cost column
    (`$4.93 (up to $6.16)`, `unknown`); None when it has no shots to price."""
    found = _estimate(scene)
    return usd_quote(found.quote, "unknown") if found is not None else None


def _estimate(scene: FilmScene) -> Estimate | None:
    """The pipeline's estimate, else (the editor checks only, as `check`; a scene with
    errors) one from the bound scene: a price per shot, which no start frame changes."""
    result = scene.result
    if result.estimate is not None:
        return result.estimate
    if result.bound is not None and result.bound.shots:
        return estimate(result.bound)
    return None


def continued_by(film: Film, name: str) -> list[FilmScene]:
    """The scenes that start on the last frame of scene `name`."""
    return [s for s in film.scenes if s.continues == name]
