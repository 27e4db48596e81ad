"""The storyboard of a film (`preview FILM`): one timeline of scenes, each as wide as it is
long, with its cost, the scene it continues and its shots' prompts as sent; then, once the
film has been run, the joined film and each scene's takes, playable.

A scene's figures come from its own pipeline result (money worded by `pricing`), and its
shots are the script storyboard's own (`storyboard.page_of`): each `@name` of a prompt a chip
with its picture and what it is sent as. Its takes are those of the request the film would send for it
now, found in the ledger by request hash (`takes.read`'s current version): a scene script
shared with another film, or edited since, shows no other request's takes, and a scene
written in place is found like any other. A continued scene's request is known once the
scene before is finished (its last frame is its start: `filmplans.scene_plans`, as `plan`
reads it), whichever API rendered it. The joined film is the file `run FILM` writes:
`<out>/<film stem>.mp4`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from klingspec import __version__, pricing, printing

if TYPE_CHECKING:
    from collections.abc import Sequence

    from klingspec.films import FilmScene
    from klingspec.pipeline import Options, Result
    from klingspec.preview.storyboard import Shot
    from klingspec.preview.takes import Take
    from klingspec.run.jobs import Job, Standing
    from klingspec.run.ledger import Ledger, Render

TEMPLATE = "film.html.j2"


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
    shots: tuple[Shot, ...]  # as the script's storyboard has them: each `@name` with its picture
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


def film_page(
    result: Result, options: Options, *, ledger_path: str | None, page_dir: str | None, out_dir: str | None
) -> str:
    from klingspec.preview import takes as sheet
    from klingspec.preview.storyboard import _environment, page_of

    film = result.film
    assert film is not None
    requests = _requests(result, options, ledger_path)
    seconds = [_seconds(s) for s in film.scenes]
    whole = sum(seconds, Decimal(0))
    blocks = []
    quotes = []
    for scene, length in zip(film.scenes, seconds, strict=True):
        estimate = scene.result.estimate
        if estimate is not None:
            quotes.append(estimate.quote)
        cost = pricing.usd_quote(estimate.quote, "unknown") if estimate is not None else "not priced"
        shots = page_of(scene.result).shots
        request = requests.get(scene.name)
        found = sheet.read(scene.path, request, ledger_path, page_dir) if request is not None else None
        current = [v for v in found.versions if v.current] if found is not None else []
        newest = current[0].renders[0].takes if current and current[0].renders else ()
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


def _requests(result: Result, options: Options, ledger_path: str | None) -> dict[str, str]:
    """Each scene's request hash as the film would send it now; a continued scene only
    when the scene before is finished in the ledger (by any API: a preview shows takes
    wherever they were rendered). Without a ledger, no scene has takes."""
    from klingspec.resources import ledger_path as default_path

    film = result.film
    assert film is not None
    path = ledger_path or default_path()
    if not result.ok or not os.path.exists(path):
        return {}
    from klingspec.cli.filmplans import scene_plans
    from klingspec.cli.plans import plan_of
    from klingspec.run.ledger import Ledger

    plans = [plan_of(s.result, options) for s in film.scenes]
    with Ledger(path) as ledger:
        scenes = scene_plans(result.path, film, plans, options, _finished_anywhere(ledger), ledger)
    return {s.scene.name: s.plan.request_hash for s in scenes if s.standing is not None}


def _finished_anywhere(ledger: Ledger) -> Callable[[Sequence[Job]], list[Standing]]:
    """A job's standing by its newest finished render at any API: reuse, else new."""
    from klingspec.run.jobs import Stand, Standing
    from klingspec.run.states import RenderState

    finished: dict[str, Render] = {}
    for render in ledger.renders(limit=None):  # newest first
        if render.state == RenderState.DONE:
            finished.setdefault(render.request_hash, render)

    def standings(jobs: Sequence[Job]) -> list[Standing]:
        return [
            Standing(job, Stand.REUSE, None, finished[job.request_hash])
            if job.request_hash in finished
            else Standing(job, Stand.NEW, job, None)
            for job in jobs
        ]

    return standings
