"""`run FILM`: a film rendered scene by scene, in the stages `plan FILM` shows, then joined.

The film is planned as `plan FILM` plans it (cli/filmplans.py: a continued scene whose
scene before is finished in the ledger is planned with its start frame, exactly; any other
continued scene is counted in full) and consent is asked once for its new spend. Every
scene goes to the `Runner` as soon as it can (`run_chained`: the scenes that continue none
at once, a continued scene the moment the scene it continues is done; one pool, one
concurrency bound). A scene that continues none is its compiled request; a continued scene
is compiled once the scene it continues is done: the last frame of that scene's chosen take, kept as a PNG beside its
video (run/startframes.py), becomes its `start` (films.with_start), so the upload step puts
the frame in the scene's assets repository before the request is sent.

Paying once: the PNG is made once per video (recorded in the ledger) and its URL is a
function of its bytes, so a film run again makes the same bodies and the ledger reuses
every finished scene; an edited scene changes its own body and so the start frames of the
scenes chained after it, nothing else. A scene whose chain failed is not sent.

Joining (`video.join`) needs PyAV, the `video` extra; without it the clips are left where
they were downloaded.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import click

from klingspec import printing
from klingspec.cli.report import Report

if TYPE_CHECKING:
    from klingspec.cli.filmplans import ScenePlan
    from klingspec.films import Film
    from klingspec.pipeline import Options, Result
    from klingspec.run.jobs import Job, Outcome
    from klingspec.run.ledger import Ledger
    from klingspec.run.runner import Runner
    from klingspec.run.video import Joined


def run_film(
    result: Result,
    options: Options,
    connection: Callable[[], AbstractContextManager[tuple[Runner, Ledger, str]]],
    *,
    sandbox: bool,
    mode: str,
    budget: float | None,
    cap: float | None,
    yes: bool,
    out_dir: str | None,
    join: bool,
    json_out: bool = False,
) -> Report:
    """`connection`: `run`'s own (cli/renders.connected_runner with its options), opened
    once the film is checked and its chains can be read. `json_out` (`--format json`): the
    plan and the progress are not shown and no terminal is asked; stdout holds one object
    at the end (`film_run_json`)."""
    from klingspec.cli import filmplans, plans
    from klingspec.cli.consent import Consent, amount, ask, can_ask, decide, refusal
    from klingspec.run.runner import BudgetRefused

    film = result.film
    assert film is not None and result.ok
    refuse_unrunnable(film, mode)
    folder = out_dir or os.path.join(os.path.dirname(os.path.abspath(result.path)), "renders")
    previews = [plans.plan_of(s.result, options) for s in film.scenes]

    with connection() as (runner, ledger, ledger_url):
        client = runner.client
        try:
            scenes = filmplans.scene_plans(result.path, film, previews, options, runner.submitting.standings, ledger)
            if not json_out:
                filmplans.print_film(result.path, film, scenes)
            if _refuse_broken(scenes, json_out):
                return Report(errors=1)
            known = [s for s in scenes if s.standing is not None]
            # what was shown is what may be paid for; a later continued scene's request joins it when made
            runner.consented = frozenset(s.plan.request_hash for s in known if s.standing and s.standing.paid)
            if cap is not None:  # --budget, else the project file's `budget`: every scene counted
                # a continued scene whose start frame is not known yet: its ceiling is set aside
                # in full, never looked up in the ledger (the body there is not the one it will send)
                later = [s.plan.estimate.ceiling for s in scenes if s.standing is None]
                fixed = [c for c in later if c is not None]
                room = Decimal(str(cap)) - sum(fixed, Decimal(0))
                try:
                    if len(fixed) != len(later) or room < 0:
                        raise BudgetRefused(
                            sum(fixed, Decimal(0)) if len(fixed) == len(later) else None, Decimal(str(cap)), None
                        )
                    runner.check_budget([s.plan.job() for s in known], room)
                except BudgetRefused as refused:
                    click.echo(f"klingspec: budget refused: {refused}", err=True)
                    return Report(budget_refused=True)
            paying = [s for s in scenes if s.standing is None or s.standing.paid is not None]
            consent = decide(sandbox=sandbox, yes=yes, budget=budget, terminal=can_ask() and not json_out)
            if paying and consent is not Consent.GIVEN:
                cost = amount(filmplans.totals(scenes)[1])
                if consent is Consent.REFUSED:
                    click.echo(refusal(f"this film would spend up to {cost} at the API"), err=True)
                    return Report(consent_refused=True)
                many = "s" if len(paying) != 1 else ""
                if not ask(f"Render {len(paying)} scene{many} of the film for up to {cost}?"):
                    click.echo("nothing was sent", err=True)
                    return Report()
            return _render(
                result.path, film, scenes, options, runner, ledger, ledger_url, folder, sandbox, join, json_out
            )
        finally:
            client.close()


def refuse_unrunnable(film: Film, mode: str) -> None:
    """What `run FILM` (and its dry run) refuses before anything: usage errors (exit 2)."""
    if mode == "sync" and any(s.result.request and s.result.request.generations > 1 for s in film.scenes):
        raise click.UsageError("`generations` above 1 needs the queue; drop --sync")
    if any(s.continues is not None for s in film.scenes) and not _has_pyav():
        raise click.UsageError(
            "a continued scene starts on the last frame of the one before, read with PyAV: "
            "pip install 'klingspec[video]' (nothing was sent)"
        )


def _refuse_broken(scenes: list[ScenePlan], json_out: bool) -> bool:
    """A continued scene whose scene before is rendered but which does not compile with
    its start frame would be held back after the rest were paid for: the film is refused
    first, with the scene's diagnostics (True: refused)."""
    from klingspec.cli.options import print_diagnostics

    broken = [s for s in scenes if s.why is not None and s.why.compiled is not None]
    for s in broken:
        assert s.why is not None and s.why.compiled is not None
        print_diagnostics([s.why.compiled], "json" if json_out else "text", sys.stderr)
        click.echo(f"klingspec: scene {s.scene.name}: {s.why.why}; nothing was sent", err=True)
    return bool(broken)


