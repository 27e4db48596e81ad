"""`plan FILM`: a film before it is paid for. Every scene's seconds and cost, the running
time and the total, which scenes wait for which, and what a re-run would reuse.

A scene that continues none is planned exactly as a script is (the same `Plan`, priced by
`pricing`, its standing by the ledger: new, reuse, in flight...). A continued scene's
request holds its start frame, the last frame of the scene before. When the ledger holds
that scene's render finished and its video is on disk, the frame is read now
(`run.startframes`, the same PNG a run would send) and the continued scene is compiled
with it and planned like any other: so after an edit, `plan` says exactly which scenes
will be rendered again (the edited one and those chained after it) and which reused.
Otherwise the frame does not exist yet: the scene's price is known (a start frame changes
no price) but not whether the ledger holds it, so it is counted as new spend in full. The
new-spend figure of a film is therefore exact or an upper bound, never an under-estimate.

Scenes render in stages: a scene waits for the chain it continues; the scenes of one stage
(none waiting for another) render side by side, within `run`'s concurrency.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from klingspec import pricing, printing

if TYPE_CHECKING:
    from klingspec.cli.plans import Plan
    from klingspec.films import Film, FilmScene
    from klingspec.pipeline import Options, Result
    from klingspec.run.jobs import Job, Standing
    from klingspec.run.ledger import File, Ledger

    Standings = Callable[[Sequence[Job]], list[Standing]]


@dataclass(frozen=True)
class ScenePlan:
    scene: FilmScene
    plan: Plan
    stage: int  # 1: waits for nothing; n: after a chain of n - 1 scenes
    waits_for: tuple[str, ...]  # the scenes it waits for, nearest first
    standing: Standing | None  # by the ledger; None: a continued scene whose start frame is not known yet
    # a continued scene whose scene before is finished but which could not be planned with
    # its frame: why (the frame unreadable now, or the scene not compiling with it)
    why: Unresolved | None = None

    @property
    def new(self) -> pricing.Quote:
        return self.standing.new if self.standing is not None else self.plan.estimate.quote


@dataclass(frozen=True)
class Unresolved:
    """Why a continued scene could not be planned with its start frame."""

    why: str
    compiled: Result | None = None  # the scene compiled with its frame, with its errors


def plan_film(
    result: Result,
    options: Options,
    *,
    sandbox: bool,
    again: bool,
    api_url: str | None,
    ledger_path: str | None,
) -> list[ScenePlan]:
    """The film's scenes by the ledger `run` would use; a ledger that does not exist yet
    is not created (nothing has been rendered), and with `again` nothing is reused."""
    from klingspec.cli.plans import plan_of
    from klingspec.run.ledger import Ledger, default_path

    film = result.film
    assert film is not None and result.ok  # the caller reports a film with errors
    plans = [plan_of(s.result, options) for s in film.scenes]
    path = ledger_path or default_path()
    if again or not os.path.exists(path):
        return scene_plans(result.path, film, plans, options, None, None)
    from klingspec.cli.renders import ledger_url
    from klingspec.run.submitting import Spending

    with Ledger(path) as ledger:
        spending = Spending.of(ledger, ledger_url(sandbox, api_url))
        return scene_plans(result.path, film, plans, options, spending.standings, ledger)


def scene_plans(
    film_path: str,
    film: Film,
    plans: Sequence[Plan],
    options: Options,
    standings: Standings | None,
    ledger: Ledger | None,
) -> list[ScenePlan]:
    """Each scene planned, in the film's order (`plans`: each scene's own `plan_of`). A
    continued scene whose scene before is finished in the ledger is planned with its start
    frame (its standing then known); else it has no standing. `standings`: the ledger's
    (`Spending.standings`), None without a ledger (everything new)."""
    from klingspec.cli.plans import standings as unledgered
    from klingspec.run.jobs import Stand

    def stand(jobs: Sequence[Job]) -> list[Standing]:
        return standings(jobs) if standings is not None else unledgered(jobs, None)

    free = [i for i, s in enumerate(film.scenes) if s.continues is None]
    marks: dict[str, Standing] = {
        film.scenes[i].name: m for i, m in zip(free, stand([plans[i].job() for i in free]), strict=True)
    }
    # a scene listed twice is rendered once: the second's standing is the first's
    rendered = {m.job.request_hash: m for m in marks.values() if m.stand != Stand.DUPLICATE}
    chosen: dict[str, Plan] = {film.scenes[i].name: plans[i] for i in free}
    unresolved: dict[str, Unresolved] = {}
    for scene in film.scenes:  # in order: a scene continues one written before it
        if scene.continues is None or ledger is None:
            continue
        before = marks.get(scene.continues)
        if before is not None and before.stand == Stand.DUPLICATE:
            before = rendered.get(before.job.request_hash)
        video = finished_take(before, scene.take, ledger)
        if video is None:
            continue
        made = continued_plan(film_path, scene, video, options, ledger)
        if isinstance(made, Unresolved):
            unresolved[scene.name] = made
            continue
        chosen[scene.name] = made
        marks[scene.name] = stand([made.job()])[0]
        rendered.setdefault(made.request_hash, marks[scene.name])
    return [
        ScenePlan(
            s,
            chosen.get(s.name, plans[i]),
            len(film.chain_of(s.name)) + 1,
            film.chain_of(s.name),
            marks.get(s.name),
            unresolved.get(s.name),
        )
        for i, s in enumerate(film.scenes)
    ]


def finished_take(before: Standing | None, take: int, ledger: Ledger) -> File | None:
    """The video of take `take` of a scene the ledger holds finished, in the order `run`
    gives its files (a top-up's videos fill the numbers in between: by name); None when
    that scene is still to render (or its take is missing)."""
    from klingspec.run.jobs import Stand

    if before is None or before.stand != Stand.REUSE or before.render is None:
        return None
    files = ledger.kept_files(before.render.root)
    if len(files) > len(ledger.all_files(before.render.root)):  # top-ups completed it
        files.sort(key=lambda f: f.path)
    return files[take - 1] if len(files) >= take else None


def continued_plan(
    film_path: str, scene: FilmScene, video: File, options: Options, ledger: Ledger | None
) -> Plan | Unresolved:
    """A continued scene's plan with the last frame of `video` as its start frame, or why
    there is none (the frame unreadable, or the scene no longer compiling with it)."""
    from klingspec.cli.plans import plan_of
    from klingspec.films import with_start
    from klingspec.run.startframes import start_frame
    from klingspec.run.video import VideoError

    try:
        start = start_frame(video, ledger)
    except VideoError as error:
        return Unresolved(f"the last frame of `{scene.continues}` could not be read: {error}")
    compiled = with_start(film_path, scene, start, options)
    if not compiled.ok or compiled.request is None or compiled.estimate is None:
        errors = [d.message for d in compiled.diagnostics if d.severity == "error"]
        return Unresolved("it does not compile with its start frame" + (f": {errors[0]}" if errors else ""), compiled)
    return plan_of(compiled, options)


def totals(scenes: list[ScenePlan]) -> tuple[pricing.Quote, pricing.Quote]:
    """The film's total and its new spend (each distinct request once)."""
    once: dict[str, ScenePlan] = {}
    for s in scenes:
        once.setdefault(s.plan.request_hash if s.standing is not None else f"{s.scene.name}:continued", s)
    return pricing.add(s.plan.estimate.quote for s in once.values()), pricing.add(s.new for s in once.values())


def film_total(film: Film) -> pricing.Quote | None:
    """The film's total as `totals` counts it before the ledger is read (a scene listed
    twice once, a continued scene in full), from the scenes' own estimates alone: no
    `Plan`, so no input file is read and hashed (`watch` says it on every save). None when
    a scene has no estimate."""
    once: dict[str, pricing.Quote] = {}
    for s in film.scenes:
        request, estimate = s.result.request, s.result.estimate
        if request is None or estimate is None:
            return None
        once.setdefault(request.content_hash if s.continues is None else f"{s.name}:continued", estimate.quote)
    return pricing.add(once.values())


def as_json(film_path: str, film: Film, scenes: list[ScenePlan]) -> str:
    return json.dumps(film_json(film_path, film, scenes), indent=2, ensure_ascii=False) + "\n"


def film_json(film_path: str, film: Film, scenes: list[ScenePlan]) -> dict[str, Any]:
    """`plan FILM --format json` (and the head of `run FILM --dry-run --format json`)."""
    total, new = totals(scenes)
    payload: dict[str, Any] = {
        "film": film_path,
        "seconds": int(film.seconds) if film.seconds is not None else None,
        "scenes": [
            {
                "name": s.scene.name,
                "path": s.scene.path,
                "line": s.scene.scene.span.start_position[0],
                "model": s.plan.estimate.model,
                "seconds": s.plan.estimate.seconds,
                "generations": s.plan.estimate.generations,
                "cost_usd": pricing.usd_number(s.plan.estimate.total),
                "max_cost_usd": pricing.usd_number(s.plan.estimate.ceiling),
                "continues": s.scene.continues,
                "take": s.scene.take if s.scene.continues else None,
                "waits_for": list(s.waits_for),
                "stage": s.stage,
                "request_hash": s.plan.request_hash if s.standing is not None else None,
                "standing": str(s.standing.stand) if s.standing is not None else "after",
                "unresolved": s.why.why if s.why is not None else None,
                "new_usd": pricing.usd_number(s.new.amount),
            }
            for s in scenes
        ],
        "stages": [[s.scene.name for s in scenes if s.stage == n] for n in range(1, max(s.stage for s in scenes) + 1)],
        "total_usd": pricing.usd_number(total.amount),
        "max_total_usd": pricing.usd_number(total.ceiling),
        "new_usd": pricing.usd_number(new.amount),
        "max_new_usd": pricing.usd_number(new.ceiling),
    }
    return payload


def print_film(film_path: str, film: Film, scenes: list[ScenePlan]) -> None:
    from rich.markup import escape
    from rich.table import Table

    from klingspec.cli.plans import stand_line

    console = printing.console()
    total, new = totals(scenes)
    seconds = f"{film.seconds} s" if film.seconds is not None else "unknown"
    console.print(f"[bold]{escape(film_path)}[/]  a film of {len(scenes)} scenes, running {seconds}")
    table = Table(show_footer=True)
    table.add_column("scene", footer="film", overflow="fold")
    table.add_column("script", overflow="fold")
    table.add_column("seconds", justify="right", footer=seconds)
    table.add_column("cost", justify="right", footer=pricing.usd_quote(total, "unknown"))
    table.add_column("waits for", overflow="fold")
    table.add_column("by the ledger", overflow="fold")
    for s in scenes:
        e = s.plan.estimate
        where = s.scene.path if s.scene.scene.path is not None else f"line {s.scene.scene.span.start_position[0]}"
        waits = " ← ".join(s.waits_for) if s.waits_for else "—"
        if s.scene.continues is not None and s.scene.take != 1:
            waits += f" (take {s.scene.take})"
        if s.standing is not None:
            stand = stand_line(s.standing).removeprefix("→ ")
        elif s.why is not None:
            stand = f"after {s.scene.continues}: new, {pricing.usd_quote(s.new, 'unknown')} at most ({s.why.why})"
        else:
            stand = f"after {s.scene.continues}: new, {pricing.usd_quote(s.new, 'unknown')} at most"
        generations = f" × {e.generations}" if e.generations != 1 else ""
        table.add_row(
            escape(s.scene.name),
            escape(where),
            f"{e.seconds} s{generations}",
            pricing.usd_quote(e.quote, "unknown"),
            escape(waits),
            escape(stand),
        )
    console.print(table)
    stages = max(s.stage for s in scenes)
    for n in range(1, stages + 1):
        names = ", ".join(s.scene.name for s in scenes if s.stage == n)
        console.print(f"  stage {n}: {escape(names)}" + (" (side by side)" if "," in names else ""))
    if any(s.standing is None for s in scenes):
        console.print(
            "  [dim]a continued scene starts on the last frame of the scene before, known once that scene is "
            "rendered: it is counted in full until then[/]"
        )
    console.print(f"[bold]total: {pricing.usd_quote(total, 'unknown (a model has no published price)')}[/]")
    console.print(f"[bold]new spend: {pricing.usd_quote(new, 'unknown (a model has no published price)')}[/]")
    sys.stdout.flush()
