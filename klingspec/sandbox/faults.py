"""Fault injection: the `X-Sandbox-Fault` header syntax, and the rules set in the config.

A fault spec is a list of items separated by `,` or `;`, each `name` or `name=value`:

    latency=0.5            wait 0.5 s before answering (any route)
    status=429             answer 429 instead of handling the request (also 500, 503, or any
                           4xx/5xx); a bare `429`, `500` or `503` is short for `status=…`
    retry-after=2          with status: send `Retry-After: 2` (429 sends `1` by default)
    drop                   close the connection without a response; on POST /api/ai/queue and
                           POST /api/ai/videos/generate this happens *after* the generation
                           was recorded, so the work exists but the client never hears of it
    slow[=BYTES_PER_SEC]   downloads: throttle the body (default from the config)
    truncate=N             downloads: Content-Length is the full size, N bytes are sent, then
                           the connection closes
    fail=MESSAGE           queue/sync: the generation fails with MESSAGE, e.g.
                           `fail=Insufficient credits` (MESSAGE cannot contain `,` or `;`)
    fail-first=K           queue/sync: only the first K generations of the submit fail (with
                           `fail`'s MESSAGE, or "Injected fault: generation failed"); the
                           others succeed. `fail-first=2` on an enqueue of 4 leaves 2 videos
    endless                downloads: the video's start, then zeros for ever (no
                           Content-Length): a body that never ends
    gzip-bomb[=MB]         downloads: `Content-Encoding: gzip`, no Content-Length, inflating
                           to MB megabytes (default 2048) that start like an MP4
    not-mp4                downloads: 200 with an HTML page instead of the video
    endless-line           GET /api/events: `data: ` and then characters for ever, no newline

Example: `X-Sandbox-Fault: latency=0.2, status=503, retry-after=1`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields, replace
from typing import Any

from klingspec.sandbox.config import FaultRule

HEADER = "X-Sandbox-Fault"
DEFAULT_FAILURE = "Injected fault: generation failed"  # `fail-first` without `fail`


class FaultSyntaxError(ValueError):
    """A fault spec that does not parse; the message says what was expected."""


@dataclass(frozen=True)
class Fault:
    """What to do to one request. The empty `Fault()` does nothing."""

    latency: float = 0.0
    status: int | None = None
    retry_after: float | None = None
    drop: bool = False
    slow: int | None = None  # bytes per second; 0 means "the config's default rate"
    truncate: int | None = None
    fail: str | None = None
    fail_first: int | None = None
    endless: bool = False
    gzip_bomb: int | None = None  # megabytes it inflates to
    not_mp4: bool = False
    endless_line: bool = False

    def forced_error(self, index: int) -> str | None:
        """The error the `index`-th generation (0-based) of a submit is made to fail with."""
        if self.fail_first is None:
            return self.fail
        return (self.fail or DEFAULT_FAILURE) if index < self.fail_first else None

    def merge(self, other: Fault) -> Fault:
        """`self` overridden by every field `other` sets (a header beats the config)."""
        changes = {
            f.name: getattr(other, f.name) for f in fields(other) if getattr(other, f.name) != getattr(Fault(), f.name)
        }
        return replace(self, **changes)


def parse(spec: str) -> Fault:
    """Parse a fault spec (the module docstring gives the syntax).

    >>> parse("status=429, retry-after=2") == Fault(status=429, retry_after=2.0)
    True
    """
    fault = Fault()
    for item in filter(None, (part.strip() for part in spec.replace(";", ",").split(","))):
        name, _, value = (piece.strip() for piece in item.partition("="))
        fault = replace(fault, **_item(name.lower(), value, item))
    return fault


def _item(name: str, value: str, item: str) -> dict[str, Any]:
    if name.isdigit() and not value:
        name, value = "status", name
    try:
        if name == "latency":
            return {"latency": _non_negative(float(value))}
        if name == "status":
            status = int(value)
            if not 400 <= status <= 599:
                raise ValueError
            return {"status": status}
        if name == "retry-after":
            return {"retry_after": _non_negative(float(value))}
        if name == "drop" and not value:
            return {"drop": True}
        if name == "slow":
            return {"slow": _non_negative(int(value)) if value else 0}
        if name == "truncate":
            return {"truncate": _non_negative(int(value))}
        if name == "fail" and value:
            return {"fail": value}
        if name == "fail-first":
            return {"fail_first": int(_non_negative(int(value)))}
        if name in ("endless", "not-mp4", "endless-line") and not value:
            return {name.replace("-", "_"): True}
        if name == "gzip-bomb":
            return {"gzip_bomb": int(_non_negative(int(value))) if value else 2048}
    except ValueError:
        pass
    raise FaultSyntaxError(
        f"{HEADER}: cannot use {item!r}; expected latency=SECONDS, status=4xx|5xx, "
        "retry-after=SECONDS, drop, slow[=BYTES_PER_SEC], truncate=BYTES, fail=MESSAGE, fail-first=COUNT, "
        "endless, gzip-bomb[=MB], not-mp4 or endless-line"
    )


def _non_negative(value: float) -> float:
    if value < 0:
        raise ValueError
    return value


class FaultBook:
    """The config's `FaultRule`s with their remaining counts; safe to use from any thread."""

    def __init__(self, rules: tuple[FaultRule, ...]) -> None:
        for rule in rules:
            parse(rule.fault)  # fail at start-up, not on the first matching request
        self._lock = threading.Lock()
        self._initial = rules
        self._rules: list[tuple[FaultRule, Fault, int | None]] = []
        self.reset()

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.append((rule, parse(rule.fault), rule.times))

    def reset(self) -> None:
        """Back to the config's rules with their full counts."""
        with self._lock:
            self._rules = [(rule, parse(rule.fault), rule.times) for rule in self._initial]

    def take(self, method: str, path: str) -> Fault:
        """The merged fault of every rule matching this request, using up one of each."""
        fault = Fault()
        with self._lock:
            for index, (rule, parsed, left) in enumerate(self._rules):
                if left == 0 or rule.method not in ("*", method) or not _matches(rule.path, path):
                    continue
                fault = fault.merge(parsed)
                self._rules[index] = (rule, parsed, None if left is None else left - 1)
        return fault


def _matches(pattern: str, path: str) -> bool:
    """`*` matches every path, `/api/files/*` every path under it, else exact equality."""
    return path.startswith(pattern[:-1]) if pattern.endswith("*") else path == pattern
