"""Running the sandbox: `serve` in the foreground (CLI), `running_sandbox` in a thread (tests).

Both use uvicorn with its pure-Python h11 protocol: the connection-drop faults reach the
transport through uvicorn's request cycle (see `streams.py`), and h11 is the
implementation that is always installed, so behaviour does not depend on extras.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import uvicorn

from klingspec.sandbox.app import SandboxApp, create_app
from klingspec.sandbox.config import SandboxConfig

DEFAULT_PORT = 8765


def serve(
    host: str = "127.0.0.1", port: int = DEFAULT_PORT, config: SandboxConfig | None = None, *, log_level: str = "info"
) -> None:
    """Serve the sandbox until interrupted (Ctrl-C); for `klingspec sandbox --port N`.

    Args:
        host: Interface to bind; loopback by default, as the sandbox has no real auth.
        port: TCP port; 0 picks a free one (uvicorn logs the address).
        config: Emulator behaviour; `SandboxConfig()` when omitted.
        log_level: uvicorn's log level ("info" shows each request).
    """
    uvicorn.run(
        create_app(config),
        host=host,
        port=port,
        log_level=log_level,
        http="h11",
        lifespan="on",
        interface="asgi3",
        timeout_graceful_shutdown=2,
    )


@contextlib.contextmanager
def running_sandbox(config: SandboxConfig | None = None) -> Iterator[str]:
    """Run a sandbox on 127.0.0.1 and an ephemeral port for the `with` block.

    Yields the API base URL, shaped like Oxen's ``https://hub.oxen.ai/api``: e.g.
    ``http://127.0.0.1:50123/api``, so a client appends ``/ai/queue`` or ``/events`` as
    it would for Oxen; the sandbox controls are at ``<base>/_sandbox/stats``. On exit, open
    event streams are ended, pending generations cancelled and the server thread joined.
    """
    app = create_app(config)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            http="h11",
            lifespan="on",
            interface="asgi3",
            timeout_graceful_shutdown=2,
        )
    )
    thread = threading.Thread(target=server.run, name="klingspec-sandbox", daemon=True)
    thread.start()
    try:
        _wait_started(server, thread)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}/api"
    finally:
        _stop(app, server, thread)


def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    for _ in range(1000):  # up to 10 s
        if server.started:
            return
        if not thread.is_alive():
            raise RuntimeError("the sandbox server failed to start")
        thread.join(0.01)
    raise RuntimeError("the sandbox server did not start within 10 s")


def _stop(app: SandboxApp, server: uvicorn.Server, thread: threading.Thread) -> None:
    app.state.broker.close()  # SSE streams would otherwise hold the shutdown open
    server.should_exit = True
    thread.join(10)
