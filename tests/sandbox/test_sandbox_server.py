"""Starting and stopping: every sandbox started is stopped, even with streams still open."""

from __future__ import annotations

import threading

import httpx
from sandbox_helpers import FAST, make_client

from klingspec.sandbox import create_app, running_sandbox


def _sandbox_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "klingspec-sandbox"]


def test_the_base_url_is_the_api_root_on_loopback() -> None:
    before = len(_sandbox_threads())
    with running_sandbox(FAST) as url:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/api")
        with make_client(url) as c:
            assert c.get("/ai/models").status_code == 200
        assert len(_sandbox_threads()) == before + 1
    assert len(_sandbox_threads()) == before
    try:
        httpx.get(url + "/_sandbox/stats", timeout=1.0)
    except httpx.ConnectError:
        pass
    else:
        raise AssertionError("the sandbox still answers after the with block")


def test_stopping_ends_open_event_streams_promptly() -> None:
    before = len(_sandbox_threads())
    sandbox = running_sandbox(FAST)
    url = sandbox.__enter__()
    with make_client(url) as c, c.stream("GET", "/events") as stream:
        sandbox.__exit__(None, None, None)  # returns only once the server thread is joined
        assert list(stream.iter_lines()) == []  # the stream ended cleanly
    assert len(_sandbox_threads()) == before


def test_each_app_has_its_own_state() -> None:
    one, two = create_app(FAST), create_app(FAST)
    assert one.state is not two.state
