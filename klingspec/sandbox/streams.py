"""Responses that need finer control than Starlette's: downloads, and dropped connections.

Both faults that cut a connection (`drop`, `truncate`) must close the socket *without*
the server finishing the response, which ASGI cannot express. The sandbox's outer ASGI
wrapper stashes uvicorn's own `send` in the scope; its owner (uvicorn's request cycle)
holds the transport, which we close. After closing we wait for uvicorn to notice the
disconnect, so it neither sends a 500 nor logs an error. If the server is not uvicorn,
`drop_connection` raises, and the client gets a 500 instead of silence.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, MutableMapping
from typing import Any

from klingspec.sandbox.mp4 import VideoSpec, iter_mp4

RAW_SEND = "klingspec.sandbox.raw_send"

Scope = MutableMapping[str, Any]


async def drop_connection(scope: Scope, receive: Any) -> None:
    """Close the client's connection now, with nothing (more) sent."""
    transport = getattr(getattr(scope.get(RAW_SEND), "__self__", None), "transport", None)
    if transport is None:
        raise RuntimeError("the drop fault needs uvicorn (no transport found)")
    transport.close()  # flushes bytes already written (truncate), then closes
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(_until_disconnect(receive), timeout=2.0)


async def _until_disconnect(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class Dropped:
    """An ASGI 'response' that closes the connection instead of answering."""

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        await drop_connection(scope, receive)


class FileStream:
    """Stream a file in chunks, optionally throttled (`rate`) or cut short (`truncate`).

    `chunks` yields the file's `size` bytes (a result MP4 made on the fly, or an uploaded
    file). Content-Length is always the full size, so a truncated body is detectable by
    the client as fewer bytes than announced followed by a closed connection.
    """

    def __init__(
        self,
        content_type: str,
        size: int,
        chunks: Iterable[bytes],
        chunk_size: int,
        rate: int | None = None,
        truncate: int | None = None,
    ) -> None:
        self.content_type, self.size, self.chunks = content_type, size, chunks
        self.chunk_size, self.rate, self.truncate = chunk_size, rate, truncate

    @classmethod
    def video(
        cls, spec: VideoSpec, chunk_size: int, rate: int | None = None, truncate: int | None = None
    ) -> FileStream:
        return cls("video/mp4", spec.size, iter_mp4(spec, chunk_size), chunk_size, rate, truncate)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", self.content_type.encode("latin-1")),
                    (b"content-length", str(self.size).encode()),
                    (b"accept-ranges", b"none"),
                ],
            }
        )
        budget = self.size if self.truncate is None else min(self.truncate, self.size)
        # When throttled, send about 20 pieces a second so the rate is smooth.
        piece_size = min(self.chunk_size, max(1024, self.rate // 20)) if self.rate else self.chunk_size
        loop = asyncio.get_running_loop()
        started, sent = loop.time(), 0
        for chunk in self.chunks:
            for piece in _split(chunk[: budget - sent], piece_size):
                if self.rate:  # wait until this piece fits under the average rate
                    await asyncio.sleep(max(0.0, started + (sent + len(piece)) / self.rate - loop.time()))
                await send({"type": "http.response.body", "body": piece, "more_body": True})
                sent += len(piece)
            if sent >= budget:
                break
        if self.truncate is not None and sent < self.size:
            await drop_connection(scope, receive)
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]
