"""Everything one running sandbox remembers, in one object owned by its app (no globals).

Also the request counter behind `GET /_sandbox/stats`, and the worker that moves each
generation queued -> processing -> succeeded/failed on the configured clock. A generation
fetches its input URLs as it starts processing (`inputs.py`); one that cannot be used
fails it, like any other model-parameter error.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any

from klingspec.sandbox import footage
from klingspec.sandbox.catalog import MODELS, ModelSpec
from klingspec.sandbox.config import SandboxConfig
from klingspec.sandbox.events import Broker
from klingspec.sandbox.faults import FaultBook
from klingspec.sandbox.inputs import Fetcher
from klingspec.sandbox.mp4 import VideoSpec
from klingspec.sandbox.queue import FileStore, Job, JobStatus, JobStore, now
from klingspec.sandbox.repos import RepoStore
from klingspec.sandbox.validation import model_error, total_seconds


class Stats:
    """Requests counted per route, keyed `"METHOD /path/{template}"`; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._dropped = 0

    def count(self, route: str) -> None:
        with self._lock:
            self._requests[route] += 1

    def dropped(self) -> None:
        with self._lock:
            self._dropped += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": dict(sorted(self._requests.items())),
                "total": sum(self._requests.values()),
                "dropped": self._dropped,
            }

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()
            self._dropped = 0


class SandboxState:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.jobs = JobStore()
        self.files = FileStore()
        self.repos = RepoStore()
        self.broker = Broker()
        self.faults = FaultBook(config.faults)
        self.stats = Stats()
        self._tasks: set[asyncio.Task[None]] = set()
        self.retired: set[str] = set(config.retired)
        self.prices: dict[str, float] = dict(config.prices)

    def served(self, name: str) -> ModelSpec | None:
        """The model `name` if the catalogue lists it now (not retired), else None."""
        return None if name in self.retired else MODELS.get(name)

    def model_object(self, spec: ModelSpec) -> dict[str, Any]:
        return spec.model_object(self.prices.get(spec.id))

    def start(self, job: Job, result_url: str) -> None:
        """Run `job` in the background on the server's event loop; `result_url` is where
        its video will download from once it succeeds."""
        task = asyncio.get_running_loop().create_task(self._run(job, result_url))
        self._tasks.add(task)  # keep a reference: the loop holds tasks only weakly
        task.add_done_callback(self._tasks.discard)

    def reset(self) -> None:
        """Forget all jobs, files, uploads, counts and used-up faults (`POST /_sandbox/reset`)."""
        self.cancel_tasks()
        self.jobs.clear()
        self.files.clear()
        self.repos.clear()
        self.stats.clear()
        self.faults.reset()
        self.retired = set(self.config.retired)  # the catalogue goes back to the config's
        self.prices = dict(self.config.prices)

    def cancel_tasks(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    async def checked(
        self, body: Mapping[str, Any], spec: ModelSpec, forced: str | None
    ) -> tuple[str | None, Mapping[str, bytes]]:
        """Why the generation fails, in the order Oxen finds out: a forced fault's error,
        then the model's parameters, then the input URLs (fetched as Oxen would); or None.
        With the bytes of the URLs read (`Fetcher.fetched`), for the result's start frame."""
        error = forced or model_error(body, spec)
        if error is not None:
            return error, {}
        async with Fetcher(self.config, self.repos) as fetcher:
            return await fetcher.error(body, spec), fetcher.fetched

    def processing_time(self, body: Mapping[str, Any], spec: ModelSpec) -> float:
        """How long a valid generation of `body` is `processing`: longer for a longer video."""
        config = self.config
        return config.processing_seconds + config.processing_per_second * float(total_seconds(body, spec))

    async def result(self, body: Mapping[str, Any], spec: ModelSpec, fetched: Mapping[str, bytes]) -> VideoSpec:
        """The result of a valid request: footage of what it asks (`footage.py`) when PyAV is
        installed and no padding is configured, else the pure-Python grey file (`mp4.py`).
        Only the start image's colour is worked out here; the video is rendered on first use."""
        seconds = total_seconds(body, spec)
        if self.config.file_size is not None or not footage.available():
            return VideoSpec(seconds, self.config.file_size)
        url = footage.start_url(body, spec)
        data = fetched.get(url) if url is not None else None
        start = None if data is None else await asyncio.to_thread(footage.average_colour, data)
        return VideoSpec(seconds, picture=footage.picture_of(body, spec, start))

    async def _run(self, job: Job, result_url: str) -> None:
        config, gid = self.config, job.generation_id
        await asyncio.sleep(config.queue_seconds)
        processing = self.jobs.transition(gid, (JobStatus.QUEUED,), status=JobStatus.PROCESSING, started_at=now())
        if processing is None:  # cancelled while queued
            return
        job = processing
        # Era C: model parameters are checked when the generation runs, not at enqueue.
        spec = MODELS[job.model_name]
        error, fetched = await self.checked(job.body, spec, job.forced_error)
        if error is None:
            await asyncio.sleep(self.processing_time(job.body, spec))
            self.files.add(gid, await self.result(job.body, spec, fetched))
            done = self.jobs.transition(
                gid, (JobStatus.PROCESSING,), status=JobStatus.SUCCEEDED, result_url=result_url, completed_at=now()
            )
            if done is not None:
                self.broker.publish(
                    done.owner,
                    {
                        "generation_id": gid,
                        "status": JobStatus.SUCCEEDED,
                        "media_type": "video",
                        "model": done.model_name,
                        "url": done.result_url,
                    },
                )
            return
        done = self.jobs.transition(
            gid, (JobStatus.PROCESSING,), status=JobStatus.FAILED, error_message=error, completed_at=now()
        )
        if done is not None:
            self.broker.publish(
                done.owner, {"generation_id": gid, "status": JobStatus.FAILED, "media_type": "video", "error": error}
            )
