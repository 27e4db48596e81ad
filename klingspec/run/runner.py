"""Running: ledger -> client -> files, for one or many renders, concurrently. Never prints.

The runner owns what a run shares — the client, the ledger, the stop signal and the SSE
listener — and hands each job first to `submitting` (what is paid for: reuse, intent,
submit, reconcile) and then to `following` (generations to verified files). Progress is
reported as `Event` values to a callback; the CLI and the watcher decide how to show them.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from decimal import Decimal

from klingspec.run.client import ApiError, OxenClient, Stopped
from klingspec.run.following import Following
from klingspec.run.jobs import Event, Job, Outcome, PollPolicy, Waiters
from klingspec.run.ledger import Ledger, Render
from klingspec.run.states import RenderState
from klingspec.run.submitting import BudgetRefused, Submitted, Submitting

EVENT = "media_generation_completed"

__all__ = ["EVENT", "BudgetRefused", "Event", "Job", "Outcome", "PollPolicy", "Runner", "Then"]

Then = Callable[[Job, Outcome], Sequence[Job]]
"""What `Runner.run_chained` calls with each job's outcome: the jobs that can start now."""


def _reused(outcome: Outcome, job: Job) -> Outcome:
    """The outcome of a duplicate `job`: the same render, nothing new spent."""
    return replace(outcome, job=job, reused=True, spent_usd=Decimal(0))


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
        poll: PollPolicy = PollPolicy(),  # noqa: B008 (frozen)
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
        self.waiters = Waiters()
        # the requests the caller was allowed to pay for (from the plan it showed); None: any
        self.consented: frozenset[str] | None = None
        self.submitting = Submitting(self)
        self.following = Following(self)

    # -- what would be paid for (decided by `submitting`) -------------------------------------
    def reusable(self, job: Job) -> Render | None:
        """The render this job would reattach to, if any (never with `again`)."""
        return self.submitting.reusable(job)

    def payable(self, job: Job) -> Job | None:
        """What running `job` would pay for: itself, a top-up of a partial render, or None."""
        return self.submitting.payable(job)

    def new_jobs(self, jobs: Sequence[Job]) -> list[Job]:
        """What this run would pay for, one per distinct request (top-ups priced for the shortfall)."""
        return self.submitting.new_jobs(jobs)

    def check_budget(self, jobs: Sequence[Job], budget: Decimal) -> Decimal:
        """Refuse (BudgetRefused) when renders in flight plus new ones would pass `budget`."""
        return self.submitting.check_budget(jobs, budget)

    # -- running -------------------------------------------------------------------------
    def run(self, jobs: Sequence[Job]) -> list[Outcome]:
        """Render every job (concurrently, within the bound), one outcome per job in order.
        Identical requests are rendered once. On Ctrl-C the workers stop waiting, the
        ledger keeps every id, and KeyboardInterrupt is raised again.

        `run_chained` with nothing chained: one loop serves both."""
        return self.run_chained(jobs, lambda job, outcome: ())

    def run_chained(self, first: Sequence[Job], then: Then) -> list[Outcome]:
        """Render `first`, and each job `then` makes of an outcome as soon as that outcome
        arrives: a job that depends on another (a film's continued scene needs the last
        frame of the take it continues) starts when that one is done, not when a whole
        stage is, while unrelated renders keep going. One pool of `concurrency` workers
        serves every job, so the bound holds for the chained jobs too.

        `then(job, outcome)` is called once for every job, the ones it returned included,
        with that job's outcome (whatever its state), in this thread (the caller's), one
        call at a time, in the order outcomes arrive (a duplicate right after the job it
        duplicates). It may be slow (decode a video, compile, upload): the workers keep
        rendering meanwhile. The jobs it returns (often none) are started at once.

        Returns one outcome per job, in the order the jobs were given: `first`, then each
        batch `then` returned, in the order of those calls.

        As in `run`: identical requests (same `request_hash`, across `first` and every
        batch) are rendered once; a later duplicate gets the first one's outcome with
        `reused=True` and nothing spent. The SSE listener is opened once for the whole
        call. If anything is raised here — Ctrl-C (KeyboardInterrupt) while waiting, or
        any exception `then` raises — jobs not yet started are dropped (nothing more is
        sent), the workers are halted and waited for (no render thread outlives the
        call), and the exception is raised again unchanged: the ledger keeps every id, so
        running again reattaches without paying twice. So `then` should return [] for an
        outcome it cannot continue from (and say why itself) rather than raise."""
        jobs: list[Job] = []  # every job, in the order given: the outcomes' order
        outcomes: dict[int, Outcome] = {}  # by index into `jobs`
        rendering: dict[str, int] = {}  # request hash -> the job that renders it
        duplicates: dict[str, list[int]] = {}  # request hash -> later jobs waiting for its outcome
        due: deque[int] = deque()  # jobs whose outcome is known and whose `then` is not yet called

        def settle(index: int, outcome: Outcome) -> None:
            """A job's outcome is known: it, and every duplicate waiting for it, is due."""
            outcomes[index] = outcome
            due.append(index)
            for later in duplicates.pop(jobs[index].request_hash, []):
                outcomes[later] = _reused(outcome, jobs[later])
                due.append(later)

        listener = self._start_events() if self.sse else None
        try:
            with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="render") as pool:
                running: dict[Future[Outcome], int] = {}

                def start(batch: Sequence[Job]) -> None:
                    for job in batch:
                        index = len(jobs)
                        jobs.append(job)
                        original = rendering.setdefault(job.request_hash, index)
                        if original == index:
                            running[pool.submit(self._render_safely, job)] = index
                        elif original in outcomes:
                            settle(index, _reused(outcomes[original], job))
                        else:
                            duplicates.setdefault(job.request_hash, []).append(index)

                try:
                    start(first)
                    while due or running:
                        while due:
                            index = due.popleft()
                            start(then(jobs[index], outcomes[index]))
                        if running:
                            # a timeout, so Ctrl-C is seen however the platform's lock waits treat signals
                            finished, _ = wait(running, timeout=0.1, return_when=FIRST_COMPLETED)
                            for future in sorted(finished, key=running.__getitem__):
                                settle(running.pop(future), future.result())
                except BaseException:
                    # drop the jobs not yet started *before* halting: a worker freed by the
                    # halt must not pick one up and send it
                    pool.shutdown(wait=False, cancel_futures=True)
                    self.halt()
                    raise
        finally:
            self.halt()
            if listener is not None:
                listener.join(timeout=2)
            # ready for another run; a `halt()` that came before this run still counted
            self.stop, self.waiters = threading.Event(), Waiters()
            self.client.resume()
        return [outcomes[i] for i in range(len(jobs))]

    def halt(self) -> None:
        """Stop following (from any thread; Ctrl-C): workers return `interrupted` soon,
        renders keep going at the API and the ledger keeps their ids."""
        self.stop.set()
        self.waiters.fail()
        self.client.interrupt()  # retry waits end, event streams and downloads are shut down

    def emit(
        self, kind: str, job: Job, message: str = "", generation_id: str | None = None, status: str | None = None
    ) -> None:
        self.on_event(Event(kind, job, message, generation_id, status))

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

    def _render_safely(self, job: Job) -> Outcome:
        """Submit, then follow, with any error turned into a failed outcome. The ledger is
        left as it was, so the job stays resumable (its render is in flight or finished).
        A render this run got accepted is paid for whatever happens to it afterwards: its
        outcome carries its price, never $0 or unknown."""
        submitted: Submitted | None = None
        try:
            obtained = self.submitting.obtain(job)
            if isinstance(obtained, Outcome):
                return obtained
            submitted = obtained
            return self.following.follow(job, submitted)
        except Stopped:
            spent = self.following.spent(job, submitted) if submitted is not None else None
            return Outcome(job, self._render_id(job), RenderState.INTERRUPTED, spent_usd=spent)
        except Exception as error:  # API gave up, disk full, permissions …
            message = str(error) if isinstance(error, ApiError) else f"{type(error).__name__}: {error}"
            message = str(self.client.scrub(message))
            self.emit("failed", job, message)
            spent = self.following.spent(job, submitted) if submitted is not None else None
            return Outcome(
                job,
                self._render_id(job),
                RenderState.FAILED,
                error=message,
                spent_usd=spent,
                reused=submitted is not None and submitted.reused,
            )

    def _render_id(self, job: Job) -> int | None:
        return self.submitting.render_ids.get(job.request_hash)
