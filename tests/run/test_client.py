"""client.py: the real client against the real sandbox (faults by config or header)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from email.utils import formatdate
from typing import Any

import httpx
import pytest
from run_helpers import FAST_RETRY, MODEL, Sleeps, new_key, oxen, stats

from klingspec.run.client import ApiError, HostBearer, OxenClient, RetryPolicy, SubmitOutcomeUnknown, error_message
from klingspec.sandbox import FAULT_HEADER, FaultRule


def _response(status: int, body) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.Response(status, content=content, request=httpx.Request("GET", "https://x/api"))


@pytest.mark.parametrize(
    "body, expected",
    [
        (
            {
                "error": {"type": "invalid_params", "title": "Invalid parameters supplied", "detail": "Specific error"},
                "status": "error",
                "status_message": "invalid_params",
            },
            "Specific error",
        ),  # format 1
        (
            {
                "error": {"type": "resource_not_found", "title": "The requested resource could not be found"},
                "status": "error",
                "status_message": "resource_not_found",
            },
            "The requested resource could not be found",
        ),
        ({"error": {"message": "Model not found: bad-model-name"}}, "Model not found: bad-model-name"),  # format 2
        ({"error": "plain"}, "plain"),
        ({"error_message": "Insufficient credits"}, "Insufficient credits"),
        (b"upstream exploded", "upstream exploded"),
    ],
)
def test_error_message_reads_both_documented_shapes(body, expected):
    assert error_message(_response(400, body)) == expected


def test_api_errors_carry_the_api_message_and_the_request(base_url):
    with oxen(base_url, new_key()) as client, pytest.raises(ApiError) as caught:
        client.generation("no-such-generation")
    assert caught.value.status == 404 and caught.value.generation_id == "no-such-generation"
    assert str(caught.value) == (
        "GET /ai/queue/no-such-generation (404): The requested resource could not "
        "be found [generation no-such-generation]"
    )
    with oxen(base_url, new_key()) as client, pytest.raises(ApiError) as caught:
        client.enqueue({"model": "bad-model-name", "prompt": "x"}, 1)
    assert "Model not found: bad-model-name" in str(caught.value)


def test_key_goes_only_to_the_api_host(base_url):
    key = new_key()
    with oxen(base_url, key) as client:
        [gid] = client.enqueue({"model": MODEL, "prompt": "x", "duration": 3}, 1)
        assert client.http.get(base_url + f"/ai/queue/{gid}").request.headers["Authorization"] == f"Bearer {key}"
        other = base_url.replace("127.0.0.1", "localhost")  # same server, another origin
        sent = client.http.get(other + "/_sandbox/stats").request.headers
        assert "Authorization" not in sent
    assert key not in repr(HostBearer(key, base_url))


def test_redirect_to_another_host_drops_the_key(base_url):
    key = new_key()
    storage = base_url.replace("127.0.0.1", "localhost")  # the sandbox under another origin
    network = httpx.HTTPTransport()

    def route(request: httpx.Request) -> httpx.Response:
        if request.url.host == "api.test":  # the API redirects a result to a storage host
            return httpx.Response(302, headers={"Location": storage + "/_sandbox/stats"})
        return network.handle_request(request)

    seen = []
    with oxen(
        "http://api.test/api",
        key,
        transport=httpx.MockTransport(route),
        event_hooks={"request": [lambda r: seen.append(dict(r.headers))]},
    ) as client:
        assert client.http.get("http://api.test/api/files/x.mp4").status_code == 200
    assert seen[0].get("authorization") == f"Bearer {key}"
    assert "authorization" not in seen[1]


def test_read_retries_429_honouring_retry_after(sandbox_with):
    sleeps = Sleeps()
    rule = FaultRule("status=429, retry-after=3", path="/api/ai/queue", method="GET", times=2)
    with sandbox_with(faults=(rule,)) as url, oxen(url, new_key(), sleep=sleeps) as client:
        assert client.generations() == []
        assert sleeps.delays == [3.0, 3.0]
        assert stats(url)["requests"]["GET /api/ai/queue"] == 3


def test_retry_after_as_an_http_date():
    policy = RetryPolicy(clock=lambda: 1_800_000_000.0)
    assert policy.delay(0, formatdate(1_800_000_010, usegmt=True)) == 10.0
    assert policy.delay(0, "5") == 5.0
    assert policy.delay(0, "9999") == policy.max_retry_after
    assert 0 <= policy.delay(3, "garbage") <= policy.base * 8


@pytest.mark.parametrize("status", [500, 503])
def test_reads_retry_5xx_with_backoff_then_give_up(sandbox_with, status):
    sleeps = Sleeps()
    rule = FaultRule(f"status={status}", path="/api/ai/queue", method="GET")
    with sandbox_with(faults=(rule,)) as url, oxen(url, new_key(), sleep=sleeps) as client:
        with pytest.raises(ApiError) as caught:
            client.generations()
        assert caught.value.status == status and "Injected fault" in caught.value.message
        assert stats(url)["requests"]["GET /api/ai/queue"] == 4
    assert len(sleeps.delays) == 3 and all(0 <= d <= 0.05 for d in sleeps.delays)


def test_submit_is_never_repeated_when_its_outcome_is_unknown(sandbox_with):
    for fault in ("drop", "status=500"):
        rule = FaultRule(fault, path="/api/ai/queue", method="POST", times=1)
        with sandbox_with(faults=(rule,)) as url, oxen(url, new_key()) as client:
            with pytest.raises(SubmitOutcomeUnknown):
                client.enqueue({"model": MODEL, "prompt": "x"}, 1)
            assert stats(url)["requests"]["POST /api/ai/queue"] == 1


def test_submit_503_is_retried(sandbox_with):
    sleeps = Sleeps()
    rule = FaultRule("status=503, retry-after=2", path="/api/ai/queue", method="POST", times=1)
    with sandbox_with(faults=(rule,)) as url, oxen(url, new_key(), sleep=sleeps) as client:
        assert len(client.enqueue({"model": MODEL, "prompt": "x"}, 2)) == 2
        assert sleeps.delays == [2.0]


def test_the_key_is_scrubbed_from_an_echoed_error(sandbox_with):
    key = new_key()

    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": {"detail": f"bad header {request.headers['Authorization']}"}})

    with oxen("http://api.test/api", key, transport=httpx.MockTransport(echo)) as client:
        with pytest.raises(ApiError) as caught:
            client.generation("x")
    assert key not in str(caught.value) and "<redacted>" in str(caught.value)


def test_events_arrive_for_jobs_enqueued_after_subscribing(base_url):
    with oxen(base_url, new_key()) as client:
        opened = threading.Event()
        got: list = []

        def listen():
            for name, data in client.events(on_open=opened.set):
                got.append((name, data))
                if len(got) == 2:
                    return

        thread = threading.Thread(target=listen)
        thread.start()
        assert opened.wait(5)
        ids = client.enqueue({"model": MODEL, "prompt": "x", "duration": 3}, 2)
        thread.join(5)
        assert {d["generation_id"] for _, d in got} == set(ids)
        assert all(name == "media_generation_completed" and d["status"] == "succeeded" for name, d in got)


def test_close_events_ends_a_blocked_reader_promptly(base_url):
    with oxen(base_url, new_key()) as client:
        opened, ended = threading.Event(), threading.Event()

        def listen():
            for _ in client.events(on_open=opened.set):
                pass
            ended.set()

        threading.Thread(target=listen, daemon=True).start()
        assert opened.wait(5)
        client.close_events()
        assert ended.wait(5)  # without the close, the stream would idle until the next keep-alive (15 s)


def test_download_streams_verifies_and_renames(tmp_path, sandbox_with):
    with sandbox_with(file_size=3_000_000) as url, oxen(url, new_key()) as client:
        [gid] = client.enqueue({"model": MODEL, "prompt": "x", "duration": 3}, 1)
        while (item := client.generation(gid))["status"] != "succeeded":
            time.sleep(0.02)
        dest = str(tmp_path / "v.mp4")
        _sha, size = client.download(item["result_url"], dest)
        assert size == 3_000_000 == os.path.getsize(dest) and os.listdir(tmp_path) == ["v.mp4"]
        with pytest.raises(ApiError) as caught:
            client.download(url + "/files/nope.mp4", str(tmp_path / "w.mp4"))
        assert caught.value.status == 404 and os.listdir(tmp_path) == ["v.mp4"]  # no part file left


def test_download_stops_when_asked(tmp_path, sandbox_with):
    from klingspec.run.client import Stopped

    stop = threading.Event()
    with (
        sandbox_with(file_size=1_000_000) as url,
        oxen(url, new_key(), headers={FAULT_HEADER: "slow=200000"}) as client,
    ):
        [gid] = client.enqueue({"model": MODEL, "prompt": "x", "duration": 3}, 1)
        while (item := client.generation(gid))["status"] != "succeeded":
            time.sleep(0.02)
        threading.Timer(0.1, stop.set).start()
        with pytest.raises(Stopped):
            client.download(item["result_url"], str(tmp_path / "v.mp4"), stop)
    assert os.listdir(tmp_path) == []


def test_sync_b64_answer_is_streamed_to_a_file(tmp_path, base_url):
    from klingspec.run.media import decode_b64_videos

    with oxen(base_url, new_key()) as client:
        answer = str(tmp_path / "answer.json")
        client.generate_to_file({"model": MODEL, "prompt": "x", "duration": 3, "response_format": "b64_json"}, answer)
        with open(answer) as handle:
            expected = base64.b64decode(json.load(handle)["videos"][0]["b64_json"])
        [(_sha, size)] = decode_b64_videos(answer, [str(tmp_path / "v.mp4")])
        assert (tmp_path / "v.mp4").read_bytes() == expected and size == len(expected)


def test_sync_retries_429_and_503_but_never_an_unknown_outcome(tmp_path, sandbox_with):
    sleeps = Sleeps()
    rules = (
        FaultRule("status=429, retry-after=2", path="/api/ai/videos/generate", method="POST", times=1),
        FaultRule("status=503", path="/api/ai/videos/generate", method="POST", times=1),
    )
    body = {"model": MODEL, "prompt": "x", "duration": 3}
    with sandbox_with(faults=rules) as url, oxen(url, new_key(), sleep=sleeps) as client:
        client.generate_to_file(body, str(tmp_path / "a.json"))
        assert json.loads((tmp_path / "a.json").read_text())["videos"][0]["url"]
        assert stats(url)["requests"]["POST /api/ai/videos/generate"] == 2  # one rule per request: merged
    for fault in ("drop", "status=500"):
        rule = FaultRule(fault, path="/api/ai/videos/generate", method="POST", times=1)
        with sandbox_with(faults=(rule,)) as url, oxen(url, new_key()) as client:
            with pytest.raises(SubmitOutcomeUnknown):
                client.generate_to_file(body, str(tmp_path / "b.json"))
            assert stats(url)["requests"]["POST /api/ai/videos/generate"] == 1


# -- the retry policy, fault by fault (httpx.MockTransport: the API as a function) ------------

API = "http://api.test/api"


def _mocked(
    handler: Callable[[httpx.Request], httpx.Response], sleeps: Sleeps, clock: Callable[[], float] | None = None
) -> OxenClient:
    """A real client whose API is `handler`; FAST_RETRY (4 attempts), optionally a fixed clock."""
    client = oxen(API, new_key(), sleep=sleeps, transport=httpx.MockTransport(handler))
    if clock is not None:
        client.retry = replace(FAST_RETRY, clock=clock)
    return client


class _Script:
    """The API's answers in order (the last one repeats, each time afresh); an exception in
    the list is raised as the transport's failure. Records every request it sees."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.seen: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(f"{request.method} {request.url.path}")
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer.status_code, headers=answer.headers, stream=answer.stream)  # a fresh copy


