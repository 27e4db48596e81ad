"""Watch mode: re-check (and with `--run`, re-render) scripts whenever they change on disk.

Built on watchfiles. It watches the *folders* that hold the scripts and everything they
depend on (used files, `--vars` files, local images: those still missing too, so creating
one re-checks its scripts), so editors that save by writing a temporary file and renaming
it over the original are seen like any other save, as are new scripts in a watched folder
and deleted or renamed ones. A burst of events becomes one re-check.

The checking itself is `pipeline.run_pipeline`, exactly as for `klingspec check`. Renders
go through `running.Runner` and the same ledger as `klingspec run`, so nothing is paid
twice; a script with errors is never submitted and its last good render is left alone.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from klingspec import pricing
from klingspec.assets import is_local_path
from klingspec.loading import discover_scripts
from klingspec.pipeline import Options, Result, run_pipeline

if TYPE_CHECKING:  # the runner is imported only when rendering
    from klingspec.run.jobs import Job
    from klingspec.run.runner import Runner


class Say:
    """Where the watcher's events go: one line of text each for people, or, with
    `--format json`, one JSON object per line (JSON Lines) with `event`, the event's fields
    and the `message` people would read (left out for multi-line diagnostics, which come as
    `diagnostics` objects). Thread-safe: renders report from their own threads."""

    def __init__(self, write: Callable[[str], None], json_lines: bool = False):
        self.write = write
        self.json_lines = json_lines
        self.lock = threading.Lock()
        self.listeners: list[Callable[[str, dict[str, Any]], None]] = []  # told every event (the live preview)

    def __call__(self, event: str, message: str | None, **fields: Any) -> None:
        for listener in self.listeners:
            listener(event, fields)
        if self.json_lines:
            import json

            line = json.dumps(
                {"event": event, **fields, **({"message": message} if message else {})}, ensure_ascii=False
            )
        elif message is None:
            return
        else:
            line = message
        with self.lock:
            self.write(line)


DEBOUNCE_MS = 60  # longest wait to group a burst of events
STEP_MS = 15  # quiet time that ends a burst
READY_TIMEOUT_MS = 50  # the first wake-up after the OS watch is set: then "watching" is printed


@dataclass
class Tracked:
    """What the watcher knows about one script."""

    path: str
    dependencies: frozenset[str] = frozenset()
    last_hash: str | None = None  # request hash last checked clean
    submitted_hash: str | None = None  # request hash last sent to render
    render: RenderThread | None = None


@dataclass
class RenderThread:
    thread: threading.Thread
    runner: Runner
    request_hash: str
    done: threading.Event = field(default_factory=threading.Event)


class Watcher:
    """Keeps the set of scripts, their dependencies and their last results."""

    def __init__(
        self,
        paths: Sequence[str],
        options: Options,
        *,
        out: Say,
        render: Callable[[Tracked, Result], None] | None = None,
        on_check: Callable[[str, Result], None] | None = None,
    ):
        self.roots = [os.path.abspath(p) for p in paths]
        self.options = options
        self.out = out
        self.render = render
        self.on_check = on_check  # told each script's newest result (the live preview)
        self.scripts: dict[str, Tracked] = {}
        self.checks = 0

    # -- which files matter --------------------------------------------------------------
    def discover(self) -> list[str]:
        """The scripts under the roots, less the scene scripts of films among them (checked,
        never rendered, through their film: `films.without_scenes`)."""
        from klingspec.films import without_scenes

        return without_scenes(discover_scripts(self.roots))

    def folders(self) -> set[str]:
        """Folders to hand to watchfiles: the roots and every dependency's folder."""
        folders = {r if os.path.isdir(r) else os.path.dirname(r) for r in self.roots}
        for tracked in self.scripts.values():
            folders |= {os.path.dirname(d) for d in tracked.dependencies}
        folders |= {os.path.dirname(os.path.abspath(v)) for v in self.options.var_files}
        return {f for f in folders if os.path.isdir(f)}

    def relevant(self, path: str) -> bool:
        path = os.path.abspath(path)
        if path.endswith(".kvs") and any(path == r or path.startswith(r + os.sep) for r in self.roots):
            return True
        if path in {os.path.abspath(v) for v in self.options.var_files}:
            return True
        # A folder on the way to a dependency that is missing: once it exists, it is watched
        # too (a file created in a brand-new folder may come before the OS watches it).
        inside = path + os.sep
        return any(path == d or d.startswith(inside) for t in self.scripts.values() for d in t.dependencies)

    # -- checking ------------------------------------------------------------------------------
    def check_options(self) -> Options:
        return replace(self.options, validate_schema=True, library_ok=True)

    def startup_spend(self) -> tuple[int, pricing.Quote]:
        """What `--run` would submit at start-up: how many scripts check clean, and their
        cost (at most: a request already in the ledger is reattached, not paid again).
        Prints nothing; `start` checks them again, as the watch does."""
        results = [run_pipeline(_rel(path), self.check_options()) for path in self.discover()]
        bills = [r.estimate.quote for r in results if r.ok and r.request is not None and r.estimate is not None]
        return len(bills), pricing.add(bills)

    def start(self) -> None:
        for path in self.discover():
            self.check(path)

    def changed(self, paths: Iterable[str]) -> None:
        """One burst of changes: re-check each affected script once."""
        paths = {os.path.abspath(p) for p in paths}
        var_files = {os.path.abspath(v) for v in self.options.var_files}
        affected: set[str] = set()
        for path in paths:
            if path in self.scripts or (path.endswith(".kvs") and self._under_root(path) and not self._library(path)):
                affected.add(path)
            inside = path + os.sep
            for script, tracked in self.scripts.items():
                if path in tracked.dependencies or path in var_files:
                    affected.add(script)
                elif any(d.startswith(inside) for d in tracked.dependencies):
                    # A new folder holding a missing dependency: the file may be in it already,
                    # written before the OS watched the folder (so no event of its own comes).
                    affected.add(script)
        for script in sorted(affected):
            if not os.path.exists(script) and script not in self.dependencies_of_others(script):
                if script in self.scripts:
                    self.forget(script)
                continue
            if os.path.exists(script):
                self.check(script)

    def _under_root(self, path: str) -> bool:
        return any(path == r or path.startswith(r + os.sep) for r in self.roots)

    def _library(self, path: str) -> bool:
        """A used file that is not itself a watched script is checked through its users."""
        return path not in self.scripts and any(path in t.dependencies for t in self.scripts.values())

    def dependencies_of_others(self, script: str) -> set[str]:
        return {d for s, t in self.scripts.items() if s != script for d in t.dependencies}

    def forget(self, script: str) -> None:
        self.scripts.pop(script, None)
        self.out("removed", f"watch: {_rel(script)}: removed", path=_rel(script))

    def check(self, script: str) -> Result:
        from klingspec import printing

        start = time.perf_counter()
        result = run_pipeline(_rel(script), self.check_options())
        self.checks += 1
        tracked = self.scripts.setdefault(script, Tracked(script))
        if result.program is not None:
            deps = {os.path.abspath(d) for d in result.program.dependencies}
            deps |= _image_paths(result)
            tracked.dependencies = frozenset(deps - {script})
        elapsed = (time.perf_counter() - start) * 1000
        if self.on_check is not None:
            self.on_check(script, result)
        text = printing.texts(result.diagnostics)
        if text:
            found = [printing.as_dict(d) for d in result.diagnostics]
            if self.out.json_lines:
                self.out("diagnostics", None, path=_rel(script), diagnostics=found)
            else:
                self.out("diagnostics", text.rstrip("\n"))
        summary = (
            f"{result.errors} error{'s' if result.errors != 1 else ''}, "
            f"{result.warnings} warning{'s' if result.warnings != 1 else ''}"
        )
        if result.ok and result.request is not None and result.estimate is not None:
            e = result.estimate
            cost = pricing.usd_quote(e.quote, "price unknown")
            tracked.last_hash = result.request.content_hash
            self.out(
                "checked",
                f"watch: {_rel(script)}: ok ({summary}) · {e.seconds} s × {e.generations} · {cost} · "
                f"{result.request.content_hash[:15]} · {elapsed:.1f} ms",
                path=_rel(script),
                ok=True,
                errors=result.errors,
                warnings=result.warnings,
                seconds=e.seconds,
                generations=e.generations,
                cost_usd=pricing.usd_number(e.quote.amount),
                max_cost_usd=pricing.usd_number(e.quote.ceiling),
                request_hash=result.request.content_hash,
                ms=round(elapsed, 1),
            )
            if self.render is not None:
                try:
                    self.render(tracked, result)
                except Exception as error:  # one render's trouble must not stop the watcher
                    self.out(
                        "render-error",
                        f"watch: {_rel(script)}: render not started: {type(error).__name__}: {error}",
                        path=_rel(script),
                        error=f"{type(error).__name__}: {error}",
                    )
        elif result.ok and result.film is not None:
            self._checked_film(script, result, summary, elapsed)
        else:
            self.out(
                "checked",
                f"watch: {_rel(script)}: {summary}"
                + (" · not rendered" if self.render is not None and result.errors else "")
                + f" · {elapsed:.1f} ms",
                path=_rel(script),
                ok=False,
                errors=result.errors,
                warnings=result.warnings,
                ms=round(elapsed, 1),
            )
        return result

    def _checked_film(self, script: str, result: Result, summary: str, elapsed: float) -> None:
        """A film checked clean: its scenes, running time and cost (as `plan FILM` totals
        them). `--run` renders scripts, not films: a film is rendered by `klingspec run`,
        which asks consent for the whole chain and joins it; the watcher says so."""
        from klingspec.cli.filmplans import film_total

        film = result.film
        assert film is not None
        total = film_total(film)
        cost = "price unknown" if total is None else pricing.usd_quote(total, "price unknown")
        seconds = int(film.seconds) if film.seconds is not None else None
        self.out(
            "checked",
            f"watch: {_rel(script)}: ok ({summary}) · a film of {len(film.scenes)} scenes, "
            f"{seconds if seconds is not None else '?'} s · {cost} · {elapsed:.1f} ms",
            path=_rel(script),
            ok=True,
            errors=result.errors,
            warnings=result.warnings,
            film=True,
            scenes=len(film.scenes),
            seconds=seconds,
            cost_usd=pricing.usd_number(total.amount) if total is not None else None,
            max_cost_usd=pricing.usd_number(total.ceiling) if total is not None else None,
            ms=round(elapsed, 1),
        )
        if self.render is not None:
            self.out(
                "render-skipped",
                f"watch: {_rel(script)}: a film is not rendered by watch: `klingspec run {_rel(script)}` renders "
                "it scene by scene and joins it",
                path=_rel(script),
                film=True,
            )


