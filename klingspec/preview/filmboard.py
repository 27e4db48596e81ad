"""The storyboard of a film (`preview FILM`): one timeline of scenes, each as wide as it is
long, with its cost, the scene it continues and its shots' prompts as sent; then, once the
film has been run, the joined film and each scene's takes, playable.

A scene's figures come from its own pipeline result (money worded by `pricing`), as a
script's storyboard does; takes come from the ledger by `takes.read`. A continued scene's
request holds the start frame it got at run time, so its takes are its newest renders.
The joined film is the file `run FILM` writes: `<out>/<film stem>.mp4`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from klingspec import __version__, pricing, printing

if TYPE_CHECKING:
    from klingspec.films import FilmScene
    from klingspec.pipeline import Result
    from klingspec.preview.takes import Take

TEMPLATE = "film.html.j2"


@dataclass(frozen=True)
class FilmShot:
    name: str
    seconds: str
    prompt: str  # as sent


@dataclass(frozen=True)
class SceneBlock:
    name: str
    line: int
    script: str  # its script, or "written in place"
    seconds: str
    width: str  # its share of the film's running time, in percent
    cost: str
    continues: str | None
    take: int
    shots: tuple[FilmShot, ...]
    takes: tuple[Take, ...]


@dataclass(frozen=True)
class FilmPage:
    path: str
    title: str
    version: str
    seconds: str
    total: str
    scenes: tuple[SceneBlock, ...]
    diagnostics: tuple[dict[str, object], ...]
    joined: str | None  # the joined film, a URL relative to the page (or a file: URI)
    joined_path: str | None


def film_page(result: Result, *, ledger_path: str | None, page_dir: str | None, out_dir: str | None) -> str:
    from klingspec.preview import takes as sheet
    from klingspec.preview.storyboard import _environment

    film = result.film
    assert film is not None
    seconds = [_seconds(s) for s in film.scenes]
    whole = sum(seconds, Decimal(0))
    blocks = []
    quotes = []
    for scene, length in zip(film.scenes, seconds, strict=True):
        estimate = scene.result.estimate
        if estimate is not None:
            quotes.append(estimate.quote)
        cost = pricing.usd_quote(estimate.quote, "unknown") if estimate is not None else "not priced"
        shots = tuple(
            FilmShot(s.shot.label, f"{s.seconds.normalize():f}", s.prompt)
            for s in (scene.result.bound.shots if scene.result.bound is not None else ())
        )
        found = sheet.read(scene.path, None, ledger_path, page_dir) if scene.scene.path is not None else None
        newest = found.versions[0].renders[0].takes if found is not None and found.versions else ()
        blocks.append(
            SceneBlock(
                scene.name,
                scene.scene.span.start_position[0],
                scene.path if scene.scene.path is not None else "written in place",
                f"{length.normalize():f}",
                f"{(length / whole * 100) if whole else Decimal(100) / len(seconds):.4f}",
                cost,
                scene.continues,
                scene.take,
                shots,
                tuple(newest),
            )
        )
    folder = out_dir or os.path.join(os.path.dirname(os.path.abspath(result.path)), "renders")
    joined_path = os.path.join(folder, os.path.splitext(os.path.basename(result.path))[0] + ".mp4")
    joined = sheet.src_of(joined_path, page_dir) if os.path.isfile(joined_path) else None
    total = pricing.usd_quote(pricing.add(quotes), "unknown") if len(quotes) == len(blocks) else "not priced"
    page = FilmPage(
        result.path,
        os.path.basename(result.path),
        __version__,
        f"{whole.normalize():f}",
        total,
        tuple(blocks),
        tuple(printing.as_dict(d) for d in result.diagnostics),
        joined,
        joined_path if joined else None,
    )
    return _environment().get_template(TEMPLATE).render(page=page)


def _seconds(scene: FilmScene) -> Decimal:
    bound = scene.result.bound
    return bound.total_seconds if bound is not None else Decimal(0)
