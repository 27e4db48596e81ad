"""The two vocabularies of a run: where a render stands in the ledger, and what the API
says of one generation. `StrEnum`s, so the ledger's TEXT columns and the API's JSON
compare equal to them without conversion, and a typo is an AttributeError, not a
silently false comparison."""

from __future__ import annotations

from enum import StrEnum


class RenderState(StrEnum):
    """A render's life in the ledger (and `INTERRUPTED`, an outcome that is never stored)."""

    INTENT = "intent"  # recorded, not sent: safe to send
    SENT = "sent"  # sent, answer not yet heard: reconcile before sending again
    SUBMITTED = "submitted"  # the API gave its generation ids
    UNKNOWN = "unknown"  # sent, answer lost: may exist and be billed
    DONE = "done"
    PARTIAL = "partial"  # finished; some videos kept, the rest failed: a top-up renders only those
    FAILED = "failed"  # finished with nothing usable
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # this run stopped following; the render goes on

    @property
    def active(self) -> bool:
        """Still in flight (or possibly so): counts against the budget, shown by `status`."""
        return self in ACTIVE_RENDER_STATES


ACTIVE_RENDER_STATES = (RenderState.INTENT, RenderState.SENT, RenderState.SUBMITTED, RenderState.UNKNOWN)


class GenerationStatus(StrEnum):
    """The API's status of one generation (`GET /ai/queue/{id}`)."""

    QUEUED = "queued"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = (GenerationStatus.SUCCEEDED, GenerationStatus.FAILED, GenerationStatus.CANCELLED)


def sql_list(states: tuple[StrEnum, ...]) -> str:
    """`('a','b')` for a SQL `IN`: the values are this module's constants, never input."""
    return "(" + ",".join(f"'{s.value}'" for s in states) + ")"
