"""The sandbox's settings: one frozen `SandboxConfig`, plus `FaultRule` for faults set up front.

Everything that changes how the emulator behaves lives here, so a test, a benchmark and
the `klingspec sandbox` command all describe a sandbox the same way: by value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class FaultRule:
    """Inject `fault` into requests matching `method` and `path`, at most `times` times.

    `fault` uses the `X-Sandbox-Fault` header syntax (see `faults.py`), e.g.
    ``"status=429, retry-after=2"``. `path` is an exact request path such as
    ``/api/ai/queue``, a prefix ending in ``*`` such as ``/api/files/*`` (downloads), or
    ``*`` for every path; `method` is an HTTP method or ``*``.
    `times=None` means every matching request, forever.
    """

    fault: str
    path: str = "*"
    method: str = "*"
    times: int | None = None


@dataclass(frozen=True)
class SandboxConfig:
    """How the sandbox behaves. The defaults suit the README quick start.

    Attributes:
        api_key: If set, the only bearer token accepted; otherwise any non-empty token is
            (each token is its own user: jobs and events are scoped to it).
        username: The key holder's namespace: where jobs without a `target_namespace`
            go, and the one `GET /api/ai/queue` lists when no `namespace` is asked for.
        queue_seconds: Time a generation spends `queued` before a worker picks it up.
        processing_seconds: Time a generation spends `processing` before it succeeds.
            The sync endpoint blocks for `queue_seconds + processing_seconds`.
        processing_per_second: More `processing` time per second of output, as a real
            model takes longer for a longer video (0: every generation takes the same).
        keepalive_seconds: Idle interval between `: keep-alive` comments on `/api/events`
            (Oxen documents 15 s).
        file_size: Pad every result MP4 to this many bytes (`None`: natural size). A padded
            result is always the pure-Python grey file (`mp4.py`), whose padding is
            streamed in `chunk_size` pieces, never held in memory; an unpadded one is
            footage of the request when PyAV is installed (`footage.py`).
        chunk_size: Size of each body chunk of a download.
        slow_bytes_per_second: Default download rate of the `slow` fault when the fault
            does not give one.
        faults: Faults applied to matching requests before any per-request header.
        upload_max_bytes: Largest request body `PUT /api/repos/…/file/…` accepts; a larger
            one is refused with 413 before it is stored (uploads are kept in memory).
        private_repos: Repositories, as ``"namespace/repo"``, whose files only an
            authenticated request can read. Every other repository is public. A job
            fetches its inputs without credentials, so a private file's URL fails it.
        input_fetch_timeout: Seconds a job may spend fetching one input URL (loopback
            URLs are fetched for real; see `inputs.py`) before it fails.
        input_max_bytes: Largest input file a job accepts; a larger one fails the job.
        retired: Model ids the catalogue no longer lists: the listing and search leave them
            out, their detail is a 404 `resource_not_found`, and generate/enqueue refuse
            them with `Model not found` (OWN: the stricter reading). Jobs already queued
            run on. `catalog.RETIRED_2026_07_27` is the catalogue after Oxen's switch.
        prices: `cost_per_second` overrides per model id, shown by the detail, list and
            search routes. `POST /_sandbox/catalog` changes both while a sandbox runs.
    """

    api_key: str | None = None
    username: str = "sandbox-user"
    queue_seconds: float = 0.3
    processing_seconds: float = 0.3
    processing_per_second: float = 0.0
    keepalive_seconds: float = 15.0
    file_size: int | None = None
    chunk_size: int = 64 * 1024
    slow_bytes_per_second: int = 256 * 1024
    faults: tuple[FaultRule, ...] = field(default=())
    upload_max_bytes: int = 50 * 1024 * 1024
    private_repos: frozenset[str] = field(default=frozenset())
    input_fetch_timeout: float = 5.0
    input_max_bytes: int = 50 * 1024 * 1024
    retired: frozenset[str] = field(default=frozenset())
    prices: Mapping[str, float] = field(default_factory=dict)
