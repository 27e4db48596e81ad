"""Following generations to their files: SSE or polling to a terminal status, then each
video downloaded to a temporary file, verified, renamed into place and recorded with its
sha256. Never prints; never submits anything (that is `submitting`'s job).

A request's videos are those all its renders kept: following a top-up also checks the
videos the render it completes kept (fetching one again if it is gone from disk), and
the request is done when it has all its generations. A render that ends with only some
of them is `partial`; one that ends with none is `failed` (or `cancelled`).
"""

from __future__ import annotations

import itertools
import os
import time
from decimal import Decimal
from typing import Any

from klingspec.run.client import ApiError, BadBody, Stopped
from klingspec.run.jobs import Job, Outcome, RunContext
from klingspec.run.ledger import File, Render
from klingspec.run.media import NotAVideo, decode_b64_videos, file_sha256
from klingspec.run.states import TERMINAL, GenerationStatus, RenderState
from klingspec.run.submitting import OUTCOME_UNKNOWN, Submitted, sync_answer_path


class Following:
    """Turns submitted generations into files on disk; see the module docstring."""

    def __init__(self, ctx: RunContext):
        self.ctx = ctx

    def follow(self, job: Job, submitted: Submitted) -> Outcome:
        """Every generation of a submitted render to its file, in order; for a top-up,
        the videos the request kept from earlier renders first."""
        ctx = self.ctx
        render_id, reused = submitted.render_id, submitted.reused
        render = ctx.ledger.render(render_id)
        assert render is not None  # submitting recorded it
        if render.mode == "sync":
            return self._follow_sync(job, submitted, render)
        top_up = render.completes is not None
        kept = [f for f in ctx.ledger.kept_files(render.root) if f.generation_id not in submitted.ids]
        spent = self.spent(job, submitted)
        files: list[File] = []
        errors: list[str] = []
        unfinished: list[str] = []
        # this render's own (just paid for) generations first, then the videos kept from earlier
        # renders (their paths are known): an old video that cannot be fetched again must not
        # stand between the user and the new ones
        fetches: list[tuple[str, int | None]] = [(gid, position) for position, gid in enumerate(submitted.ids)]
        fetches += [(f.generation_id, None) for f in kept]
        for gid, position in fetches:
            try:
                got = self._fetch(job, render, gid, position)
            except ApiError as failure:
                if position is not None:
                    raise
                unfinished.append("missing")
                errors.append(f"a video kept from an earlier render could not be fetched again: {failure}")
                continue
            if got is None:  # interrupted
                return Outcome(job, render_id, RenderState.INTERRUPTED, tuple(files), reused=reused, spent_usd=spent)
            if isinstance(got, File):
                files.append(got)
            else:
                status, error = got
                unfinished.append(status)
                errors.append(error)
        if kept:
            files.sort(key=lambda f: f.path)
        wanted = job.generations
        if len(files) >= wanted:
            return self._finish(job, render_id, files, reused, spent, render.generations if top_up else 0)
        own = sum(f.generation_id in submitted.ids for f in files)
        if own:
            state = RenderState.PARTIAL
        elif unfinished and all(s == GenerationStatus.CANCELLED for s in unfinished):
            state = RenderState.CANCELLED
        else:
            state = RenderState.FAILED  # this render made nothing usable
        message = "; ".join(errors) or "the API gave fewer generations than were asked for"
        if files:
            missing = wanted - len(files)
            message = (
                f"{len(files)} of {wanted} videos kept; {message}. `klingspec run` again renders only "
                f"the {missing} missing"
            )
        ctx.ledger.set_state(render_id, state, message)
        ctx.emit("failed", job, message)
        return Outcome(
            job,
            render_id,
            RenderState.PARTIAL if files else state,
            tuple(files),
            reused=reused,
            error=message,
            spent_usd=spent,
            top_up=render.generations if top_up and not reused else 0,
        )

    def spent(self, job: Job, submitted: Submitted) -> Decimal | None:
        """What this run newly committed for `submitted`: nothing when an earlier run paid
        for it (`reused`), else its price as recorded (a top-up's is the shortfall's),
        whatever becomes of it later: the API accepted it, so it is paid."""
        if submitted.reused:
            return Decimal(0)
        render = self.ctx.ledger.render(submitted.render_id)
        if render is not None and render.completes is not None:  # priced for the shortfall when recorded
            return None if render.estimate_usd is None else Decimal(render.estimate_usd)
        return job.estimate_usd

    def _fetch(self, job: Job, render: Render, gid: str, position: int | None) -> File | tuple[str, str] | None:
        """One generation to its verified file: the one on disk if intact, else waited for
        and downloaded (to the path the ledger holds for it, or to its `_destination`).
        (status, error) when it did not succeed; None when the run is stopping."""
        ctx = self.ctx
        existing = ctx.ledger.file(gid)
        if existing and os.path.exists(existing.path) and file_sha256(existing.path) == existing.sha256:
            return existing
        final = self._wait(job, gid)
        if final is None:
            return None
        status = final.get("status")
        if status != GenerationStatus.SUCCEEDED:
            return str(status), final.get("error_message") or final.get("error") or str(
                status or "the API gave no status"
            )
        url = final.get("result_url") or final.get("url")
        if not url:
            url = ctx.client.generation(gid).get("result_url")
        if existing:
            dest = existing.path
        else:
            assert position is not None  # a kept video's path is in the ledger
            dest = self._destination(job, render, position)
        os.makedirs(job.out_dir, exist_ok=True)
        ctx.emit("status", job, "downloading", gid, "downloading")
        try:
            sha, size = ctx.client.download(url, dest, ctx.stop)
        except Stopped:
            return None
        except BadBody as bad:  # not a video, or larger than one: the same URL would send it again
            ctx.ledger.update_generation(gid, GenerationStatus.FAILED, None, bad.message)
            return GenerationStatus.FAILED.value, bad.message
        return self._record(job, gid, dest, sha, size)

    def _finish(
        self, job: Job, render_id: int, files: list[File], reused: bool, spent: Decimal | None, top_up: int = 0
    ) -> Outcome:
        self.ctx.ledger.set_state(render_id, RenderState.DONE)
        self.ctx.emit("done", job, f"{len(files)} video{'s' if len(files) != 1 else ''} ready")
        return Outcome(
            job,
            render_id,
            RenderState.DONE,
            tuple(files),
            reused=reused,
            spent_usd=spent,
            top_up=0 if reused else top_up,
        )

    def _follow_sync(self, job: Job, submitted: Submitted, render: Render) -> Outcome:
        """A sync render's video from the answer the ledger recorded (`Submitting` records
        it before anything is downloaded): the URL downloaded, or a `b64_json` answer kept
        beside the videos decoded; never a poll (the queue knows nothing of sync renders).
        So a run killed mid-download is resumed by the next one without any POST. The
        answer file is removed once the video is in place."""
        ctx = self.ctx
        spent = self.spent(job, submitted)
        answer = sync_answer_path(render)
        files: list[File] = []
        errors: list[str] = []
        unknown = False
        for generation in ctx.ledger.generations(render.id):
            gid = generation.generation_id
            existing = ctx.ledger.file(gid)
            if existing and os.path.exists(existing.path) and file_sha256(existing.path) == existing.sha256:
                files.append(existing)
                continue
            answered = generation.status == GenerationStatus.SUCCEEDED or generation.error
            if not answered and not generation.result_url and not os.path.exists(answer):
                unknown = True  # recorded by an older klingspec before it read the answer
                errors.append(
                    f"{OUTCOME_UNKNOWN}: the sync answer of render #{render.id} was not recorded "
                    "(an older klingspec), and the queue does not list sync renders. "
                    "Not sent again; `klingspec run --again` renders it anew and pays again"
                )
                continue
            if generation.status != GenerationStatus.SUCCEEDED and not generation.result_url:
                errors.append(generation.error or "the API answered without a video")
                continue
            dest = existing.path if existing else self._destination(job, render, generation.position)
            os.makedirs(job.out_dir, exist_ok=True)
            try:
                if generation.result_url:
                    ctx.emit("status", job, "downloading", gid, "downloading")
                    sha, size = ctx.client.download(generation.result_url, dest, ctx.stop)
                elif os.path.exists(answer):
                    decoded = decode_b64_videos(answer, [dest], ctx.client.limits.video_bytes)
                    if not decoded:
                        raise BadBody("the API answered without a video", method="POST", path="/ai/videos/generate")
                    [(sha, size)] = decoded
                else:
                    unknown = True
                    errors.append(
                        f"{OUTCOME_UNKNOWN}: the sync answer of render #{render.id} was neither recorded nor kept "
                        "(an older klingspec, or its file was removed), and the queue does not list sync renders. "
                        "Not sent again; `klingspec run --again` renders it anew and pays again"
                    )
                    continue
            except Stopped:
                return Outcome(
                    job, render.id, RenderState.INTERRUPTED, tuple(files), reused=submitted.reused, spent_usd=spent
                )
            except (BadBody, NotAVideo) as bad:
                message = bad.message if isinstance(bad, BadBody) else str(bad)
                ctx.ledger.update_generation(gid, GenerationStatus.FAILED, None, message)
                errors.append(message)
                continue
            files.append(self._record(job, gid, dest, sha, size))
        if files and not errors:
            if os.path.exists(answer):
                os.unlink(answer)
            return self._finish(job, render.id, files, reused=submitted.reused, spent=spent)
        state = RenderState.UNKNOWN if unknown else RenderState.FAILED
        message = "; ".join(errors) or "the API answered without a video"
        ctx.ledger.set_state(render.id, state, message)
        if not unknown and os.path.exists(answer):
            os.unlink(answer)
        ctx.emit("failed", job, message)
        return Outcome(job, render.id, state, tuple(files), reused=submitted.reused, error=message, spent_usd=spent)

    def _record(self, job: Job, gid: str, dest: str, sha: str, size: int) -> File:
        self.ctx.ledger.record_file(gid, dest, sha, size)
        self.ctx.emit("download", job, f"saved {dest}", gid)
        return File(gid, dest, sha, size)

    def _destination(self, job: Job, render: Render, position: int) -> str:
        """`<stem>-<hash8>-<n>.mp4` with n = position + 1; a later render of the same
        request (`--again`) gets `-r<render id>` so it never overwrites a video the ledger
        holds for another one. A top-up takes the lowest n that holds no video yet (in the
        naming of the render it completes), so the videos kept before it stay as they are."""
        if render.completes is None:
            return self._numbered(job, render.id, position + 1)
        for n in itertools.count(1):
            path = self._numbered(job, render.root, n)
            if self.ctx.ledger.render_of_file(path) is None and not os.path.exists(path):
                return path
        raise AssertionError("unreachable")  # itertools.count never ends

    def _numbered(self, job: Job, root: int, n: int) -> str:
        """Video number n of the request rendered by `root` (and the top-ups completing it)."""
        ledger = self.ctx.ledger
        stem = f"{job.stem}-{job.request_hash.removeprefix('sha256:')[:8]}"
        path = os.path.join(job.out_dir, f"{stem}-{n}.mp4")
        owner = ledger.render_of_file(path)
        if owner is not None and owner != root:
            held = ledger.render(owner)
            if held is None or held.root != root:  # another render of the request (`--again`)
                path = os.path.join(job.out_dir, f"{stem}-r{root}-{n}.mp4")
        return path

    def _wait(self, job: Job, gid: str) -> dict[str, Any] | None:
        """Until `gid` is terminal: SSE when it flows, else polling with backoff. None
        when the run is stopping."""
        ctx = self.ctx
        interval = ctx.poll.initial
        first = True
        failing_since: float | None = None
        while not ctx.stop.is_set():
            if ctx.waiters.healthy and not first:
                payload = ctx.waiters.wait(gid, ctx.poll.sse_check)
                if payload is not None:
                    self._update(job, gid, payload.get("status"), payload.get("url"), payload.get("error"))
                    return payload
                if ctx.stop.is_set():
                    return None
            first = False
            try:
                item = ctx.client.generation(gid)
            except ApiError as error:
                if error.status == 404:
                    message = "the API no longer knows this generation (404)"
                    self._update(job, gid, GenerationStatus.FAILED, None, message)
                    return {"status": GenerationStatus.FAILED.value, "error_message": message}
                # 429s, 5xx or no network after the client's own retries: the job is alive
                # at the API whatever we hear, so keep following, backing off, for a while
                now = time.monotonic()
                if not error.transient or (failing_since is not None and now - failing_since > ctx.poll.patience):
                    raise
                if failing_since is None:
                    failing_since = now
                    ctx.emit("note", job, f"{error}; still following, with longer pauses")
                if ctx.stop.wait(interval):
                    return None
                interval = min(interval * ctx.poll.factor, ctx.poll.cap)
                continue
            failing_since = None
            status = item.get("status")
            self._update(job, gid, status, item.get("result_url"), item.get("error_message"))
            if status in TERMINAL:
                return item
            if not ctx.waiters.healthy:
                ctx.stop.wait(interval)
                interval = min(interval * ctx.poll.factor, ctx.poll.cap)
        return None

    def _update(self, job: Job, gid: str, status: str | None, url: str | None, error: str | None) -> None:
        if not status:
            return
        self.ctx.ledger.update_generation(gid, status, url, error)
        self.ctx.emit("status", job, status, gid, status)