def dry_run_film(
    result: Result,
    options: Options,
    *,
    sandbox: bool,
    api_url: str | None,
    ledger_path: str | None,
    again: bool,
    mode: str,
    json_out: bool,
) -> Report:
    """`run FILM --dry-run`: the film's plan, then each upload and request as it would be
    sent: every scene whose request is known now (a continued scene once the scene before
    is finished in the ledger); a continued scene still waiting for its start frame is
    named, with the scene it waits for. Nothing is sent, nothing is asked."""
    from klingspec.cli import filmplans, plans
    from klingspec.cli.renders import dry_run_json, print_requests

    film = result.film
    assert film is not None
    refuse_unrunnable(film, mode)
    scenes = filmplans.plan_film(
        result, options, sandbox=sandbox, again=again, api_url=api_url, ledger_path=ledger_path
    )
    if _refuse_broken(scenes, json_out):
        return Report(errors=1)
    known = [s for s in scenes if s.standing is not None]
    jobs = [replace(s.plan.job(), variant=f"scene {s.scene.name}") for s in known]
    marks = [replace(s.standing, job=job) for s, job in zip(known, jobs, strict=True) if s.standing is not None]
    uploaded = plans.ledger_uploaded(sandbox=sandbox, api_url=api_url, ledger_path=ledger_path)
    if json_out:
        requests = dry_run_json(jobs, marks, uploaded, mode)
        for entry, scene in zip(requests["requests"], known, strict=True):
            entry["scene"] = scene.scene.name
        payload = filmplans.film_json(result.path, film, scenes) | {
            "dry_run": True,
            "requests": requests["requests"],
            "uploads": requests["uploads"],
        }
        click.echo(json.dumps(payload, indent=2, ensure_ascii=False))
        return Report()
    filmplans.print_film(result.path, film, scenes)
    print_requests(jobs, marks, uploaded, mode)
    for s in scenes:
        if s.standing is None:
            click.echo(
                f"# scene {s.scene.name}: starts on the last frame of `{s.scene.continues}`, "
                "so its request is made once that scene is rendered"
            )
    click.echo("dry run: nothing was sent", err=True)
    return Report()


