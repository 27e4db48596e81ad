"""client.py: the real client against the real sandbox (faults by config or header)."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from email.utils import formatdate

import httpx
import pytest
from run_helpers import MODEL, Sleeps, new_key, oxen, stats

from klingspec.run.client import ApiError, HostBearer, RetryPolicy, SubmitOutcomeUnknown, error_message
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
        assert size == 3_000_000 == os.path.getsize(dest) and not os.path.exists(dest + ".part")
        with pytest.raises(ApiError) as caught:
            client.download(url + "/files/nope.mp4", str(tmp_path / "w.mp4"))
        assert caught.value.status == 404 and os.listdir(tmp_path) != ["v.mp4", "w.mp4.part"]


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
