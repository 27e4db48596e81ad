"""Deciding what is paid for: reuse, budget, intent, submit, reconcile. Never prints.

The order is fixed so that no crash can pay twice: a render is recorded as an intent
before its request is sent, marked sent just before, and given its generation ids as
soon as the API answers. A render whose submit outcome is unknown is looked for in the
queue listing before anything is sent again. What happens after the ids are known
(following them to their files) is `following`'s job.

The ledger is the lock between runs, threads and processes alike: finding the live render
of a request or recording a new intent is one transaction (`Ledger.claim`), only the holder
of a render's `Ledger.sending` right sends or reconciles it (a second run of the same
script waits for the first to hear back, then reattaches), and generations found in the
queue are adopted in one transaction that never hands one id to two renders.

A lost answer is looked for where the job was billed: the listing of the body's
`target_namespace` (the key holder's when there is none; the API lists one namespace at a
time), active and each terminal status, matched on the whole body (`_matches`) and only
among jobs enqueued no earlier than this render's intent, on the API's clock
(`_not_before`): another machine's ledger may have paid for the same body earlier, and
its job is not ours to adopt.

A request whose render kept only some of its videos (`partial`) is completed by a
*top-up*: the same body for the missing generations only, priced for them, recorded as a
render of the same request hash that `completes` the first one, and sent through the same
intent -> sent -> submitted steps. The ledger's render, not the job, says how many
generations are sent.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from klingspec import pricing
from klingspec.run.client import ApiError, Stopped, SubmitOutcomeUnknown
from klingspec.run.jobs import Job, Outcome, RunContext, Stand, Standing, record_failure
from klingspec.run.ledger import UNSETTLED, Ledger, Render
from klingspec.run.states import TERMINAL, RenderState

# How long a run waits for another run (or thread) that is sending the same render to hear
# back. A submit is retried on 429/503 with `Retry-After` honoured, so this is generous;
# Ctrl-C ends the wait at once. On timeout nothing is sent: running again reattaches.
SEND_WAIT_SECONDS = 600.0


class BudgetRefused(Exception):
    """The run would pass `--budget`: `needed` (new renders) plus `in_flight` (renders
    already sent at this API), each the most they may be billed; None when unknown."""

    def __init__(self, needed: Decimal | None, budget: Decimal, in_flight: Decimal | None):
        self.needed, self.budget, self.in_flight = needed, budget, in_flight
        what = "an unknown amount (a model has no published price)" if needed is None else f"up to ${needed:.2f}"
        flying = "an unknown amount" if in_flight is None else f"${in_flight:.2f}"
        super().__init__(f"this run would spend {what} with {flying} already in flight; the budget is ${budget:.2f}")


@dataclass(frozen=True)
class Submitted:
    """A render the API has accepted: its generation ids (in sync mode `sync-<render>-<n>`,
    whose answer the ledger holds). `reused`: paid for by an earlier run, not this one."""

    render_id: int
    ids: tuple[str, ...]
    reused: bool


# How a sync render whose answer was lost is reported, by the run that lost it and every
# later one: it is never sent again on its own (`--again` renders anew, on purpose).
OUTCOME_UNKNOWN = "outcome unknown — may have been billed"


def sync_answer_path(render: Render) -> str:
    """Where a sync render's answer is kept until its video is in place: beside the videos,
    named by the render, so the next run finds it (`client.generate_to_file` writes it
    whole or not at all)."""
    return os.path.join(render.out_dir, f".answer-r{render.id}.json")


class Books(Protocol):
    """What deciding what a run would pay for reads (a `RunContext` is one; so is
    `Spending.of` for a dry run, which has no client)."""

    @property
    def ledger(self) -> Ledger: ...
    @property
    def api_url(self) -> str: ...
    @property
    def again(self) -> bool: ...


@dataclass(frozen=True)
class _Books:
    ledger: Ledger
    api_url: str
    again: bool = False


class Spending:
    """What running jobs would pay for, read from the ledger: nothing for a render that
    can be reattached to, a top-up for a partial one, the whole job otherwise."""

    def __init__(self, books: Books):
        self.books = books

    @classmethod
    def of(cls, ledger: Ledger, api_url: str, *, again: bool = False) -> Spending:
        """Without a runner or a client: for the plan and `run --dry-run`."""
        return cls(_Books(ledger, api_url, again))

    def reusable(self, job: Job) -> Render | None:
        """The render this job would reattach to, if any (never with `again`; never a
        partial render, which needs a top-up: see `payable`)."""
        render = self._latest(job)
        return None if render is None or self._top_up(job, render) is not None else render

    def payable(self, job: Job) -> Job | None:
        """What running `job` would pay for: `job` itself when no render of it can be
        reattached to; a top-up (`job` for its missing generations only, priced for them)
        when an earlier render kept only some of its videos; a render recorded but perhaps
        never sent; None when it reattaches to a render in flight or finished."""
        return self.standings([job])[0].paid

    def _latest(self, job: Job) -> Render | None:
        """The newest usable render of this request at this API (none with `again`)."""
        if self.books.again:
            return None
        render = self.books.ledger.latest_for(job.request_hash, self.books.api_url)
        if render is not None and self._gone(render):
            return None
        return render

    def _top_up(self, job: Job, render: Render) -> Job | None:
        """For a partial render: the job that renders the request's missing generations,
        priced for that many by `pricing`. None for any other render."""
        if render.state != RenderState.PARTIAL:
            return None
        missing = job.generations - len(self.books.ledger.kept_files(render.root))
        if missing <= 0:
            return None
        return job.for_generations(missing)

    def _gone(self, render: Render) -> bool:
        """A render made by an in-process sandbox that has since stopped: its generations
        died with it, so only a finished (or partial) render whose kept files are all on
        disk is reusable."""
        if not render.in_sandbox:
            return False
        if render.state not in (RenderState.DONE, RenderState.PARTIAL):
            return True
        ledger = self.books.ledger
        files = ledger.all_files(render.id)
        if render.state == RenderState.DONE and len(files) < len(ledger.generations(render.id)):
            return True
        return not all(os.path.exists(f.path) for f in ledger.kept_files(render.root))

    def standings(self, jobs: Sequence[Job]) -> list[Standing]:
        """What running `jobs` would do with each, in order: the one decision the plan,
        `run`'s confirmation, the budget and the summary all read."""
        first: dict[str, Job] = {}
        result = []
        for job in jobs:
            if job.request_hash in first:
                result.append(Standing(job, Stand.DUPLICATE, None, None, first[job.request_hash]))
                continue
            first[job.request_hash] = job
            render = self._latest(job)
            if render is None:
                result.append(Standing(job, Stand.NEW, job, None))
                continue
            top_up = self._top_up(job, render)
            if top_up is not None:
                result.append(Standing(job, Stand.TOP_UP, top_up, render))
            elif render.state in (RenderState.DONE, RenderState.PARTIAL):
                result.append(Standing(job, Stand.REUSE, None, render))
            elif render.state in UNSETTLED:  # may never have reached the API: may be sent now
                result.append(Standing(job, Stand.UNSETTLED, job.for_generations(render.generations), render))
            else:
                result.append(Standing(job, Stand.IN_FLIGHT, None, render))
        return result

    def new_jobs(self, jobs: Sequence[Job]) -> list[Job]:
        """What this run would pay for, one per distinct request: the jobs no render can
        be reattached to, and top-ups (priced for the shortfall) of partial renders."""
        return [s.paid for s in self.standings(jobs) if s.paid is not None]

    def in_flight_usd(self) -> Decimal | None:
        """The most the renders still in flight at this API may be billed (None: unknown)."""
        renders = self.books.ledger.in_flight(self.books.api_url)
        return pricing.total(pricing.quote_body(r.body, r.generations).ceiling for r in renders)

    def check_budget(self, jobs: Sequence[Job], budget: Decimal) -> Decimal:
        """Refuse (BudgetRefused) when the renders still in flight at this API plus the new
        ones may cost more than `budget`, each counted at its ceiling (an unknown price is
        refused). Returns the most the new renders may cost."""
        in_flight = self.in_flight_usd()
        needed = pricing.total(j.ceiling_usd for j in self.new_jobs(jobs))
        if needed is None or in_flight is None or in_flight + needed > budget:
            raise BudgetRefused(needed, budget, in_flight)
        return needed