def _render(
    film_path: str,
    film: Film,
    scenes: list[ScenePlan],
    options: Options,
    runner: Runner,
    ledger: Ledger,
    ledger_url: str,
    folder: str,
    sandbox: bool,
    join: bool,
    json_out: bool,
) -> Report:
    """Every scene, each as soon as it can be: the scenes that continue none at once, a
    continued scene the moment the scene it continues is done (`Runner.run_chained`: one
    pool, the concurrency bound shared, no waiting for unrelated scenes). A scene that
    cannot be sent holds back the scenes chained after it, each named with why."""
    from klingspec.run import display

    outcomes: dict[str, Outcome] = {}
    held: dict[str, str] = {}  # scenes not sent, and why
    followers: dict[str, list[ScenePlan]] = {}
    for plan in scenes:
        if plan.scene.continues is not None:
            followers.setdefault(plan.scene.continues, []).append(plan)
    names: dict[int, str] = {}  # id(job) -> its scene (the runner hands back the very job)
    view = display.LiveView([])

    def hold_after(name: str) -> None:
        """The scenes chained after `name`, which is not rendered: not sent."""
        for later in followers.get(name, []):
            held.setdefault(later.scene.name, f"it continues `{name}`, which was not rendered")
            hold_after(later.scene.name)

    def started(batch: list[tuple[str, Job]]) -> list[Job]:
        """The batch's local images uploaded (start frames too), then its jobs shown and
        handed to the runner; on an upload failure none of them, nor what follows them."""
        if batch and not _upload([j for _, j in batch], runner, ledger, ledger_url):
            for name, _ in batch:
                held[name] = "its local images could not be uploaded"
                hold_after(name)
            return []
        for name, job in batch:
            names[id(job)] = name
            view.add(job)
        return [job for _, job in batch]

    def then(job: Job, outcome: Outcome) -> list[Job]:
        """The scenes continuing this one, made and started; never raises (the runner
        would stop every render in flight): a scene that cannot be made is held back."""
        name = names[id(job)]
        outcomes[name] = outcome
        batch = []
        for plan in followers.get(name, []):
            try:
                made = _continued_job(film_path, plan, outcomes, held, options, runner, ledger, folder)
            except Exception as error:  # a ledger, a disk: the scene waits for the next run
                held[plan.scene.name] = f"it could not be made: {type(error).__name__}: {error}"
                made = None
            if made is None:
                hold_after(plan.scene.name)
            else:
                batch.append((plan.scene.name, made))
        try:
            return started(batch)
        except Exception as error:
            for scene, _ in batch:
                held[scene] = f"its images could not be uploaded: {type(error).__name__}: {error}"
                hold_after(scene)
            return []

    first = [
        (s.scene.name, replace(s.plan.job(), out_dir=folder, variant=f"scene {s.scene.name}"))
        for s in scenes
        if s.scene.continues is None
    ]
    jobs = started(first)
    if not json_out:
        runner.on_event = view
    try:
        with contextlib.nullcontext() if json_out else view:
            runner.run_chained(jobs, then)
    except KeyboardInterrupt:
        click.echo(
            "interrupted: renders in flight keep going; running the same command again picks the film "
            "up where it stopped without paying twice",
            err=True,
        )
        return Report(interrupted=True)
    return _finish(film_path, film, outcomes, held, folder, sandbox, join, json_out)


def _continued_job(
    film_path: str,
    planned: ScenePlan,
    outcomes: dict[str, Outcome],
    held: dict[str, str],
    options: Options,
    runner: Runner,
    ledger: Ledger,
    folder: str,
) -> Job | None:
    """The job of a continued scene, its start frame the last frame of the chosen take of
    the scene it continues; None (and why, in `held`) when that scene gave none, or when
    the request made now is not what the plan showed and consent covered: a scene planned
    with its start frame must be that very request; one planned before its frame was known
    was counted in full, so its model, seconds, generations and ceiling must be as shown."""
    from klingspec.cli.filmplans import Unresolved, continued_plan
    from klingspec.run.states import RenderState

    scene = planned.scene
    assert scene.continues is not None
    before = outcomes.get(scene.continues)
    if before is None:
        held[scene.name] = f"it continues `{scene.continues}`, which was not rendered"
        return None
    if before.state != RenderState.DONE or len(before.files) < scene.take:
        held[scene.name] = f"it continues `{scene.continues}`, which {before.state}"
        return None
    made = continued_plan(film_path, scene, before.files[scene.take - 1], options, ledger)
    if isinstance(made, Unresolved):
        if made.compiled is not None:
            from klingspec.cli.options import print_diagnostics

            print_diagnostics([made.compiled], "text", sys.stderr)
        held[scene.name] = made.why
        return None
    if planned.standing is not None:
        if made.request_hash != planned.plan.request_hash:
            held[scene.name] = "its start frame is not the one the plan showed: run the film again"
            return None
        return replace(made.job(), out_dir=folder, variant=f"scene {scene.name}")
    shown = scene.result.estimate
    same = (
        shown is not None
        and made.estimate.model == shown.model
        and made.estimate.seconds == shown.seconds
        and made.estimate.generations == shown.generations
        and made.estimate.ceiling is not None
        and shown.ceiling is not None
        and made.estimate.ceiling <= shown.ceiling
    )
    if not same:  # its files changed while the film ran (model, seconds, price): not what was agreed to
        held[scene.name] = "it changed since the plan was shown (model, seconds or price): run the film again"
        return None
    job = replace(made.job(), out_dir=folder, variant=f"scene {scene.name}")
    runner.consented = (runner.consented or frozenset()) | {job.request_hash}  # counted in full when agreed to
    return job


