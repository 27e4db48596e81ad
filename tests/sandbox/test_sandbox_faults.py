"""Fault injection and the `/_sandbox` controls, over real HTTP."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from sandbox_helpers import REF, enqueue, make_client, wait_terminal

from klingspec.sandbox import FAULT_HEADER, FaultRule
from klingspec.sandbox.faults import Fault, FaultBook, FaultSyntaxError, parse

BODY = {"model": REF, "prompt": "a"}


def fault(value: str) -> dict[str, str]:
    return {FAULT_HEADER: value}


def test_429_carries_retry_after(client: httpx.Client) -> None:
    response = client.post("/ai/queue", json=BODY, headers=fault("status=429, retry-after=3"))
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"
    assert response.json() == {"error": {"message": "Rate limit exceeded"}}
    default = client.get("/ai/queue", headers=fault("429"))
    assert default.headers["Retry-After"] == "1"


@pytest.mark.parametrize("status,kind", [(500, "unknown_error"), (503, "service_unavailable")])
def test_server_errors(client: httpx.Client, status: int, kind: str) -> None:
    response = client.get("/ai/queue", headers=fault(str(status)))
    assert response.status_code == status
    assert response.json()["status_message"] == kind


def test_a_faulted_enqueue_creates_nothing(client: httpx.Client) -> None:
    client.post("/ai/queue", json=BODY, headers=fault("503"))
    assert client.get("/ai/queue").json()["count"] == 0


def test_latency_delays_the_answer(client: httpx.Client) -> None:
    started = time.monotonic()
    assert client.get("/ai/models", headers=fault("latency=0.2")).status_code == 200
    assert time.monotonic() - started >= 0.2


def test_a_dropped_enqueue_still_creates_the_job_exactly_once(client: httpx.Client) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/ai/queue", json=BODY, headers=fault("drop"))
    listing = client.get("/ai/queue").json()
    assert listing["count"] == 1
    job = wait_terminal(client, listing["generations"][0]["generation_id"])
    assert job["status"] == "succeeded"


def test_a_dropped_read_gets_no_response(client: httpx.Client) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/ai/queue", headers=fault("drop"))
    assert client.get("/ai/queue").status_code == 200  # the server carries on


def test_fail_makes_the_generation_fail_with_the_message(client: httpx.Client) -> None:
    response = client.post("/ai/queue", json=BODY, headers=fault("fail=Insufficient credits"))
    job = wait_terminal(client, response.json()["generations"][0]["generation_id"])
    assert (job["status"], job["error_message"]) == ("failed", "Insufficient credits")


def test_fail_first_fails_only_the_first_generations_of_an_enqueue(client: httpx.Client) -> None:
    response = client.post(
        "/ai/queue", json=dict(BODY, num_generations=4), headers=fault("fail=Out of GPUs, fail-first=2")
    )
    jobs = [wait_terminal(client, g["generation_id"]) for g in response.json()["generations"]]
    assert [(j["status"], j["error_message"]) for j in jobs] == [
        ("failed", "Out of GPUs"),
        ("failed", "Out of GPUs"),
        ("succeeded", None),
        ("succeeded", None),
    ]
    assert client.get("/ai/queue", params={"status": "failed"}).json()["count"] == 2
    alone = client.post("/ai/queue", json=dict(BODY, num_generations=2), headers=fault("fail-first=1"))
    first, second = (wait_terminal(client, g["generation_id"]) for g in alone.json()["generations"])
    assert (first["status"], first["error_message"]) == ("failed", "Injected fault: generation failed")
    assert second["status"] == "succeeded"


def _video_url(client: httpx.Client) -> str:
    body = client.post("/ai/videos/generate", json=BODY).json()
    return body["videos"][0]["url"]


def test_a_truncated_download_is_detectable(client: httpx.Client) -> None:
    url = _video_url(client)
    received = bytearray()
    with pytest.raises(httpx.RemoteProtocolError):
        with httpx.stream("GET", url, headers=fault("truncate=100")) as response:
            announced = int(response.headers["content-length"])
            for chunk in response.iter_bytes():
                received += chunk
    assert len(received) == 100 < announced


def test_a_slow_download_is_throttled(client: httpx.Client) -> None:
    url = _video_url(client)
    size = len(httpx.get(url).content)
    started = time.monotonic()
    response = httpx.get(url, headers=fault(f"slow={size * 4}"))  # about a quarter second
    assert response.content and len(response.content) == size
    assert time.monotonic() - started >= 0.2


def test_a_large_padded_download_streams_in_chunks(sandbox_with: Any) -> None:
    with sandbox_with(file_size=8 * 1024 * 1024) as url, make_client(url) as c:
        video = _video_url(c)
        total, chunks = 0, 0
        with httpx.stream("GET", video) as response:
            assert response.headers["content-length"] == str(8 * 1024 * 1024)
            for chunk in response.iter_raw():
                total, chunks = total + len(chunk), chunks + 1
        assert total == 8 * 1024 * 1024 and chunks > 1


def test_config_rules_fire_the_given_number_of_times(sandbox_with: Any) -> None:
    rule = FaultRule("status=503, retry-after=0", path="/api/ai/queue", method="POST", times=2)
    with sandbox_with(faults=(rule,)) as url, make_client(url) as c:
        statuses = [c.post("/ai/queue", json=BODY).status_code for _ in range(3)]
        assert statuses == [503, 503, 200]
        assert c.get("/ai/queue").status_code == 200  # other routes untouched


def test_rules_can_be_added_at_run_time(sandbox_with: Any) -> None:
    with sandbox_with() as url, make_client(url) as c:
        added = c.post("/_sandbox/faults", json={"fault": "500", "path": "/api/ai/models", "times": 1})
        assert added.status_code == 200
        assert [c.get("/ai/models").status_code for _ in range(2)] == [500, 200]
        assert c.post("/_sandbox/faults", json={"fault": "bogus"}).status_code == 400


def test_a_bad_fault_header_is_a_400_that_explains(client: httpx.Client) -> None:
    response = client.get("/ai/models", headers=fault("explode"))
    assert response.status_code == 400
    assert "expected latency=SECONDS" in response.json()["error"]["detail"]


def test_stats_count_requests_per_route_and_reset_clears_them(sandbox_with: Any) -> None:
    with sandbox_with() as url, make_client(url) as c:
        (gid,) = enqueue(c, prompt="a")
        c.get(f"/ai/queue/{gid}")
        c.get("/ai/models")
        httpx.get(url + "/ai/models")  # unauthenticated still counts
        with pytest.raises(httpx.RemoteProtocolError):
            c.post("/ai/queue", json=BODY, headers=fault("drop"))
        stats = c.get("/_sandbox/stats").json()
        assert stats["requests"] == {
            "GET /api/ai/models": 2,
            "GET /api/ai/queue/{generation_id}": 1,
            "POST /api/ai/queue": 2,
        }
        assert stats["total"] == 5 and stats["dropped"] == 1
        assert sum(stats["jobs"].values()) == 2
        assert c.post("/_sandbox/reset").json() == {"status": "success"}
        stats = c.get("/_sandbox/stats").json()
        assert stats["total"] == 0 and sum(stats["jobs"].values()) == 0


def test_fault_syntax() -> None:
    assert parse("latency=0.5; 503; retry-after=2") == Fault(latency=0.5, status=503, retry_after=2)
    assert parse("drop, slow") == Fault(drop=True, slow=0)
    assert parse("truncate=10, fail=Insufficient credits") == Fault(truncate=10, fail="Insufficient credits")
    assert parse("fail=No, fail-first=3") == Fault(fail="No", fail_first=3)
    assert Fault(status=500, latency=1).merge(Fault(status=429)) == Fault(status=429, latency=1)
    for bad in ("status=200", "latency=-1", "truncate", "drop=1", "nonsense", "fail-first", "fail-first=-1"):
        with pytest.raises(FaultSyntaxError):
            parse(bad)


def test_rule_paths_match_exactly_by_prefix_or_all() -> None:
    book = FaultBook((FaultRule("500", path="/api/files/*"), FaultRule("latency=1", times=1)))
    assert book.take("GET", "/api/files/x.mp4") == Fault(status=500, latency=1)
    assert book.take("GET", "/api/files/y.mp4") == Fault(status=500)  # latency used up
    assert book.take("GET", "/api/ai/queue") == Fault()