def _image_paths(result: Result) -> set[str]:
    """Every local image the script sends, found or not: an image created (or deleted)
    later re-checks the script as an edit of one does."""
    bound = result.bound
    if bound is None:
        return set()
    texts = [t for t in bound.uri_texts() if is_local_path(bound.expansion[t])]
    if not texts:
        return set()
    from klingspec.images import resolve

    return {resolve(t, bound.expansion[t])[0] for t in texts}


def _rel(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def loop(watcher: Watcher, stop: threading.Event | None = None) -> None:
    """Run until Ctrl-C (or `stop`): watchfiles on the folders that matter."""
    import watchfiles

    watcher.start()
    announced = False
    recheck = False  # the folder set changed: re-check all once the new OS watch is in place
    while stop is None or not stop.is_set():
        folders = sorted(watcher.folders())
        if not folders:
            return
        # The folder set changes when a script starts using a file elsewhere: watch the
        # current set until a burst arrives, then recompute. The first (empty) yield says
        # the OS watch is in place; only then is "watching" announced, so nothing saved
        # after that line can be missed.
        for changes in watchfiles.watch(
            *folders,
            watch_filter=lambda change, path: watcher.relevant(path),
            debounce=DEBOUNCE_MS,
            step=STEP_MS,
            stop_event=stop,
            rust_timeout=READY_TIMEOUT_MS,
            yield_on_timeout=True,
            raise_interrupt=True,
        ):
            if recheck:
                recheck = False
                watcher.start()  # a save made while the watch was switching folders is not lost
            if not announced:
                announced = True
                count = len(watcher.scripts)
                watcher.out(
                    "watching",
                    f"watch: watching {count} script{'s' if count != 1 else ''}; Ctrl-C stops",
                    scripts=count,
                )
            if not changes:
                continue
            before = set(watcher.folders())
            watcher.changed(path for _, path in changes)
            if set(watcher.folders()) != before:
                recheck = True
                break


class SessionRenders:
    """`--run`: submit a script when its compiled request changed, within one budget.

    Renders run in background threads through `running.Runner` (each with its own ledger
    connection), so the watcher keeps checking while a video renders.
    """

    def __init__(
        self,
        *,
        make_runner: Callable[[], Runner],
        out: Say,
        budget: Decimal | None,
        cancel_stale: bool,
        out_dir: str | None,
    ):
        self.make_runner = make_runner
        self.out = out
        self.budget = budget
        self.cancel_stale = cancel_stale
        self.out_dir = out_dir
        self.spent = Decimal(0)  # the most this session's renders may be billed
        self.lock = threading.Lock()
        self.threads: list[RenderThread] = []

    def __call__(self, tracked: Tracked, result: Result) -> None:
        from klingspec.run.jobs import Upload
        from klingspec.run.runner import Job

        request = result.request
        if not result.ok or request is None or result.estimate is None:  # never render a script with errors
            return
        if request.content_hash == tracked.submitted_hash:
            self.out(
                "render-skipped",
                f"watch: {_rel(tracked.path)}: request unchanged, not re-rendering",
                path=_rel(tracked.path),
                request_hash=request.content_hash,
            )
            return
        uploads = tuple(Upload.of(u) for u in result.uploads)
        job = Job.create(result.path, request.body, request.generations, request.content_hash, self.out_dir, uploads)
        runner = self.make_runner()
        paid = runner.payable(job)  # a partial render is topped up: priced for the shortfall
        runner.consented = frozenset({job.request_hash}) if paid is not None else frozenset()
        new = paid is not None
        ceiling = (paid or job).ceiling_usd  # the budget counts the most a render may be billed
        with self.lock:
            after = pricing.total((self.spent, ceiling))
            if new and self.budget is not None and (after is None or after > self.budget):
                need = "an unknown amount" if ceiling is None else f"up to ${ceiling:.2f}"
                self.out(
                    "budget-refused",
                    f"watch: {_rel(tracked.path)}: budget refused: {need} more would pass "
                    f"${self.budget:.2f} (up to ${self.spent:.2f} spent this session)",
                    path=_rel(tracked.path),
                    max_cost_usd=pricing.usd_number(ceiling),
                    budget_usd=pricing.usd_number(self.budget),
                    session_spend_usd=pricing.usd_number(self.spent),
                )
                return
            if new and after is not None:
                self.spent = after
        previous = tracked.render
        if previous is not None and not previous.done.is_set():
            if self.cancel_stale:
                self.out(
                    "render-cancelling",
                    f"watch: {_rel(tracked.path)}: cancelling the stale render {previous.request_hash[:15]}",
                    path=_rel(tracked.path),
                    request_hash=previous.request_hash,
                )
                _cancel(previous)
            else:
                self.out(
                    "render-kept",
                    f"watch: {_rel(tracked.path)}: earlier render still in flight; it keeps going",
                    path=_rel(tracked.path),
                    request_hash=previous.request_hash,
                )
        tracked.submitted_hash = request.content_hash
        done = threading.Event()

        def work() -> None:
            try:
                if paid is not None and job.uploads and not self._uploaded(tracked, runner, job):
                    return
                outcomes = runner.run([job])
                for o in outcomes:
                    files = ", ".join(_rel(f.path) for f in o.files)
                    self.out(
                        "render-finished",
                        f"watch: {_rel(tracked.path)}: render {o.state}"
                        + (f": {files}" if files else "")
                        + (f" ({o.error})" if o.error else ""),
                        path=_rel(tracked.path),
                        request_hash=request.content_hash,
                        state=str(o.state),
                        files=[_rel(f.path) for f in o.files],
                        error=o.error,
                    )
            except Exception as error:  # keep watching whatever happens to one render
                self.out(
                    "render-error",
                    f"watch: {_rel(tracked.path)}: render failed: {error}",
                    path=_rel(tracked.path),
                    error=str(error),
                )
            finally:
                done.set()
                runner.ledger.close()

        thread = threading.Thread(target=work, name=f"render-{os.path.basename(tracked.path)}", daemon=True)
        tracked.render = RenderThread(thread, runner, request.content_hash, done)
        self.out(
            "render-started",
            f"watch: {_rel(tracked.path)}: rendering {request.content_hash[:15]}"
            + (f" · session spend up to ${self.spent:.2f}" + (f" of ${self.budget:.2f}" if self.budget else "")),
            path=_rel(tracked.path),
            request_hash=request.content_hash,
            session_spend_usd=pricing.usd_number(self.spent),
            budget_usd=pricing.usd_number(self.budget),
        )
        thread.start()
        self.threads.append(tracked.render)

    def _uploaded(self, tracked: Tracked, runner: Runner, job: Job) -> bool:
        """The job's local images in their repository before it is sent, as `run` does
        (`run.uploading`); False, with nothing submitted, when an upload fails."""
        from klingspec.run import uploading

        needed = uploading.pending(runner.ledger, runner.api_url, uploading.distinct([job]))
        try:
            uploading.Uploader(runner.client, runner.ledger, runner.api_url, stop=runner.stop).upload_all(needed)
        except uploading.UploadFailed as failed:
            self.out(
                "upload-failed",
                f"watch: {_rel(tracked.path)}: {failed}; nothing was submitted",
                path=_rel(tracked.path),
                error=str(failed),
            )
            return False
        return True

    def stop(self) -> int:
        """Ctrl-C: stop following; renders in flight keep going on the server, and the
        ledger keeps their ids for `klingspec status` and a later run."""
        running = [r for r in self.threads if not r.done.is_set()]
        for render in running:
            render.runner.halt()
        for render in running:
            render.thread.join(timeout=5)
        return len(running)


def _cancel(previous: RenderThread) -> None:
    """Cancel a superseded render at the API and in the ledger, then stop following it.

    Only what the API says is recorded: a generation that finished before the cancel
    arrived keeps its status, and then the render is not marked cancelled and its thread
    is left to download what was paid for (it ends `partial` or `done` by itself). Uses its
    own ledger connection: the stale render's thread closes its connection as soon as it
    is halted, which must not race with the cancellation.
    """
    from klingspec.run.client import ApiError
    from klingspec.run.ledger import Ledger
    from klingspec.run.states import TERMINAL, GenerationStatus, RenderState

    runner = previous.runner
    everything_cancelled = True
    with Ledger(runner.ledger.path) as ledger:
        for render in ledger.renders(active_only=True, limit=1000):
            if render.request_hash != previous.request_hash:
                continue
            generations = ledger.generations(render.id)
            for generation in generations:
                status = generation.status
                if status not in TERMINAL:
                    try:
                        runner.client.cancel(generation.generation_id)
                        item = runner.client.generation(generation.generation_id)
                    except ApiError:  # unknown: leave it to the render's own thread
                        everything_cancelled = False
                        continue
                    status = str(item.get("status", status))
                    ledger.update_generation(
                        generation.generation_id, status, item.get("result_url"), item.get("error_message")
                    )
                if status != GenerationStatus.CANCELLED:
                    everything_cancelled = False
            if everything_cancelled and generations:
                ledger.set_state(render.id, RenderState.CANCELLED)
    if everything_cancelled:
        runner.halt()
