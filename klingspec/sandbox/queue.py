"""Generations and result files: the emulator's thread-safe stores.

A `Job` is a frozen record; every change is a `transition` that swaps in a new record
under a lock, and only from the statuses the caller names. That one rule keeps a cancel
and the worker from overwriting each other: whoever moves first wins, the other sees None.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from klingspec.sandbox.mp4 import VideoSpec


class JobStatus(StrEnum):
    """A generation's status, as the API spells it (the run wing has its own copy of this
    vocabulary: the emulator is written from the documents, not from klingspec's client)."""

    QUEUED = "queued"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


STATUSES = tuple(JobStatus)
ACTIVE = (JobStatus.QUEUED, JobStatus.PROCESSING)
# Request fields that are about the queue, not the model: never echoed on a generation.
_NOT_ECHOED = frozenset({"model", "prompt", "num_generations", "target_namespace"})


def now() -> int:
    """Timestamps are Unix seconds as integers (fact sheet 8.5)."""
    return int(time.time())


@dataclass(frozen=True)
class Job:
    """One queued generation. `owner` (the bearer token) and `forced_error` stay private."""

    generation_id: str
    owner: str
    namespace: str
    model_name: str
    body: Mapping[str, Any]
    status: str = JobStatus.QUEUED
    result_url: str | None = None
    error_message: str | None = None
    enqueued_at: int = field(default_factory=now)
    started_at: int | None = None
    completed_at: int | None = None
    forced_error: str | None = None

    @classmethod
    def new(
        cls, owner: str, namespace: str, model_name: str, body: Mapping[str, Any], forced_error: str | None = None
    ) -> Job:
        return cls(
            generation_id=str(uuid.uuid4()),
            owner=owner,
            namespace=namespace,
            model_name=model_name,
            body=MappingProxyType(dict(body)),
            forced_error=forced_error,
        )

    def public(self) -> dict[str, Any]:
        """The documented queue item (fact sheet 4.3): fixed fields, then echoed parameters.

        `prompt` is null for a `multi_prompt` job, whose shots are echoed as `multi_prompt`
        (what Oxen puts there is UNKNOWN). Echoed fields never overwrite documented ones.
        """
        echoed = {k: v for k, v in self.body.items() if k not in _NOT_ECHOED}
        prompt = self.body.get("prompt")
        return echoed | {
            "generation_id": self.generation_id,
            "model_name": self.model_name,
            "prompt": prompt if isinstance(prompt, str) and prompt else None,
            "media_type": "video",
            "status": self.status,
            "result_url": self.result_url,
            "error_message": self.error_message,
            "enqueued_at": self.enqueued_at,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
        }


class JobStore:
    """All generations, in enqueue order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}

    def add(self, job: Job) -> Job:
        with self._lock:
            self._jobs[job.generation_id] = job
        return job

    def get(self, owner: str, generation_id: str) -> Job | None:
        """The job, if it exists and belongs to `owner` (someone else's is a 404 too)."""
        with self._lock:
            job = self._jobs.get(generation_id)
        return job if job is not None and job.owner == owner else None

    def select(self, owner: str, statuses: Iterable[str], **equal: str | None) -> list[Job]:
        """`owner`'s jobs in one of `statuses` whose attributes match the non-None `equal`."""
        wanted, tests = set(statuses), {k: v for k, v in equal.items() if v is not None}
        with self._lock:
            jobs = list(self._jobs.values())
        return [
            job
            for job in jobs
            if job.owner == owner and job.status in wanted and all(getattr(job, k) == v for k, v in tests.items())
        ]

    def transition(self, generation_id: str, from_statuses: Iterable[str], **changes: Any) -> Job | None:
        """Apply `changes` if the job is in one of `from_statuses`; the new job, or None."""
        with self._lock:
            job = self._jobs.get(generation_id)
            if job is None or job.status not in from_statuses:
                return None
            job = self._jobs[generation_id] = replace(job, **changes)
        return job

    def counts(self) -> dict[str, int]:
        with self._lock:
            jobs = list(self._jobs.values())
        return {status: sum(job.status == status for job in jobs) for status in STATUSES}

    def clear(self) -> None:
        with self._lock:
            self._jobs.clear()


class FileStore:
    """Result files by id: only their description is kept; bytes are made on download."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, VideoSpec] = {}

    def add(self, file_id: str, spec: VideoSpec) -> None:
        with self._lock:
            self._files[file_id] = spec

    def get(self, file_id: str) -> VideoSpec | None:
        with self._lock:
            return self._files.get(file_id)

    def clear(self) -> None:
        with self._lock:
            self._files.clear()
