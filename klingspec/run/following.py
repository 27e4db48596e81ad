"""Following generations to their files: SSE or polling to a terminal status, then each
video downloaded to a temporary file, verified, renamed into place and recorded with its
sha256. Never prints; never submits anything (that is `submitting`'s job).
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from typing import Any

from klingspec.run.client import ApiError, Stopped
from klingspec.run.jobs import Job, Outcome, RunContext, record_failure
from klingspec.run.ledger import File
from klingspec.run.media import decode_b64_videos, file_sha256
from klingspec.run.states import TERMINAL, GenerationStatus, RenderState
from klingspec.run.submitting import Submitted


class Following:
    """Turns submitted generations into files on disk; see the module docstring."""

    def __init__(self, ctx: RunContext):
        self.ctx = ctx

    def follow(self, job: Job, submitted: Submitted) -> Outcome:
        """Every generation of a submitted render to its file, in order."""
        if submitted.answer_path is not None:
            return self._store_sync_answer(job, submitted)
        ctx = self.ctx
        render_id, reused = submitted.render_id, submitted.reused
        files: list[File] = []
        errors: list[str] = []
        states: list[str] = []
        spent = Decimal(0) if reused else job.estimate_usd
        for position, gid in enumerate(submitted.ids):
            existing = ctx.ledger.file(gid)
            if existing and os.path.exists(existing.path) and file_sha256(existing.path) == existing.sha256:
                files.append(existing)
                states.append(GenerationStatus.SUCCEEDED)
                continue
            final = self._wait(job, gid)
            if final is None:  # interrupted
                return Outcome(job, render_id, RenderState.INTERRUPTED, tuple(files), reused=reused, spent_usd=spent)
            status = final.get("status")
            states.append(str(status))
            if status == GenerationStatus.SUCCEEDED:
                url = final.get("result_url") or final.get("url")
                if not url:
                    url = ctx.client.generation(gid).get("result_url")
                dest = self._destination(job, render_id, position)
                os.makedirs(job.out_dir, exist_ok=True)
                ctx.emit("status", job, "downloading", gid, "downloading")
                try:
                    sha, size = ctx.client.download(url, dest, ctx.stop)
                except Stopped:
                    return Outcome(
                        job, render_id, RenderState.INTERRUPTED, tuple(files), reused=reused, spent_usd=spent
                    )
                files.append(self._record(job, gid, dest, sha, size))
            else:
                errors.append(
                    final.get("error_message") or final.get("error") or str(status or "the API gave no status")
                )
        if errors:
            unfinished = [s for s in states if s != GenerationStatus.SUCCEEDED]
            all_cancelled = all(s == GenerationStatus.CANCELLED for s in unfinished)
            state = RenderState.CANCELLED if all_cancelled else RenderState.FAILED
            message = "; ".join(errors)
            ctx.ledger.set_state(render_id, state, message)
            ctx.emit("failed", job, message)
            return Outcome(job, render_id, state, tuple(files), reused=reused, error=message, spent_usd=spent)
        return self._finish(job, render_id, files, reused)

    def _finish(self, job: Job, render_id: int, files: list[File], reused: bool) -> Outcome:
        self.ctx.ledger.set_state(render_id, RenderState.DONE)
        self.ctx.emit("done", job, f"{len(files)} video{'s' if len(files) != 1 else ''} ready")
        return Outcome(
            job,
            render_id,
            RenderState.DONE,
            tuple(files),
            reused=reused,
            spent_usd=Decimal(0) if reused else job.estimate_usd,
        )

    def _store_sync_answer(self, job: Job, submitted: Submitted) -> Outcome:
        """The sync endpoint's answer (streamed to a file) to videos: b64_json decoded in
        chunks, URLs downloaded. The answer file is removed whatever happens."""
        assert submitted.answer_path is not None
        ctx, answer_path, render_id = self.ctx, submitted.answer_path, submitted.render_id
        try:
            destinations = [self._destination(job, render_id, i) for i in range(len(submitted.ids))]
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
        return self._finish(job, render_id, files, reused=False)

    def _record(self, job: Job, gid: str, dest: str, sha: str, size: int) -> File:
        self.ctx.ledger.record_file(gid, dest, sha, size)
        self.ctx.emit("download", job, f"saved {dest}", gid)
        return File(gid, dest, sha, size)

    def _destination(self, job: Job, render_id: int, position: int) -> str:
        """`<stem>-<hash8>-<n>.mp4`; a later render of the same request (`--again`) gets
        `-r<render id>` so it never overwrites a video the ledger holds for another one."""
        stem = f"{job.stem}-{job.request_hash.removeprefix('sha256:')[:8]}"
        path = os.path.join(job.out_dir, f"{stem}-{position + 1}.mp4")
        owner = self.ctx.ledger.render_of_file(path)
        if owner is not None and owner != render_id:
            path = os.path.join(job.out_dir, f"{stem}-r{render_id}-{position + 1}.mp4")
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
