"""Completion events: the per-user broker and the `GET /api/events` SSE stream.

Events reach only the subscribers connected when they are published (no buffering or
replay, as Oxen documents). A subscription is registered before the response headers go
out, so a client that has seen the headers cannot miss a later event.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

EVENT = "media_generation_completed"
KEEP_ALIVE = b": keep-alive\n\n"


@dataclass(eq=False)
class Subscription:
    owner: str
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = field(default_factory=asyncio.Queue)


class Broker:
    """Fan-out of events to the live subscriptions of each user; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscriptions: set[Subscription] = set()

    def subscribe(self, owner: str) -> Subscription:
        subscription = Subscription(owner, asyncio.get_running_loop())
        with self._lock:
            self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions.discard(subscription)

    def publish(self, owner: str, data: dict[str, Any], event: str = EVENT) -> None:
        for subscription in self._current(owner):
            subscription.loop.call_soon_threadsafe(subscription.queue.put_nowait, (event, data))

    def close(self) -> None:
        """End every open stream (server shutdown; otherwise uvicorn waits on them)."""
        for subscription in self._current(None):
            subscription.loop.call_soon_threadsafe(subscription.queue.put_nowait, None)

    def _current(self, owner: str | None) -> list[Subscription]:
        with self._lock:
            return [s for s in self._subscriptions if owner is None or s.owner == owner]


def encode(event: str, data: dict[str, Any]) -> bytes:
    """One SSE message: the event line, then `data: ` and single-line JSON."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class EventStream:
    """The SSE response: events as they come, a keep-alive comment when idle."""

    def __init__(self, broker: Broker, subscription: Subscription, keepalive: float) -> None:
        self.broker, self.subscription, self.keepalive = broker, subscription, keepalive

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                    (b"x-accel-buffering", b"no"),
                ],
            }
        )
        disconnected = asyncio.ensure_future(_until_disconnect(receive))
        try:
            while True:
                item = asyncio.ensure_future(self.subscription.queue.get())
                done, _ = await asyncio.wait(
                    {item, disconnected}, timeout=self.keepalive, return_when=asyncio.FIRST_COMPLETED
                )
                if item not in done:
                    item.cancel()
                    if disconnected in done:
                        return
                    await send({"type": "http.response.body", "body": KEEP_ALIVE, "more_body": True})
                    continue
                message = item.result()
                if message is None:  # the server is shutting down
                    break
                await send({"type": "http.response.body", "body": encode(*message), "more_body": True})
        finally:
            disconnected.cancel()
            self.broker.unsubscribe(self.subscription)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _until_disconnect(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