class Submitting(Spending):
    """Reuse or submit each job exactly once; see the module docstring."""

    def __init__(self, ctx: RunContext):
        super().__init__(ctx)
        self.ctx = ctx
        self.render_ids: dict[str, int] = {}  # request hash -> its render in this run

    def obtain(self, job: Job) -> Submitted | Outcome:
        """The job's generations at the API: reattached, reconciled or newly submitted; or
        the outcome that ends the job here (refused, unknown, interrupted)."""
        ctx = self.ctx
        render, created = self._claim(job)
        self.render_ids[job.request_hash] = render.id
        if not created:
            ctx.emit("reattach", job, f"reattaching to render #{render.id} ({render.state})")
        if render.state not in UNSETTLED:
            return self._resume(job, render)
        with ctx.ledger.sending(render.id, ctx.stop, SEND_WAIT_SECONDS) as held:
            if not held:
                if ctx.stop.is_set():
                    return Outcome(job, render.id, RenderState.INTERRUPTED, reused=True, spent_usd=None)
                message = "another klingspec run is still sending this render; run again to reattach to it"
                ctx.emit("failed", job, message)
                return Outcome(job, render.id, RenderState.UNKNOWN, error=message, reused=True, spent_usd=None)
            latest = ctx.ledger.render(render.id)  # the state may have moved while we waited
            assert latest is not None  # renders are never deleted
            if created and latest.state == RenderState.INTENT:
                return self._send(job, latest)
            if latest.state != render.state:
                ctx.emit("note", job, f"another run got there first: render #{latest.id} is {latest.state}")
            return self._resume(job, latest)

    def _claim(self, job: Job) -> tuple[Render, bool]:
        """The render this job reattaches to, or a new intent (`created`): one ledger
        transaction, so two runs started at the same instant share one render. A render
        made by an in-process sandbox that has stopped is replaced (marked failed); a
        partial one is completed by a top-up, recorded only if that partial render is still
        the request's newest (so two runs never pay for the same shortfall)."""
        ctx, replacing, partial = self.ctx, None, None
        while True:
            paid = job
            if partial is not None:
                top_up = self._top_up(job, partial)
                if top_up is None:  # nothing is missing any more
                    return partial, False
                paid = top_up
            render, created = ctx.ledger.claim(
                request_hash=job.request_hash,
                api_url=ctx.api_url,
                script=job.script,
                model=job.model,
                body=job.body,
                generations=paid.generations,
                mode=ctx.mode,
                out_dir=job.out_dir,
                estimate_usd=None if paid.estimate_usd is None else str(paid.estimate_usd),
                again=ctx.again,
                replacing=replacing,
                replaced_because="the in-process sandbox that ran it has stopped",
                topping_up=None if partial is None else partial.id,
                completes=None if partial is None else partial.root,
            )
            if created:
                if partial is not None:
                    kept = job.generations - paid.generations
                    ctx.emit(
                        "reattach",
                        job,
                        f"render #{partial.root} kept {kept} of {job.generations} videos; "
                        f"rendering the {paid.generations} missing",
                    )
                return render, True
            if self._gone(render):
                replacing, partial = render.id, None  # each pass retires one gone render, so this ends
            elif render.state == RenderState.PARTIAL and self._top_up(job, render) is not None:
                partial = render  # claim again, this time for the shortfall
            else:
                return render, False

    def _resume(self, job: Job, render: Render) -> Submitted | Outcome:
        """Carry on from wherever `render` stands; `obtain` holds its sending right when it
        is unsettled."""
        ctx = self.ctx
        if render.state == RenderState.INTENT:  # recorded, never sent: safe to send
            return self._send(job, render)
        if render.state in (RenderState.SENT, RenderState.UNKNOWN):
            if render.mode == "sync":
                return self._lost_sync_answer(job, render)
            ctx.emit(
                "reconcile", job, "an earlier run sent this render without hearing back; looking for it in the queue"
            )
            ids = self._reconcile(job, render)
            if not ids:
                ctx.emit("note", job, "the earlier request never created a job; sending it now")
                return self._send(job, render)
            return Submitted(render.id, tuple(ids), reused=True)
        if render.state in (RenderState.FAILED, RenderState.CANCELLED):  # settled by another run meanwhile
            message = render.error or f"render #{render.id} is {render.state}"
            ctx.emit("failed", job, message)
            return Outcome(job, render.id, render.state, error=message, reused=True)
        ids = [g.generation_id for g in ctx.ledger.generations(render.id)]
        return Submitted(render.id, tuple(ids), reused=True)

    def _send(self, job: Job, render: Render) -> Submitted | Outcome:
        """Send the render's request; an unknown outcome is reconciled before one re-send.
        Only a request the run was allowed to pay for is sent (`RunContext.consented`): the
        ledger may have changed since the plan was shown and agreed to."""
        ctx = self.ctx
        if ctx.consented is not None and job.request_hash not in ctx.consented:
            message = (
                "not sent: the ledger changed since the plan this run was allowed to pay for; "
                "run again to see the new plan"
            )
            if render.state == RenderState.INTENT:  # recorded by this run, never sent
                ctx.ledger.set_state(render.id, RenderState.CANCELLED, message)
            ctx.emit("failed", job, message)
            return Outcome(job, render.id, RenderState.FAILED, error=message)
        ctx.ledger.mark_sent(render.id)
        ctx.emit("submit", job, f"submitting ({ctx.mode})")
        if ctx.mode == "sync":
            return self._submit_sync(job, render)
        try:
            ids = ctx.client.enqueue(job.body, render.generations)  # a top-up: the shortfall only
        except Stopped:  # Ctrl-C while waiting out a 429/503: every attempt was refused unprocessed
            return self._unsent(job, render)
        except SubmitOutcomeUnknown as error:
            ctx.ledger.set_state(render.id, RenderState.UNKNOWN, error.message)
            ctx.emit("reconcile", job, f"{error.message}; looking for the job in the queue")
            latest = ctx.ledger.render(render.id)
            ids = self._reconcile(job, latest, attempts=3) if latest is not None else []
            if not ids:
                if ctx.stop.is_set():
                    return Outcome(job, render.id, RenderState.INTERRUPTED, spent_usd=None)
                ctx.emit("note", job, "no job was created; sending once more")
                ctx.ledger.mark_sent(render.id)
                try:
                    ids = ctx.client.enqueue(job.body, render.generations)
                except SubmitOutcomeUnknown as again:
                    return record_failure(
                        ctx, job, render.id, f"{again}; `klingspec run` again reconciles it", RenderState.UNKNOWN
                    )
                except ApiError as again:
                    return record_failure(ctx, job, render.id, str(again))
        except ApiError as error:
            return record_failure(ctx, job, render.id, str(error))
        ctx.ledger.mark_submitted(render.id, ids)
        ctx.emit("submitted", job, f"{len(ids)} generation{'s' if len(ids) != 1 else ''} queued")
        return Submitted(render.id, tuple(ids), reused=False)

    def _reconcile(self, job: Job, render: Render, attempts: int = 1) -> list[str]:
        """Find generations the API created for this render although we never heard back:
        in the listing of the namespace it was billed to, every status, matched on the
        whole body; adopted in one ledger transaction, never one another render holds."""
        ctx = self.ctx
        namespace = job.body.get("target_namespace")
        for attempt in range(attempts):
            listed: dict[str, dict[str, Any]] = {}
            for status in (None, *TERMINAL):  # the listing shows terminal jobs only when asked
                items = ctx.client.generations(
                    status=status, model=job.model, namespace=namespace if isinstance(namespace, str) else None
                )
                for item in items:
                    gid = item.get("generation_id")
                    if isinstance(gid, str) and gid and _matches(item, job):
                        listed.setdefault(gid, item)  # a job that finished between two listings
            not_before = _not_before(render, ctx.client.server_clock_offset)
            found = {gid: item for gid, item in listed.items() if _enqueued(item) >= not_before}
            if found:
                oldest_first = sorted(found, key=lambda gid: _enqueued(found[gid]))
                ids = ctx.ledger.adopt(render.id, oldest_first, render.generations)  # a top-up: its shortfall
                if ids:
                    ctx.emit(
                        "reconcile",
                        job,
                        f"found {len(ids)} generation{'s' if len(ids) != 1 else ''} already created: not sending again",
                    )
                    return ids
            if attempt + 1 < attempts and ctx.stop.wait(ctx.poll.initial):
                break
        return []

    def _unsent(self, job: Job, render: Render) -> Outcome:
        """Stopped (Ctrl-C) while waiting to send again after a refusal that made nothing
        (429/503, or no connection): the render is back in `intent`, to be sent next run."""
        self.ctx.ledger.set_state(render.id, RenderState.INTENT)
        return Outcome(job, render.id, RenderState.INTERRUPTED)

    def _submit_sync(self, job: Job, render: Render) -> Submitted | Outcome:
        """POST the request to the sync endpoint, streaming the answer to a file beside
        the videos, and record what it says (the video's URL) in the ledger before any
        download: a run killed after this resumes the download, never the POST."""
        ctx = self.ctx
        answer_path = sync_answer_path(render)
        os.makedirs(render.out_dir, exist_ok=True)
        try:
            ctx.client.generate_to_file(job.body, answer_path)
        except Stopped:
            return self._unsent(job, render)
        except SubmitOutcomeUnknown as error:
            return record_failure(
                ctx,
                job,
                render.id,
                f"{OUTCOME_UNKNOWN}: {error}; the queue does not list sync renders, so klingspec cannot find "
                "out. Not sent again: `klingspec run --again` renders it anew (and pays again).",
                RenderState.UNKNOWN,
            )
        except ApiError as error:
            return record_failure(ctx, job, render.id, str(error))
        return self._record_answer(job, render, reused=False)

    def _record_answer(self, job: Job, render: Render, *, reused: bool) -> Submitted:
        """Record a whole sync answer (at `sync_answer_path`) in the ledger: each video's URL,
        or, for `b64_json`, that the file holds it (it is then kept until decoded). An answer
        without a usable video is recorded as a failed generation: it was paid for."""
        ctx, answer_path = self.ctx, sync_answer_path(render)
        ids = [f"sync-{render.id}-1"]  # sync renders make one video (the CLI refuses more)
        if job.body.get("response_format") == "b64_json":
            ctx.ledger.mark_answered(render.id, [(ids[0], None, None)])
            return Submitted(render.id, tuple(ids), reused=reused)
        error: str | None = None
        url: str | None = None
        try:
            with open(answer_path, "rb") as handle:
                answer = ctx.client.scrub(json.load(handle))
        except ValueError:
            error = "the API answered with something that is not JSON"
        else:
            videos = answer.get("videos") if isinstance(answer, dict) else None
            video = videos[0] if isinstance(videos, list) and videos else None
            url = video.get("url") if isinstance(video, dict) else None
            if not isinstance(url, str) or not url:
                url, error = None, "the API answered without a video"
        ctx.ledger.mark_answered(render.id, [(ids[0], url, error)])
        os.unlink(answer_path)  # all it said is in the ledger now
        return Submitted(render.id, tuple(ids), reused=reused)

    def _lost_sync_answer(self, job: Job, render: Render) -> Submitted | Outcome:
        """A sync render an earlier run sent without recording the answer: a whole answer
        it left on disk is recorded now (no POST); otherwise the outcome is unknowable (the
        queue does not list sync renders) and it is said so, never sent again silently."""
        ctx = self.ctx
        if os.path.exists(sync_answer_path(render)):
            ctx.emit(
                "note", job, f"render #{render.id}: the earlier run's answer was kept; using it, not sending again"
            )
            return self._record_answer(job, render, reused=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(sync_answer_path(render) + ".part")  # an answer cut short by the crash
        message = (
            f"{OUTCOME_UNKNOWN}: the sync request of render #{render.id} was sent but its answer never "
            "arrived, and the queue does not list sync renders, so klingspec cannot find out. Not sent "
            "again: `klingspec run --again` renders it anew (and pays again)."
        )
        ctx.ledger.set_state(render.id, RenderState.UNKNOWN, message)
        ctx.emit("failed", job, message)
        return Outcome(job, render.id, RenderState.UNKNOWN, error=message, reused=True)


# Queue-level fields: used for billing and fan-out, never echoed by the listing (fact sheet
# 4.1, 4.3; the listing names the model `model_name`, compared separately).
_NOT_ECHOED = frozenset({"model", "num_generations", "target_namespace"})
# Echoed "when submitted" (fact sheet 4.3), so an item that has one our body lacks is
# another request. `multi_prompt` is any other original parameter, echoed by the same rule.
_ECHOED_WHEN_SUBMITTED = ("seed", "aspect_ratio", "duration", "multi_prompt")
# Which listed jobs can be this render's (`_not_before`). With the API's clock known from
# its `Date` headers (a lower bound of its offset to ours), a job of ours was enqueued no
# earlier than the intent's second on that clock, less `_SERVER_CLOCK_MARGIN` for a `Date`
# stamped by another machine of the API than `enqueued_at` (a front end). Without any
# `Date` header, our own clock with `_CLOCK_SKEW_SECONDS` for an unsynchronised one.
_SERVER_CLOCK_MARGIN = 1
_CLOCK_SKEW_SECONDS = 120


def _not_before(render: Render, server_clock_offset: float | None) -> float:
    """The earliest `enqueued_at` (API's clock, Unix seconds) a job of `render` can have.
    A job enqueued before this render's intent was recorded is another request's: the same
    body paid for by another machine (another ledger) earlier, which this ledger cannot
    otherwise tell from its own (the listing echoes no field of ours)."""
    if server_clock_offset is None:
        return render.created_at - _CLOCK_SKEW_SECONDS
    return math.floor(render.created_at + server_clock_offset) - _SERVER_CLOCK_MARGIN


def _enqueued(item: dict[str, Any]) -> float:
    """An item's `enqueued_at`. The listing documents one always; an item without a usable
    one is taken as recent (+inf: eligible, adopted last) rather than risk paying twice."""
    value = item.get("enqueued_at")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.inf


def _matches(item: dict[str, Any], job: Job) -> bool:
    """Is this queue item this render's request? The listing echoes every original
    parameter (fact sheet 4.3), so every field of the body but the queue-level ones must be
    there and equal; `model` is echoed as `model_name`. `prompt` is always listed: equal to
    the body's, or empty (null) for a body without one (a `multi_prompt` job; what Oxen
    puts there is UNKNOWN, the sandbox puts null). Strict on purpose: a wrong match would
    give this render the video of another request and leave this one unmade."""
    if item.get("model_name") != job.model:
        return False
    body = job.body
    for key, value in body.items():
        if key in _NOT_ECHOED:
            continue
        if key not in item or item[key] != value:
            return False
    if "prompt" not in body and item.get("prompt") not in (None, ""):
        return False
    return all(key in body or item.get(key) is None for key in _ECHOED_WHEN_SUBMITTED)