def _answer(status: int, body: Any = None, retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after else {}
    return httpx.Response(status, json=body if body is not None else {}, headers=headers)


_QUEUED = _answer(200, {"generations": [{"generation_id": "g1"}]})
_SUBMITS = [
    pytest.param(lambda c, tmp: c.enqueue({"model": MODEL, "prompt": "x"}, 1), "/api/ai/queue", id="enqueue"),
    pytest.param(
        lambda c, tmp: c.generate_to_file({"model": MODEL, "prompt": "x"}, str(tmp / "a.json")),
        "/api/ai/videos/generate",
        id="generate_to_file",
    ),
]


@pytest.mark.parametrize("submit, route", _SUBMITS)
@pytest.mark.parametrize(
    "error",
    [httpx.ReadTimeout("t"), httpx.WriteTimeout("t"), httpx.ReadError("r"), httpx.RemoteProtocolError("p")],
    ids=lambda e: type(e).__name__,
)
def test_a_submit_that_fails_after_sending_is_attempted_exactly_once(tmp_path, submit, route, error):
    sleeps = Sleeps()
    api = _Script(error, _QUEUED)
    with _mocked(api, sleeps) as client, pytest.raises(SubmitOutcomeUnknown) as caught:
        submit(client, tmp_path)
    assert api.seen == [f"POST {route}"] and sleeps.delays == []
    assert str(caught.value) == (
        f"POST {route.removeprefix('/api')}: the request was sent but no answer came back ({type(error).__name__})"
    )


@pytest.mark.parametrize("submit, route", _SUBMITS)
@pytest.mark.parametrize(
    "error",
    [httpx.ConnectError("c"), httpx.ConnectTimeout("c"), httpx.PoolTimeout("p")],
    ids=lambda e: type(e).__name__,
)
def test_a_submit_that_never_connects_is_retried_then_reported(tmp_path, submit, route, error):
    sleeps = Sleeps()
    api = _Script(error)
    with _mocked(api, sleeps) as client, pytest.raises(ApiError) as caught:
        submit(client, tmp_path)
    assert type(caught.value) is ApiError  # it surely did not arrive: no job can exist
    assert str(caught.value) == f"POST {route.removeprefix('/api')}: cannot reach the API: {type(error).__name__}"
    assert api.seen == [f"POST {route}"] * 4
    assert len(sleeps.delays) == 3 and all(0 <= d <= 0.05 for d in sleeps.delays)


def test_a_submit_that_connects_on_the_second_try_goes_through(tmp_path):
    sleeps = Sleeps()
    api = _Script(httpx.ConnectError("c"), _QUEUED)
    with _mocked(api, sleeps) as client:
        assert client.enqueue({"model": MODEL, "prompt": "x"}, 1) == ["g1"]
    assert api.seen == ["POST /api/ai/queue"] * 2 and len(sleeps.delays) == 1


@pytest.mark.parametrize(
    "status, kind, words",
    [
        (429, ApiError, "POST /ai/queue (429): slow down"),
        (503, SubmitOutcomeUnknown, "POST /ai/queue (503): the API failed after receiving the request: slow down"),
    ],
)
def test_a_submit_refused_every_time_reports_the_last_refusal(status, kind, words):
    sleeps = Sleeps()
    api = _Script(_answer(status, {"error": "slow down"}, retry_after="1"))
    with _mocked(api, sleeps) as client, pytest.raises(ApiError) as caught:
        client.enqueue({"model": MODEL, "prompt": "x"}, 1)
    assert type(caught.value) is kind and str(caught.value) == words
    assert api.seen == ["POST /api/ai/queue"] * 4 and sleeps.delays == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("status, kind", [(429, ApiError), (503, SubmitOutcomeUnknown)])
def test_the_sync_answer_refused_every_time_reports_the_last_refusal(tmp_path, status, kind):
    sleeps = Sleeps()
    api = _Script(_answer(status, {"error": "slow down"}, retry_after="2"))
    with _mocked(api, sleeps) as client, pytest.raises(ApiError) as caught:
        client.generate_to_file({"model": MODEL, "prompt": "x"}, str(tmp_path / "a.json"))
    assert type(caught.value) is kind and str(caught.value) == f"POST /ai/videos/generate ({status}): slow down"
    assert api.seen == ["POST /api/ai/videos/generate"] * 4 and sleeps.delays == [2.0, 2.0, 2.0]


@pytest.mark.parametrize("submit, route", _SUBMITS)
@pytest.mark.parametrize(
    "status, kind", [(400, ApiError), (402, ApiError), (500, SubmitOutcomeUnknown), (502, SubmitOutcomeUnknown)]
)
def test_a_submit_answered_with_another_error_is_not_repeated(tmp_path, submit, route, status, kind):
    sleeps = Sleeps()
    api = _Script(_answer(status, {"error": "no"}), _QUEUED)
    with _mocked(api, sleeps) as client, pytest.raises(ApiError) as caught:
        submit(client, tmp_path)
    assert type(caught.value) is kind and caught.value.status == status
    assert api.seen == [f"POST {route}"] and sleeps.delays == []


def test_retry_after_as_an_http_date_is_honoured_through_the_injected_clock():
    now = 1_800_000_000.0
    sleeps = Sleeps()
    api = _Script(
        _answer(503, retry_after=formatdate(now + 7, usegmt=True)),
        _answer(429, retry_after=formatdate(now + 10_000, usegmt=True)),  # capped by max_retry_after
        _answer(429, retry_after=formatdate(now - 60, usegmt=True)),  # already past: no wait
        _answer(200, {"generations": [{"generation_id": "g1"}]}),
    )
    with _mocked(api, sleeps, clock=lambda: now) as client:
        assert client.generations() == [{"generation_id": "g1"}]
    assert sleeps.delays == [7.0, FAST_RETRY.max_retry_after, 0.0]
    assert api.seen == ["GET /api/ai/queue"] * 4


def test_reads_retry_network_errors_then_report_them():
    sleeps = Sleeps()
    api = _Script(httpx.ReadError("r"), _answer(200, {"id": "m"}))
    with _mocked(api, sleeps) as client:
        assert client.model("m") == {"id": "m"}
    assert api.seen == ["GET /api/ai/models/m"] * 2 and len(sleeps.delays) == 1

    sleeps = Sleeps()
    api = _Script(httpx.ConnectError("c"))
    with _mocked(api, sleeps) as client, pytest.raises(ApiError) as caught:
        client.cancel("g1")
    assert str(caught.value) == "DELETE /ai/queue/g1: network error: ConnectError"
    assert api.seen == ["DELETE /api/ai/queue/g1"] * 4
    assert len(sleeps.delays) == 3 and all(0 <= d <= 0.05 for d in sleeps.delays)


@pytest.mark.parametrize("status", [400, 401, 404])
def test_reads_answered_with_a_client_error_are_not_repeated(status):
    sleeps = Sleeps()
    api = _Script(_answer(status, {"error": "nope"}))
    with _mocked(api, sleeps) as client, pytest.raises(ApiError) as caught:
        client.generation("g1")
    assert str(caught.value) == f"GET /ai/queue/g1 ({status}): nope [generation g1]"
    assert api.seen == ["GET /api/ai/queue/g1"] and sleeps.delays == []


@pytest.mark.parametrize("body", [["g1"], "done", 3])
def test_an_answer_that_is_not_a_json_object_is_an_api_error(body):
    listing = _answer(200, {"generations": [{"generation_id": "g1"}, "g2", None]})
    api = _Script(*[_answer(200, body)] * 3, listing)
    with _mocked(api, Sleeps()) as client:
        for call in (lambda: client.generation("g1"), lambda: client.cancel("g1"), lambda: client.model("m")):
            with pytest.raises(ApiError, match="not an object"):
                call()
        assert client.generations() == [{"generation_id": "g1"}]  # items that are not objects are left out


def _video(size: int, sent: int | None = None) -> httpx.Response:
    """A video answer claiming `size` bytes and sending `sent` of them (an MP4: `ftyp` first)."""
    body = (b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * (size // 256 + 1))[:size]
    return httpx.Response(200, headers={"Content-Length": str(size)}, content=body[: size if sent is None else sent])


def test_a_cut_short_download_starts_again_from_scratch(tmp_path):
    sleeps = Sleeps()
    whole = _video(5000)
    api = _Script(_video(5000, 100), _answer(503, retry_after="4"), httpx.ConnectError("c"), whole)
    dest = tmp_path / "v.mp4"
    with _mocked(api, sleeps) as client:
        sha, size = client.download("http://storage.test/files/v.mp4", str(dest))
    assert (
        dest.read_bytes() == whole.content
        and size == 5000
        and sha == "sha256:" + hashlib.sha256(whole.content).hexdigest()
    )
    assert api.seen == ["GET /files/v.mp4"] * 4 and len(sleeps.delays) == 3 and sleeps.delays[1] == 4.0
    assert os.listdir(tmp_path) == ["v.mp4"]


@pytest.mark.parametrize(
    "answer", [_video(5000, 100), _video(0), httpx.ReadError("r")], ids=["cut-short", "empty", "read-error"]
)
def test_a_download_failing_every_time_gives_up_and_leaves_nothing(tmp_path, answer):
    sleeps = Sleeps()
    api = _Script(answer)
    with _mocked(api, sleeps) as client, pytest.raises(ApiError) as caught:
        client.download("http://storage.test/files/v.mp4", str(tmp_path / "v.mp4"))
    assert str(caught.value) == "GET download: the download kept failing (cut short or unreachable)"
    assert api.seen == ["GET /files/v.mp4"] * 4 and len(sleeps.delays) == 3
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("status, attempts", [(404, 1), (403, 1), (503, 4)])
def test_a_download_refused_reports_the_status(tmp_path, status, attempts):
    sleeps = Sleeps()
    api = _Script(_answer(status, {"error": "gone"}))
    with _mocked(api, sleeps) as client, pytest.raises(ApiError) as caught:
        client.download("http://storage.test/files/v.mp4", str(tmp_path / "v.mp4"))
    assert str(caught.value) == f"GET download ({status}): gone"
    assert len(api.seen) == attempts and len(sleeps.delays) == attempts - 1
    assert os.listdir(tmp_path) == []


# -- server-sent events through httpx-sse ----------------------------------------------------------

_SSE_BODY = (
    b": keep-alive\n\n"
    b'event: media_generation_completed\ndata: {"generation_id": "a",\ndata:  "status": "succeeded"}\n\n'
    b"data: not json\n\n"
    b": keep-alive\r\n\r\n"
    b'data: {"n": 1, "text": "caf\xc3\xa9"}\r\n\r\n'
    b"event: other\ndata:[1, 2]\n\n"
    b"event: no-data\n\n"
    b'id: 7\nretry: 100\nevent: media_generation_completed\ndata: {"n": 2}\n\n'
    b'data: {"never": "dispatched"}\n'
)
_SSE_EVENTS = [
    ("media_generation_completed", {"generation_id": "a", "status": "succeeded"}),
    ("message", {"n": 1, "text": "café"}),
    ("other", [1, 2]),
    ("media_generation_completed", {"n": 2}),
]


class _Chunks(httpx.SyncByteStream):
    """A body sent in the given chunks, then (optionally) broken off."""

    def __init__(self, chunks: list[bytes], error: Exception | None = None) -> None:
        self.chunks, self.error = chunks, error

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        if self.error is not None:
            raise self.error


def _event_stream(
    chunks: list[bytes], error: Exception | None = None, content_type: str = "text/event-stream; charset=utf-8"
) -> httpx.Response:
    return httpx.Response(200, headers={"Content-Type": content_type}, stream=_Chunks(chunks, error))


@pytest.mark.parametrize("size", [1, 7, len(_SSE_BODY)], ids=["byte-by-byte", "7-bytes", "whole"])
def test_events_skip_comments_join_data_lines_and_skip_what_is_not_json(size):
    chunks = [_SSE_BODY[i : i + size] for i in range(0, len(_SSE_BODY), size)]
    seen: list = []
    api = _Script(_event_stream(chunks))
    with _mocked(lambda r: seen.append(r.headers["Accept"]) or api(r), Sleeps()) as client:
        opened = []
        got = list(client.events(on_open=lambda: opened.append(len(opened))))
        assert got == _SSE_EVENTS and opened == [0] and seen == ["text/event-stream"]
        assert client._streams == set()  # no longer registered for `close_events`


def test_events_raise_on_an_error_status_before_opening():
    api = _Script(_answer(401, {"error": {"title": "You must be authenticated"}}))
    opened = []
    with _mocked(api, Sleeps()) as client, pytest.raises(ApiError) as caught:
        list(client.events(on_open=lambda: opened.append(1)))
    assert str(caught.value) == "GET /events (401): You must be authenticated" and opened == []
    assert api.seen == ["GET /api/events"]  # an event stream is never retried by the client


def test_events_raise_when_the_answer_is_not_an_event_stream():
    api = _Script(_event_stream([b'{"hello": 1}'], content_type="application/json"))
    with _mocked(api, Sleeps()) as client, pytest.raises(ApiError) as caught:
        list(client.events())
    assert str(caught.value) == "GET /events (200): the API answered with something that is not an event stream"


def test_a_broken_event_stream_raises_after_what_arrived():
    api = _Script(_event_stream([b'data: {"n": 1}\n\n', b'data: {"n"'], httpx.ReadError("reset")))
    with _mocked(api, Sleeps()) as client:
        got = []
        with pytest.raises(httpx.ReadError):
            for item in client.events():
                got.append(item)
        assert got == [("message", {"n": 1})] and client._streams == set()
