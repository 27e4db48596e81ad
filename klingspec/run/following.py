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
import json
import os
from decimal import Decimal
from typing import Any

from klingspec.run.client import ApiError, Stopped
from klingspec.run.jobs import Job, Outcome, RunContext, record_failure
from klingspec.run.ledger import File, Render
from klingspec.run.media import decode_b64_videos, file_sha256
from klingspec.run.states import TERMINAL, GenerationStatus, RenderState
from klingspec.run.submitting import Submitted


class Following:
    """Turns submitted generations into files on disk; see the module docstring."""

    def __init__(self, ctx: RunContext):
        self.ctx = ctx

    def follow(self, job: Job, submitted: Submitted) -> Outcome:
        """Every generation of a submitted render to its file, in order; for a top-up,
        the videos the request kept from earlier renders first."""
        if submitted.answer_path is not None:
            return self._store_sync_answer(job, submitted)
        ctx = self.ctx
        render_id, reused = submitted.render_id, submitted.reused
        render = ctx.ledger.render(render_id)
        assert render is not None  # submitting recorded it
        top_up = render.completes is not None
        kept = [f for f in ctx.ledger.kept_files(render.root) if f.generation_id not in submitted.ids]
        if reused:
            spent: Decimal | None = Decimal(0)
        elif top_up:  # priced for the shortfall when it was recorded
            spent = None if render.estimate_usd is None else Decimal(render.estimate_usd)
        else:
            spent = job.estimate_usd
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

    def _store_sync_answer(self, job: Job, submitted: Submitted) -> Outcome:
        """The sync endpoint's answer (streamed to a file) to videos: b64_json decoded in
        chunks, URLs downloaded. The answer file is removed whatever happens."""
        assert submitted.answer_path is not None
        ctx, answer_path, render_id = self.ctx, submitted.answer_path, submitted.render_id
        try:
            render = ctx.ledger.render(render_id)
            assert render is not None  # submitting recorded it
            destinations = [self._destination(job, render, i) for i in range(len(submitted.ids))]
            files = []
            if job.body.get("response_format") == "b64_json":
                decoded = decode_b64_videos(answer_path, destinations)
                for gid, dest, (sha, size) in zip(submitted.ids, destinations, decoded, strict=False):
                    ctx.ledger.update_generation(gid, GenerationStatus.SUCCEEDED)
                    files.append(self._record(job, gid, dest, sha, size))
            else:
                with open(answer_path, "rb") as handle:
                    try:
                        answer = json.load(handle)
                    except ValueError:
                        raise ApiError(
                            "the API answered with something that is not JSON",
                            method="POST",
                            path="/ai/videos/generate",
                        ) from None
                videos = answer.get("videos") if isinstance(answer, dict) else None
                for gid, dest, video in zip(submitted.ids, destinations, videos or [], strict=False):
                    url = video.get("url") if isinstance(video, dict) else None
                    ctx.ledger.update_generation(gid, GenerationStatus.SUCCEEDED, url)
                    sha, size = ctx.client.download(url or "", dest, ctx.stop)
                    files.append(self._record(job, gid, dest, sha, size))
            if len(files) < len(submitted.ids):
                return record_failure(ctx, job, render_id, "the API answered without a video")
        finally:
            if os.path.exists(answer_path):
                os.unlink(answer_path)
        return self._finish(job, render_id, files, reused=False, spent=job.estimate_usd)

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
                if error.status != 404:
                    raise
                message = "the API no longer knows this generation (404)"
                self._update(job, gid, GenerationStatus.FAILED, None, message)
                return {"status": GenerationStatus.FAILED.value, "error_message": message}
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
