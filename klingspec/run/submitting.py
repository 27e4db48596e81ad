"""Deciding what is paid for: reuse, budget, intent, submit, reconcile. Never prints.

The order is fixed so that no crash can pay twice: a render is recorded as an intent
before its request is sent, marked sent just before, and given its generation ids as
soon as the API answers. A render whose submit outcome is unknown is looked for in the
queue listing before anything is sent again. What happens after the ids are known
(following them to their files) is `following`'s job.

A request whose render kept only some of its videos (`partial`) is completed by a
*top-up*: the same body for the missing generations only, priced for them, recorded as a
render of the same request hash that `completes` the first one, and sent through the same
intent -> sent -> submitted steps. The ledger's render, not the job, says how many
generations are sent.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from klingspec import pricing
from klingspec.run.client import ApiError, SubmitOutcomeUnknown
from klingspec.run.jobs import Job, Outcome, RunContext, record_failure
from klingspec.run.ledger import Ledger, Render
from klingspec.run.states import TERMINAL, RenderState


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
    """A render the API has accepted: its generation ids (or, in sync mode, the file the
    answer was streamed to). `reused`: paid for by an earlier run, not this one."""

    render_id: int
    ids: tuple[str, ...]
    reused: bool
    answer_path: str | None = None


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
        when an earlier render kept only some of its videos; None when it reattaches to a
        render in flight or finished. The plan, the budget and the confirmation use this."""
        render = self._latest(job)
        return job if render is None else self._top_up(job, render)

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

    def new_jobs(self, jobs: Sequence[Job]) -> list[Job]:
        """What this run would pay for, one per distinct request: the jobs no render can
        be reattached to, and top-ups (priced for the shortfall) of partial renders."""
        seen: set[str] = set()
        new = []
        for job in jobs:
            if job.request_hash in seen:
                continue
            seen.add(job.request_hash)
            payable = self.payable(job)
            if payable is not None:
                new.append(payable)
        return new

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
        latest = self._latest(job)
        top_up = None if latest is None else self._top_up(job, latest)
        if latest is not None and top_up is None:
            self.render_ids[job.request_hash] = latest.id
            ctx.emit("reattach", job, f"reattaching to render #{latest.id} ({latest.state})")
            return self._resume(job, latest)
        if not ctx.again:
            stale = ctx.ledger.latest_for(job.request_hash, ctx.api_url)
            if stale is not None and stale.active and self._gone(stale):
                ctx.ledger.set_state(stale.id, RenderState.FAILED, "the in-process sandbox that ran it has stopped")
        paid = top_up or job
        if latest is not None and top_up is not None:
            ctx.emit(
                "reattach",
                job,
                f"render #{latest.root} kept {job.generations - top_up.generations} of {job.generations} videos; "
                f"rendering the {top_up.generations} missing",
            )
        render = ctx.ledger.record_intent(
            request_hash=job.request_hash,
            api_url=ctx.api_url,
            script=job.script,
            model=job.model,
            body=job.body,
            generations=paid.generations,
            mode=ctx.mode,
            out_dir=job.out_dir,
            estimate_usd=None if paid.estimate_usd is None else str(paid.estimate_usd),
            completes=None if latest is None or top_up is None else latest.root,
        )
        self.render_ids[job.request_hash] = render.id
        return self._send(job, render)

    def _resume(self, job: Job, render: Render) -> Submitted | Outcome:
        ctx = self.ctx
        if render.state == RenderState.INTENT:  # recorded, never sent: safe to send
            return self._send(job, render)
        if render.state in (RenderState.SENT, RenderState.UNKNOWN):
            if render.mode == "sync":
                message = (
                    "a synchronous render was sent but its answer never arrived; it may have been "
                    "billed. Use --again to render anew on purpose."
                )
                ctx.ledger.set_state(render.id, RenderState.UNKNOWN, message)
                ctx.emit("failed", job, message)
                return Outcome(job, render.id, RenderState.UNKNOWN, error=message, reused=True)
            ctx.emit(
                "reconcile", job, "an earlier run sent this render without hearing back; looking for it in the queue"
            )
            ids = self._reconcile(job, render)
            if not ids:
                ctx.emit("note", job, "the earlier request never created a job; sending it now")
                return self._send(job, render)
            return Submitted(render.id, tuple(ids), reused=True)
        ids = [g.generation_id for g in ctx.ledger.generations(render.id)]
        return Submitted(render.id, tuple(ids), reused=True)

    def _send(self, job: Job, render: Render) -> Submitted | Outcome:
        """Send the render's request; an unknown outcome is reconciled before one re-send."""
        ctx = self.ctx
        ctx.ledger.mark_sent(render.id)
        ctx.emit("submit", job, f"submitting ({ctx.mode})")
        if ctx.mode == "sync":
            return self._submit_sync(job, render)
        try:
            ids = ctx.client.enqueue(job.body, render.generations)  # a top-up: the shortfall only
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
        """Find generations the API created for this render although we never heard back."""
        ctx = self.ctx
        for attempt in range(attempts):
            known = ctx.ledger.known_generation_ids()
            found: dict[str, dict[str, Any]] = {}
            for status in (None, *TERMINAL):  # the listing shows terminal jobs only when asked
                for item in ctx.client.generations(status=status, model=job.model):
                    gid = item.get("generation_id")
                    if gid and gid not in known and _matches(item, job, render):
                        found[gid] = item
            if found:
                ids = [gid for gid, _ in sorted(found.items(), key=lambda kv: kv[1].get("enqueued_at") or 0)]
                ids = ids[: render.generations]
                ctx.ledger.mark_submitted(render.id, ids)
                ctx.emit(
                    "reconcile",
                    job,
                    f"found {len(ids)} generation{'s' if len(ids) != 1 else ''} already created: not sending again",
                )
                return ids
            if attempt + 1 < attempts and ctx.stop.wait(ctx.poll.initial):
                break
        return []

    def _submit_sync(self, job: Job, render: Render) -> Submitted | Outcome:
        """POST the request to the sync endpoint, streaming the answer to a file beside
        the videos (`following` turns it into videos and removes it)."""
        ctx = self.ctx
        os.makedirs(job.out_dir, exist_ok=True)
        fd, answer_path = tempfile.mkstemp(prefix=".answer-", suffix=".json", dir=job.out_dir)
        os.close(fd)
        try:
            ctx.client.generate_to_file(job.body, answer_path)
        except SubmitOutcomeUnknown as error:
            os.unlink(answer_path)
            return record_failure(
                ctx,
                job,
                render.id,
                f"{error}; the render may have been made and billed. Use --again to render anew on purpose.",
                RenderState.UNKNOWN,
            )
        except ApiError as error:
            os.unlink(answer_path)
            return record_failure(ctx, job, render.id, str(error))
        except BaseException:
            os.unlink(answer_path)
            raise
        ids = [f"sync-{render.id}-1"]
        try:
            ctx.ledger.mark_submitted(render.id, ids)
        except BaseException:  # as before the split: the answer never outlives a failure
            os.unlink(answer_path)
            raise
        return Submitted(render.id, tuple(ids), reused=False, answer_path=answer_path)


def _matches(item: dict[str, Any], job: Job, render: Render) -> bool:
    """Does a queue listing item look like this render's request? The listing echoes
    the model, the prompt and the other submitted parameters."""
    if item.get("model_name", item.get("model")) != job.model:
        return False
    enqueued = item.get("enqueued_at")
    if render.sent_at and isinstance(enqueued, int | float) and enqueued < render.sent_at - 120:
        return False
    for key, value in job.body.items():
        if key in ("model",):
            continue
        if key in item and item[key] is not None and item[key] != value:
            return False
    return True
