"""Running: ledger -> client -> files, for one or many renders. Never prints.

The order of every render is fixed so that no crash can pay twice or lose a video:
record the intent, mark it sent, submit, record the generation ids, follow them, download
each result to a temporary file, verify it, rename it into place, record its sha256. A
render whose submit outcome is unknown is reconciled against the queue listing before
anything is sent again. Progress is reported as `Event` values to a callback; the CLI and
the watcher decide how to show them.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from decimal import Decimal

from klingspec.run.client import ApiError, OxenClient, Stopped, SubmitOutcomeUnknown
from klingspec.run.ledger import TERMINAL, File, Ledger, Render
from klingspec.run.media import decode_b64_videos, file_sha256

EVENT = "media_generation_completed"


@dataclass(frozen=True)
class Job:
    """One render to make: a compiled request and where its videos go."""

    script: str
    body: dict
    generations: int
    request_hash: str
    estimate_usd: Decimal | None
    out_dir: str

    @property
    def model(self) -> str:
        return self.body.get("model", "")

    @property
    def stem(self) -> str:
        return os.path.splitext(os.path.basename(self.script))[0]


@dataclass(frozen=True)
class Event:
    kind: str  # reattach | submit | submitted | reconcile | status | download | done | failed | note
    job: Job
    message: str = ""
    generation_id: str | None = None
    status: str | None = None


@dataclass(frozen=True)
class Outcome:
    job: Job
    render_id: int | None
    state: str  # done | failed | cancelled | interrupted | unknown
    files: tuple[File, ...] = ()
    spent_usd: Decimal | None = Decimal(0)  # new money committed by this run
    reused: bool = False
    error: str | None = None


class BudgetRefused(Exception):
    def __init__(self, needed: Decimal | None, budget: Decimal, in_flight: Decimal):
        self.needed, self.budget, self.in_flight = needed, budget, in_flight
        what = "an unknown amount (a model has no published price)" if needed is None else f"${needed:.2f}"
        super().__init__(
            f"this run would spend {what} with ${in_flight:.2f} already in flight; the budget is ${budget:.2f}"
        )


@dataclass(frozen=True)
class PollPolicy:
    initial: float = 2.0
    factor: float = 1.5
    cap: float = 20.0
    sse_check: float = 30.0  # with events flowing, still look every this often


@dataclass
class _Waiters:
    """Completion events from the SSE stream, handed to the threads that wait for them."""

    condition: threading.Condition = field(default_factory=threading.Condition)
    events: dict[str, dict] = field(default_factory=dict)
    healthy: bool = False

    def publish(self, generation_id: str, payload: dict) -> None:
        with self.condition:
            self.events[generation_id] = payload
            self.condition.notify_all()

    def fail(self) -> None:
        with self.condition:
            self.healthy = False
            self.condition.notify_all()

    def wait(self, generation_id: str, timeout: float) -> dict | None:
        with self.condition:
            self.condition.wait_for(lambda: generation_id in self.events or not self.healthy, timeout)
            return self.events.pop(generation_id, None)


class Runner:
    """Renders `Job`s: budget, reattach, submit, reconcile, follow, download.

    Args:
        client: the API client (its httpx client is the seam tests point at the sandbox).
        ledger: the job ledger (thread-safe; shared by the worker threads).
        api_url: the ledger's name for the API (renders are reattached only to the same one).
        mode: "queue" (default) or "sync".
        sse: follow completions over server-sent events when the API offers them.
        poll: how often to poll when events do not flow.
        again: render anew even when this exact request was rendered before.
        concurrency: renders in flight at once.
        on_event: called with every progress `Event`, from worker threads.
    """

    def __init__(
        self,
        client: OxenClient,
        ledger: Ledger,
        *,
        api_url: str,
        mode: str = "queue",
        sse: bool = True,
        poll: PollPolicy = PollPolicy(),
        again: bool = False,
        concurrency: int = 4,
        on_event: Callable[[Event], None] = lambda e: None,
    ):
        self.client = client
        self.ledger = ledger
        self.api_url = api_url
        self.mode = mode
        self.sse = sse and mode == "queue"
        self.poll = poll
        self.again = again
        self.concurrency = max(1, concurrency)
        self.on_event = on_event
        self.stop = threading.Event()
        self.waiters = _Waiters()
        self._render_ids: dict[str, int] = {}  # request hash -> its render in this run

    # -- what would be paid for -------------------------------------------------------------
    def reusable(self, job: Job) -> Render | None:
        """The render this job would reattach to, if any (never with `again`)."""
        if self.again:
            return None
        render = self.ledger.latest_for(job.request_hash, self.api_url)
        if render is not None and self._gone(render):
            return None
        return render

    def _gone(self, render: Render) -> bool:
        """A render made by an in-process sandbox that has since stopped: its generations
        died with it, so only a finished render whose files are all on disk is reusable."""
        if not render.api_url.startswith("sandbox:"):
            return False
        if render.state != "done":
            return True
        files = self.ledger.all_files(render.id)
        return len(files) < len(self.ledger.generations(render.id)) or not all(os.path.exists(f.path) for f in files)

    def new_jobs(self, jobs: Sequence[Job]) -> list[Job]:
        """The jobs this run would pay for: not reattachable, one per distinct request."""
        seen: set[str] = set()
        new = []
        for job in jobs:
            if job.request_hash in seen:
                continue
            seen.add(job.request_hash)
            if self.reusable(job) is None:
                new.append(job)
        return new

    def check_budget(self, jobs: Sequence[Job], budget: Decimal) -> Decimal:
        """Refuse (BudgetRefused) when the renders still in flight at this API plus the new
        ones would cost more than `budget`. Returns the new spend."""
        in_flight = self.ledger.in_flight_usd(self.api_url)
        new = self.new_jobs(jobs)
        if any(j.estimate_usd is None for j in new):
            raise BudgetRefused(None, budget, in_flight)
        needed = sum((j.estimate_usd for j in new if j.estimate_usd is not None), Decimal(0))
        if in_flight + needed > budget:
            raise BudgetRefused(needed, budget, in_flight)
        return needed

    # -- running -------------------------------------------------------------------------
    def run(self, jobs: Sequence[Job]) -> list[Outcome]:
        """Render every job (concurrently, within the bound), one outcome per job in order.
        Identical requests are rendered once. On Ctrl-C the workers stop waiting, the
        ledger keeps every id, and KeyboardInterrupt is raised again."""
        first: dict[str, Job] = {}
        for job in jobs:
            first.setdefault(job.request_hash, job)
        listener = self._start_events() if self.sse else None
        try:
            with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="render") as pool:
                futures = {h: pool.submit(self._render_safely, j) for h, j in first.items()}
                try:
                    while not all(f.done() for f in futures.values()):
                        time.sleep(0.02)
                except KeyboardInterrupt:
                    self.halt()
                    raise
                done = {h: f.result() for h, f in futures.items()}
        finally:
            self.halt()
            if listener is not None:
                listener.join(timeout=2)
            # ready for another run; a `halt()` that came before this run still counted
            self.stop, self.waiters = threading.Event(), _Waiters()
        outcomes = []
        for job in jobs:
            outcome = done[job.request_hash]
            if first[job.request_hash] is not job:  # a duplicate: same render, nothing new spent
                outcome = replace(outcome, job=job, reused=True, spent_usd=Decimal(0))
            outcomes.append(outcome)
        return outcomes

    def halt(self) -> None:
        """Stop following (from any thread; Ctrl-C): workers return `interrupted` soon,
        renders keep going at the API and the ledger keeps their ids."""
        self.stop.set()
        self.waiters.fail()
        self.client.close_events()

    def _start_events(self) -> threading.Thread:
        opened = threading.Event()

        def on_open() -> None:
            with self.waiters.condition:
                self.waiters.healthy = True
            opened.set()

        def listen() -> None:
            try:
                for name, payload in self.client.events(on_open=on_open):
                    if self.stop.is_set():
                        break
                    if name == EVENT and isinstance(payload, dict) and payload.get("generation_id"):
                        self.waiters.publish(payload["generation_id"], payload)
            except Exception:  # any stream failure (or no SSE at this API): fall back to polling
                pass
            finally:
                self.waiters.fail()
                opened.set()

        thread = threading.Thread(target=listen, name="sse", daemon=True)
        thread.start()
        opened.wait(timeout=10)  # subscribe before enqueueing: events are not replayed
        return thread

    def _emit(
        self, kind: str, job: Job, message: str = "", generation_id: str | None = None, status: str | None = None
    ) -> None:
        self.on_event(Event(kind, job, message, generation_id, status))

    def _render_safely(self, job: Job) -> Outcome:
        """`_render`, with any error turned into a failed outcome. The ledger is left as
        it was, so the job stays resumable (its render is still in flight or finished)."""
        try:
            return self._render(job)
        except Stopped:
            return Outcome(job, self._render_ids.get(job.request_hash), "interrupted", spent_usd=None)
        except Exception as error:  # API gave up, disk full, permissions …
            message = str(error) if isinstance(error, ApiError) else f"{type(error).__name__}: {error}"
            self._emit("failed", job, message)
            return Outcome(job, self._render_ids.get(job.request_hash), "failed", error=message, spent_usd=None)

    def _render(self, job: Job) -> Outcome:
        existing = self.reusable(job)
        if existing is not None:
            self._render_ids[job.request_hash] = existing.id
            self._emit("reattach", job, f"reattaching to render #{existing.id} ({existing.state})")
            return self._resume(job, existing)
        if not self.again:
            stale = self.ledger.latest_for(job.request_hash, self.api_url)
            if stale is not None and stale.state != "done" and self._gone(stale):
                self.ledger.set_state(stale.id, "failed", "the in-process sandbox that ran it has stopped")
        render = self.ledger.record_intent(
            request_hash=job.request_hash,
            api_url=self.api_url,
            script=job.script,
            model=job.model,
            body=job.body,
            generations=job.generations,
            mode=self.mode,
            out_dir=job.out_dir,
            estimate_usd=None if job.estimate_usd is None else str(job.estimate_usd),
        )
        self._render_ids[job.request_hash] = render.id
        return self._send(job, render)

    def _resume(self, job: Job, render: Render) -> Outcome:
        if render.state == "intent":  # recorded, never sent: safe to send
            return self._send(job, render)
        if render.state in ("sent", "unknown"):
            if render.mode == "sync":
                message = (
                    "a synchronous render was sent but its answer never arrived; it may have been "
                    "billed. Use --again to render anew on purpose."
                )
                self.ledger.set_state(render.id, "unknown", message)
                self._emit("failed", job, message)
                return Outcome(job, render.id, "unknown", error=message, reused=True)
            self._emit(
                "reconcile", job, "an earlier run sent this render without hearing back; looking for it in the queue"
            )
            ids = self._reconcile(job, render)
            if not ids:
                self._emit("note", job, "the earlier request never created a job; sending it now")
                return self._send(job, render)
            return self._follow(job, render.id, ids, reused=True)
        ids = [g.generation_id for g in self.ledger.generations(render.id)]
        return self._follow(job, render.id, ids, reused=True)

    def _send(self, job: Job, render: Render) -> Outcome:
        """Send the render's request; an unknown outcome is reconciled before one re-send."""
        self.ledger.mark_sent(render.id)
        self._emit("submit", job, f"submitting ({self.mode})")
        if self.mode == "sync":
            return self._submit_sync(job, render)
        try:
            ids = self.client.enqueue(job.body, job.generations)
        except SubmitOutcomeUnknown as error:
            self.ledger.set_state(render.id, "unknown", error.message)
            self._emit("reconcile", job, f"{error.message}; looking for the job in the queue")
            current = self.ledger.render(render.id)
            assert current is not None  # the render's row is never deleted
            ids = self._reconcile(job, current, attempts=3)
            if not ids:
                if self.stop.is_set():
                    return Outcome(job, render.id, "interrupted", spent_usd=None)
                self._emit("note", job, "no job was created; sending once more")
                self.ledger.mark_sent(render.id)
                try:
                    ids = self.client.enqueue(job.body, job.generations)
                except SubmitOutcomeUnknown as again:
                    return self._fail(job, render.id, f"{again}; `klingspec run` again reconciles it", "unknown")
                except ApiError as again:
                    return self._fail(job, render.id, str(again))
        except ApiError as error:
            return self._fail(job, render.id, str(error))
        self.ledger.mark_submitted(render.id, ids)
        self._emit("submitted", job, f"{len(ids)} generation{'s' if len(ids) != 1 else ''} queued")
        return self._follow(job, render.id, ids, reused=False)

    def _fail(self, job: Job, render_id: int, message: str, state: str = "failed") -> Outcome:
        self.ledger.set_state(render_id, state, message)
        self._emit("failed", job, message)
        return Outcome(job, render_id, state, error=message, spent_usd=None if state == "unknown" else Decimal(0))

    def _reconcile(self, job: Job, render: Render, attempts: int = 1) -> list[str]:
        """Find generations the API created for this render although we never heard back."""
        for attempt in range(attempts):
            known = self.ledger.known_generation_ids()
            found: dict[str, dict] = {}
            for status in (None, "succeeded", "failed", "cancelled"):
                for item in self.client.generations(status=status, model=job.model):
                    gid = item.get("generation_id")
                    if gid and gid not in known and _matches(item, job, render):
                        found[gid] = item
            if found:
                ids = [gid for gid, _ in sorted(found.items(), key=lambda kv: kv[1].get("enqueued_at") or 0)]
                ids = ids[: job.generations]
                self.ledger.mark_submitted(render.id, ids)
                self._emit(
                    "reconcile",
                    job,
                    f"found {len(ids)} generation{'s' if len(ids) != 1 else ''} already created: not sending again",
                )
                return ids
            if attempt + 1 < attempts and self.stop.wait(self.poll.initial):
                break
        return []

    def _submit_sync(self, job: Job, render: Render) -> Outcome:
        os.makedirs(job.out_dir, exist_ok=True)
        fd, answer_path = tempfile.mkstemp(prefix=".answer-", suffix=".json", dir=job.out_dir)
        os.close(fd)
        try:
            try:
                self.client.generate_to_file(job.body, answer_path)
            except SubmitOutcomeUnknown as error:
                return self._fail(
                    job,
                    render.id,
                    f"{error}; the render may have been made and billed. Use --again to render anew on purpose.",
                    "unknown",
                )
            except ApiError as error:
                return self._fail(job, render.id, str(error))
            ids = [f"sync-{render.id}-1"]
            self.ledger.mark_submitted(render.id, ids)
            files = self._store_sync_answer(job, render.id, ids, answer_path)
            if len(files) < len(ids):
                return self._fail(job, render.id, "the API answered without a video")
        finally:
            if os.path.exists(answer_path):
                os.unlink(answer_path)
        return self._finish(job, render.id, files, reused=False)

    def _store_sync_answer(self, job: Job, render_id: int, ids: list[str], answer_path: str) -> list[File]:
        destinations = [self._destination(job, render_id, i) for i in range(len(ids))]
        files = []
        if job.body.get("response_format") == "b64_json":
            for gid, dest, (sha, size) in zip(
                ids, destinations, decode_b64_videos(answer_path, destinations), strict=False
            ):
                self.ledger.update_generation(gid, "succeeded")
                files.append(self._record(job, gid, dest, sha, size))
        else:
            with open(answer_path, "rb") as handle:
                try:
                    answer = json.load(handle)
                except ValueError:
                    raise ApiError(
                        "the API answered with something that is not JSON", method="POST", path="/ai/videos/generate"
                    ) from None
            videos = answer.get("videos") if isinstance(answer, dict) else None
            for gid, dest, video in zip(ids, destinations, videos or [], strict=False):
                url = video.get("url") if isinstance(video, dict) else None
                self.ledger.update_generation(gid, "succeeded", url)
                sha, size = self.client.download(url, dest, self.stop)
                files.append(self._record(job, gid, dest, sha, size))
        return files

    def _record(self, job: Job, gid: str, dest: str, sha: str, size: int) -> File:
        self.ledger.record_file(gid, dest, sha, size)
        self._emit("download", job, f"saved {dest}", gid)
        return File(gid, dest, sha, size)

    def _destination(self, job: Job, render_id: int, position: int) -> str:
        """`<stem>-<hash8>-<n>.mp4`; a later render of the same request (`--again`) gets
        `-r<render id>` so it never overwrites a video the ledger holds for another one."""
        stem = f"{job.stem}-{job.request_hash.removeprefix('sha256:')[:8]}"
        path = os.path.join(job.out_dir, f"{stem}-{position + 1}.mp4")
        owner = self.ledger.render_of_file(path)
        if owner is not None and owner != render_id:
            path = os.path.join(job.out_dir, f"{stem}-r{render_id}-{position + 1}.mp4")
        return path

    def _follow(self, job: Job, render_id: int, ids: list[str], reused: bool) -> Outcome:
        files: list[File] = []
        errors: list[str] = []
        states: list[str | None] = []
        spent = Decimal(0) if reused else job.estimate_usd
        for position, gid in enumerate(ids):
            existing = self.ledger.file(gid)
            if existing and os.path.exists(existing.path) and file_sha256(existing.path) == existing.sha256:
                files.append(existing)
                states.append("succeeded")
                continue
            final = self._wait(job, gid)
            if final is None:  # interrupted
                return Outcome(job, render_id, "interrupted", tuple(files), reused=reused, spent_usd=spent)
            status = final.get("status")
            states.append(status)
            if status == "succeeded":
                url = final.get("result_url") or final.get("url")
                if not url:
                    url = self.client.generation(gid).get("result_url")
                dest = self._destination(job, render_id, position)
                os.makedirs(job.out_dir, exist_ok=True)
                self._emit("status", job, "downloading", gid, "downloading")
                try:
                    sha, size = self.client.download(url, dest, self.stop)
                except Stopped:
                    return Outcome(job, render_id, "interrupted", tuple(files), reused=reused, spent_usd=spent)
                files.append(self._record(job, gid, dest, sha, size))
            else:
                errors.append(final.get("error_message") or final.get("error") or status or "the API gave no status")
        if errors:
            state = "cancelled" if all(s == "cancelled" for s in states if s != "succeeded") else "failed"
            message = "; ".join(errors)
            self.ledger.set_state(render_id, state, message)
            self._emit("failed", job, message)
            return Outcome(job, render_id, state, tuple(files), reused=reused, error=message, spent_usd=spent)
        return self._finish(job, render_id, files, reused)

    def _finish(self, job: Job, render_id: int, files: list[File], reused: bool) -> Outcome:
        self.ledger.set_state(render_id, "done")
        self._emit("done", job, f"{len(files)} video{'s' if len(files) != 1 else ''} ready")
        return Outcome(
            job, render_id, "done", tuple(files), reused=reused, spent_usd=Decimal(0) if reused else job.estimate_usd
        )

    def _wait(self, job: Job, gid: str) -> dict | None:
        """Until `gid` is terminal: SSE when it flows, else polling with backoff. None
        when the run is stopping."""
        interval = self.poll.initial
        first = True
        while not self.stop.is_set():
            if self.waiters.healthy and not first:
                payload = self.waiters.wait(gid, self.poll.sse_check)
                if payload is not None:
                    self._update(job, gid, payload.get("status"), payload.get("url"), payload.get("error"))
                    return payload
                if self.stop.is_set():
                    return None
            first = False
            try:
                item = self.client.generation(gid)
            except ApiError as error:
                if error.status != 404:
                    raise
                message = "the API no longer knows this generation (404)"
                self._update(job, gid, "failed", None, message)
                return {"status": "failed", "error_message": message}
            status = item.get("status")
            self._update(job, gid, status, item.get("result_url"), item.get("error_message"))
            if status in TERMINAL:
                return item
            if not self.waiters.healthy:
                self.stop.wait(interval)
                interval = min(interval * self.poll.factor, self.poll.cap)
        return None

    def _update(self, job: Job, gid: str, status: str | None, url: str | None, error: str | None) -> None:
        if not status:
            return
        self.ledger.update_generation(gid, status, url, error)
        self._emit("status", job, status, gid, status)


def seconds_of(body: dict) -> int:
    """Seconds of video one generation of `body` makes (the API's default shot is 5 s)."""
    shots = body.get("multi_prompt")
    if isinstance(shots, list) and shots:
        return sum(int(s.get("duration", 5)) for s in shots if isinstance(s, dict))
    return int(body.get("duration", 5))


def _matches(item: dict, job: Job, render: Render) -> bool:
    """Does a queue listing item look like this render's request? The listing echoes
    the model, the prompt and the other submitted parameters."""
    if item.get("model_name", item.get("model")) != job.model:
        return False
    enqueued = item.get("enqueued_at")
    if render.sent_at and isinstance(enqueued, (int, float)) and enqueued < render.sent_at - 120:
        return False
    for key, value in job.body.items():
        if key in ("model",):
            continue
        if key in item and item[key] is not None and item[key] != value:
            return False
    return True