def _has_pyav() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def _upload(jobs: list[Job], runner: Runner, ledger: Ledger, ledger_url: str) -> bool:
    """The stage's local images (start frames too) into their repositories first."""
    from klingspec.cli.renders import needs_uploads
    from klingspec.run import display, uploading
    from klingspec.run.uploading import Uploader, UploadFailed

    needed = uploading.pending(ledger, ledger_url, uploading.distinct(needs_uploads(runner.submitting.standings(jobs))))
    if not needed:
        return True
    try:
        Uploader(runner.client, ledger, ledger_url, on_event=display.upload_event).upload_all(needed)
    except UploadFailed as refused:
        click.echo(f"klingspec: {refused}; the scenes that need it were not sent", err=True)
        return False
    return True


def _finish(
    film_path: str,
    film: Film,
    outcomes: dict[str, Outcome],
    held: dict[str, str],
    folder: str,
    sandbox: bool,
    join: bool,
    json_out: bool,
) -> Report:
    """The summary (or, `json_out`, the one JSON object), then the join when every scene
    is done."""
    from rich.markup import escape

    from klingspec.run import display
    from klingspec.run.states import RenderState
    from klingspec.run.video import VideoError

    console = printing.console()
    ran = [outcomes[s.name] for s in film.scenes if s.name in outcomes]
    failed = [o for o in ran if o.state != RenderState.DONE]
    report = Report(api_failures=len(failed) + len(held), files=len(ran))
    missing = len(failed) + len(held)
    spent = display.spend_line(ran, sandbox=sandbox) if ran else "nothing was spent"
    joined: Joined | None = None
    why_not: str | None = None
    if missing:
        why_not = f"{missing} of {len(film.scenes)} scenes missing"
    elif not join:
        why_not = "--no-join"
    else:
        clips = [outcomes[s.name].files[chosen_take(film, s.name) - 1].path for s in film.scenes]
        try:
            joined = _join(film_path, clips, folder)
        except VideoError as error:
            why_not = str(error)
            click.echo(f"klingspec: the film was not joined: {error}; the clips are in {_shown(folder)}", err=True)
    if json_out:
        click.echo(
            json.dumps(
                film_run_json(film_path, film, outcomes, held, spent, joined, why_not, sandbox),
                indent=2,
                ensure_ascii=False,
            )
        )
        return report
    if ran:
        display.summary(ran, sandbox=sandbox)
    for name, why in held.items():
        console.print(f"scene {escape(name)}: not sent: {escape(why)}")
    if missing:
        console.print(
            f"the film is not finished: {missing} of {len(film.scenes)} scenes missing; "
            f"spend so far ({spent}); run the same command again to go on without paying twice",
            markup=False,
        )
    elif not join:
        console.print(f"not joined (--no-join): the clips are in {_shown(folder)}", markup=False)
    elif joined is not None:
        how = "remuxed: packets copied, nothing re-encoded" if joined.remuxed else "re-encoded: the clips differ"
        n = len(film.scenes)
        click.echo(f"joined {n} scene{'s' if n != 1 else ''}: {_shown(joined.path)} ({joined.seconds:g} s, {how})")
    return report


def film_run_json(
    film_path: str,
    film: Film,
    outcomes: dict[str, Outcome],
    held: dict[str, str],
    spent: str,
    joined: Joined | None,
    why_not: str | None,
    sandbox: bool,
) -> dict[str, Any]:
    """`run FILM --format json`: each scene's render as `run --format json` gives a
    script's (`scene`, and the take the film uses, added), the scenes not sent and why,
    the closing figure, and the joined film (its path, exact seconds and how it was made)
    or why there is none."""
    from klingspec.run import display

    scenes = []
    for scene in film.scenes:
        entry: dict[str, Any] = {"scene": scene.name, "take": chosen_take(film, scene.name)}
        if scene.name in outcomes:
            entry |= display.outcome_json(outcomes[scene.name])
        else:
            entry |= {"state": "not sent", "why": held.get(scene.name, "not reached")}
        scenes.append(entry)
    return {
        "film": film_path,
        "scenes": scenes,
        "sandbox": sandbox,
        "spend": spent,
        "joined": (
            {"path": joined.path, "seconds": joined.seconds, "remuxed": joined.remuxed} if joined is not None else None
        ),
        "not_joined": why_not,
    }


def chosen_take(film: Film, name: str) -> int:
    """The take of a scene the film shows: the one the scene continuing it starts from,
    else its first."""
    return next((s.take for s in film.scenes if s.continues == name), 1)


def _join(film_path: str, clips: list[str], folder: str) -> Joined:
    """The clips joined into `<folder>/<film stem>.mp4`; raises VideoError."""
    from klingspec.run.video import join

    stem = os.path.splitext(os.path.basename(film_path))[0]
    return join(clips, os.path.join(folder, f"{stem}.mp4"))


def _shown(path: str) -> str:
    relative = os.path.relpath(path)
    return path if relative.startswith(os.pardir) else relative
