"""The values a run passes around: the `Job` to render, the `Event`s it reports, the
`Outcome` it ends with, and the `RunContext` that submitting and following share."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from klingspec.run.states import RenderState

if TYPE_CHECKING:
    from klingspec.images import LocalImage
    from klingspec.pricing import Quote
    from klingspec.run.client import OxenClient
    from klingspec.run.ledger import File, Ledger, Render


@dataclass(frozen=True)
class Upload:
    """One local image a request sends by URL, to be uploaded before the request is sent:
    the file (`path`, and the SHA-256 and size it had when checked) and where it goes."""

    path: str
    sha256: str  # hex digest
    size: int
    mime_type: str
    namespace: str
    repo: str
    branch: str
    remote_path: str
    url: str  # the hub URL the body sends

    @classmethod
    def of(cls, image: LocalImage) -> Upload:
        return cls(
            image.path,
            image.sha256,
            image.size,
            image.mime_type,
            image.namespace,
            image.repo,
            image.branch,
            image.remote_path,
            image.url,
        )

    def as_dict(self) -> dict[str, Any]:
        """As a saved plan stores it (`from_dict` reads it back)."""
        return {
            "path": self.path,
            "sha256": self.sha256,
            "bytes": self.size,
            "mime_type": self.mime_type,
            "repo": f"{self.namespace}/{self.repo}",
            "branch": self.branch,
            "remote_path": self.remote_path,
            "url": self.url,
        }

    @classmethod
    def from_dict(cls, item: dict[str, Any]) -> Upload:
        namespace, _, repo = str(item["repo"]).partition("/")
        return cls(
            str(item["path"]),
            str(item["sha256"]),
            int(item["bytes"]),
            str(item["mime_type"]),
            namespace,
            repo,
            str(item["branch"]),
            str(item["remote_path"]),
            str(item["url"]),
        )


@dataclass(frozen=True)
class Job:
    """One render to make: a compiled request and where its videos go."""

    script: str
    body: dict[str, Any]
    generations: int
    request_hash: str
    estimate_usd: Decimal | None  # the bill as previewed (`pricing.charge`); None: unknown
    out_dir: str
    ceiling_usd: Decimal | None  # the most it may be billed: what budgets and consent count
    uploads: tuple[Upload, ...] = ()  # local images its body sends: uploaded before it is sent
    variant: str | None = None  # the `--vars-table` row it renders (`row 3`): for people only

    @property
    def shown(self) -> str:
        """The script, and its row when it is a variant (`scene.kvs [row 3]`)."""
        return f"{self.script} [{self.variant}]" if self.variant else self.script

    @classmethod
    def create(
        cls,
        script: str,
        body: dict[str, Any],
        generations: int,
        request_hash: str,
        out_dir: str | None = None,
        uploads: tuple[Upload, ...] = (),
        variant: str | None = None,
    ) -> Job:
        """A job priced from its body by `pricing.quote_body` (the same figure the plan
        showed), whose videos land in `out_dir`, by default `renders/` beside the script."""
        from klingspec.pricing import quote_body

        folder = out_dir or os.path.join(os.path.dirname(os.path.abspath(script)), "renders")
        bill = quote_body(body, generations)
        return cls(script, body, generations, request_hash, bill.amount, folder, bill.ceiling, uploads, variant)

    def for_generations(self, generations: int) -> Job:
        """This job for `generations` videos only (a top-up), priced for that many."""
        from klingspec.pricing import quote_body

        bill = quote_body(self.body, generations)
        return replace(self, generations=generations, estimate_usd=bill.amount, ceiling_usd=bill.ceiling)

    @property
    def bill(self) -> Quote:
        """The previewed bill and its ceiling, as `pricing` quoted them."""
        from klingspec.pricing import Quote

        return Quote(self.estimate_usd, self.ceiling_usd)

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    @property
    def stem(self) -> str:
        return os.path.splitext(os.path.basename(self.script))[0]


class Stand(StrEnum):
    """Where a job stands before a run, by the ledger."""

    NEW = "new"  # nothing usable in the ledger: paid in full
    TOP_UP = "top-up"  # a partial render kept some videos: the missing ones are paid for
    IN_FLIGHT = "in flight"  # a render is on its way: reattached, nothing new
    UNSETTLED = "unsent"  # recorded, perhaps never sent: looked for in the queue, sent if absent
    REUSE = "reuse"  # a render finished: its videos are reused, nothing new
    DUPLICATE = "duplicate"  # the same request listed earlier in this run: rendered once


@dataclass(frozen=True)
class Standing:
    """What running `job` would do: `paid` is what it pays for (the job, or its top-up;
    None: nothing new), `render` the render it reattaches to or completes, `first` the job
    this one duplicates."""

    job: Job
    stand: Stand
    paid: Job | None
    render: Render | None  # from the ledger
    first: Job | None = None

    @property
    def new(self) -> Quote:
        """What it would newly cost (nothing, exactly, when nothing is paid for)."""
        from klingspec.pricing import Quote

        return self.paid.bill if self.paid is not None else Quote(Decimal(0), Decimal(0))


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
    state: RenderState  # done | partial | failed | cancelled | interrupted | unknown
    files: tuple[File, ...] = ()  # every video the request has, kept by earlier renders too
    spent_usd: Decimal | None = Decimal(0)  # new money committed by this run
    reused: bool = False
    error: str | None = None
    top_up: int = 0  # generations this run rendered to complete a partial render (0: not a top-up)


@dataclass(frozen=True)
class PollPolicy:
    initial: float = 2.0
    factor: float = 1.5
    cap: float = 20.0
    sse_check: float = 30.0  # with events flowing, still look every this often


@dataclass
class Waiters:
    """Completion events from the SSE stream, handed to the threads that wait for them."""

    condition: threading.Condition = field(default_factory=threading.Condition)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    healthy: bool = False

    def publish(self, generation_id: str, payload: dict[str, Any]) -> None:
        with self.condition:
            self.events[generation_id] = payload
            self.condition.notify_all()

    def fail(self) -> None:
        with self.condition:
            self.healthy = False
            self.condition.notify_all()

    def wait(self, generation_id: str, timeout: float) -> dict[str, Any] | None:
        with self.condition:
            self.condition.wait_for(lambda: generation_id in self.events or not self.healthy, timeout)
            return self.events.pop(generation_id, None)


class RunContext(Protocol):
    """What submitting and following read from the runner that owns them. `stop` and
    `waiters` are read afresh each time: the runner replaces them between runs."""

    client: OxenClient
    ledger: Ledger
    api_url: str
    mode: str
    poll: PollPolicy
    again: bool
    stop: threading.Event
    waiters: Waiters
    consented: frozenset[str] | None  # request hashes this run may pay for (None: any)

    def emit(
        self, kind: str, job: Job, message: str = "", generation_id: str | None = None, status: str | None = None
    ) -> None: ...


EmitFn = Callable[[Event], None]


def record_failure(
    ctx: RunContext, job: Job, render_id: int, message: str, state: RenderState = RenderState.FAILED
) -> Outcome:
    """Mark a render failed (or unknown) in the ledger, report it, and make its outcome.
    An unknown submit may have been billed, so its spend is unknown rather than $0."""
    ctx.ledger.set_state(render_id, state, message)
    ctx.emit("failed", job, message)
    return Outcome(job, render_id, state, error=message, spent_usd=None if state == RenderState.UNKNOWN else Decimal(0))
