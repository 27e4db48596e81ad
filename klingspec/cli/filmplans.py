"""`plan FILM`: a film before it is paid for. Every scene's seconds and cost, the running
time and the total, which scenes wait for which, and what a re-run would reuse.

A scene that continues none is planned exactly as a script is (the same `Plan`, priced by
`pricing`, its standing by the ledger: new, reuse, in flight...). A continued scene's
request holds its start frame, the last frame of the scene before, which exists only once
that scene is rendered: its price is known (a start frame changes no price), but whether
the ledger already holds it is not, so it is counted as new spend in full. The new-spend
figure of a film is therefore an upper bound, never an under-estimate.

Scenes render in stages: a scene waits for the chain it continues; the scenes of one stage
(none waiting for another) render side by side, within `run`'s concurrency.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from klingspec import pricing, printing

if TYPE_CHECKING:
    from klingspec.cli.plans import Plan
    from klingspec.films import Film, FilmScene
    from klingspec.pipeline import Options, Result
    from klingspec.run.jobs import Standing


@dataclass(frozen=True)
class ScenePlan:
    scene: FilmScene
    plan: Plan
    stage: int  # 1: waits for nothing; n: after a chain of n - 1 scenes
    waits_for: tuple[str, ...]  # the scenes it waits for, nearest first
    standing: Standing | None  # by the ledger; None for a continued scene (not knowable yet)

    @property
    def new(self) -> pricing.Quote:
        return self.standing.new if self.standing is not None else self.plan.estimate.quote


def plan_film(
    result: Result,
    options: Options,
    *,
    sandbox: bool,
    again: bool,
    api_url: str | None,
    ledger_path: str | None,
) -> list[ScenePlan]:
    from klingspec.cli.plans import ledger_standings, plan_of

    film = result.film
    assert film is not None and result.ok  # the caller reports a film with errors
    plans = [plan_of(s.result, options) for s in film.scenes]
    free = [i for i, s in enumerate(film.scenes) if s.continues is None]
    marks = ledger_standings(
        [plans[i].job() for i in free], sandbox=sandbox, api_url=api_url, ledger_path=ledger_path, again=again
    )
    standing = dict(zip(free, marks, strict=True))
    return [
        ScenePlan(s, plans[i], len(film.chain_of(s.name)) + 1, film.chain_of(s.name), standing.get(i))
        for i, s in enumerate(film.scenes)
    ]


def totals(scenes: list[ScenePlan]) -> tuple[pricing.Quote, pricing.Quote]:
    """The film's total and its new spend (each distinct request once)."""
    once: dict[str, ScenePlan] = {}
    for s in scenes:
        once.setdefault(s.plan.request_hash if s.standing is not None else f"{s.scene.name}:continued", s)
    return pricing.add(s.plan.estimate.quote for s in once.values()), pricing.add(s.new for s in once.values())


def as_json(film_path: str, film: Film, scenes: list[ScenePlan]) -> str:
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
    return json.dumps(payload, indent=2, ensure_ascii=False) + "\n"


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
