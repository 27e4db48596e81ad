"""The emulated Oxen API over real HTTP: auth, models, sync, queue, cancel, events."""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any

import httpx
import pytest
from sandbox_helpers import OMNI, REF, enqueue, make_client, wait_terminal

from klingspec.sandbox.validation import UPSTREAM_PREFIX

WRAP = UPSTREAM_PREFIX


# --- auth ----------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"}])
@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/ai/models"),
        ("POST", "/ai/queue"),
        ("GET", "/ai/queue"),
        ("GET", "/events"),
        ("POST", "/ai/videos/generate"),
    ],
)
def test_every_api_route_needs_a_bearer_token(base_url: str, headers: dict[str, str], method: str, path: str) -> None:
    response = httpx.request(method, base_url + path, headers=headers, json={"model": REF})
    assert response.status_code == 401
    assert response.json() == {
        "error": {"type": "unauthenticated", "title": "You must be authenticated to access this resource."},
        "status": "error",
        "status_message": "unauthenticated",
    }


def test_a_pinned_api_key_rejects_other_keys(sandbox_with: Any) -> None:
    with sandbox_with(api_key="secret") as url:
        with make_client(url, token="other") as wrong, make_client(url, token="secret") as right:
            assert wrong.get("/ai/models").status_code == 401
            assert right.get("/ai/models").status_code == 200


# --- models --------------------------------------------------------------------------------


def test_models_are_listed_with_their_pricing(client: httpx.Client) -> None:
    body = client.get("/ai/models").json()
    assert body["object"] == "list"
    by_id = {m["id"]: m for m in body["data"]}
    assert len(by_id) == 7 and {REF, OMNI} <= set(by_id)
    # No Oxen source publishes an audio price (fact sheet 9): no cost_per_second_with_audio.
    assert by_id[REF]["pricing"] == {"method": "per_video_output_second", "cost_per_second": 0.224}
    assert by_id[OMNI]["pricing"]["cost_per_second"] is None  # not published


def test_one_model_and_an_unknown_model(client: httpx.Client) -> None:
    model = client.get(f"/ai/models/{REF}").json()
    assert model["id"] == REF and model["endpoint"] == "/videos/generate"
    missing = client.get("/ai/models/bad-model-name")
    assert missing.status_code == 404
    assert missing.json() == {"error": {"message": "Model not found: bad-model-name"}}


def test_model_search(client: httpx.Client) -> None:
    found = client.get("/ai/models/search", params={"search": "omni"}).json()["data"]
    assert [m["id"] for m in found] == [OMNI]


# --- sync generation -----------------------------------------------------------------------


@pytest.mark.parametrize("model", [REF])  # omni takes no multi_prompt (fact sheet 9)
def test_sync_generate_returns_a_downloadable_mp4_of_the_right_length(client: httpx.Client, model: str) -> None:
    response = client.post(
        "/ai/videos/generate",
        json={"model": model, "multi_prompt": [{"prompt": "a", "duration": 4}, {"prompt": "b", "duration": 3}]},
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"created", "model", "videos"} and body["model"] == model
    (video,) = body["videos"]
    assert video["url"].startswith(str(client.base_url))
    download = httpx.get(video["url"])  # a presigned-style URL: no bearer needed
    assert download.headers["content-type"] == "video/mp4"
    assert _mvhd_seconds(download.content) == 7


def test_sync_generate_b64_json(client: httpx.Client) -> None:
    body = client.post(
        "/ai/videos/generate", json={"model": REF, "prompt": "a puppy", "response_format": "b64_json"}
    ).json()
    data = base64.b64decode(body["videos"][0]["b64_json"])
    assert data[4:8] == b"ftyp" and _mvhd_seconds(data) == 5


DURATIONS = "Input should be '1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12', '13', '14' or '15'"


@pytest.mark.parametrize(
    "body,message",
    [
        (
            {"prompt": "a", "multi_prompt": [{"prompt": "b"}]},
            "Value error, Cannot provide both 'prompt' and 'multi_prompt'.",
        ),
        ({}, "Value error, Either 'prompt' or 'multi_prompt' must be provided."),
        ({"multi_prompt": []}, "Value error, Either 'prompt' or 'multi_prompt' must be provided."),
        ({"multi_prompt": [{"duration": 5}]}, "Field required"),
        ({"multi_prompt": [{"prompt": "a", "duration": 16}]}, DURATIONS),
        (
            {"prompt": "a", "duration": 2},
            "duration value '2' is invalid. Try using duration='5' instead, "
            "as duration support may vary by model and mode.",
        ),
        (
            {"multi_prompt": [{"prompt": "a", "duration": 1}, {"prompt": "b", "duration": 1}]},
            "duration value '2' is invalid. Try using duration='5' instead, "
            "as duration support may vary by model and mode.",
        ),
        (
            {
                "multi_prompt": [
                    {"prompt": "a", "duration": 5},
                    {"prompt": "b", "duration": 5},
                    {"prompt": "c", "duration": 6},
                ]
            },
            "Total shot duration (16s) exceeds maximum allowed (15s).",
        ),
        # Undocumented checks: the sandbox's own wording.
        ({"prompt": "x" * 513}, "prompt: String should have at most 512 characters"),
        ({"prompt": "a", "tail_image_url": "https://e.com/t.jpg"}, "tail_image_url requires start_image_url"),
        ({"prompt": "a", "aspect_ratio": "4:3"}, "aspect_ratio: Input should be '16:9', '9:16' or '1:1'"),
        (
            {
                "prompt": "a",
                "elements": [
                    {"frontal_image_url": "https://e.com/f.jpg", "reference_image_urls": ["u1", "u2", "u3", "u4"]}
                ],
            },
            "elements[0].reference_image_urls: at most 3 images per element (got 4)",
        ),
        (
            {
                "prompt": "a",
                "input_image": ["i1", "i2", "i3"],
                "elements": [{"frontal_image_url": "f1"}, {"frontal_image_url": "f2"}],
            },
            "At most 4 images are allowed across input_image and elements (got 5)",
        ),
    ],
)
def test_sync_validation_errors_have_the_documented_messages(
    client: httpx.Client, body: dict[str, Any], message: str
) -> None:
    response = client.post("/ai/videos/generate", json={"model": REF} | body)
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "type": "invalid_params",
            "title": "Invalid parameters supplied, please check your request and try again.",
            "detail": WRAP + message,
        },
        "status": "error",
        "status_message": "invalid_params",
    }


@pytest.mark.parametrize(
    "body",
    [
        {"prompt": "a", "duration": 3},
        {"multi_prompt": [{"prompt": "a", "duration": 2}, {"prompt": "b", "duration": 1}]},
        {"prompt": "a", "duration": 15},
        {"multi_prompt": [{"prompt": p, "duration": 5} for p in "abc"]},
    ],
)
def test_the_documented_working_durations_pass(client: httpx.Client, body: dict[str, Any]) -> None:
    assert client.post("/ai/videos/generate", json={"model": REF} | body).status_code == 200


def test_omni_allows_seven_images(client: httpx.Client) -> None:
    images = {"prompt": "a", "input_image": [f"https://assets.example.com/{i}.jpg" for i in range(7)]}
    assert client.post("/ai/videos/generate", json={"model": OMNI} | images).status_code == 200
    assert client.post("/ai/videos/generate", json={"model": REF} | images).status_code == 400


@pytest.mark.parametrize("path", ["/ai/videos/generate", "/ai/queue"])
def test_an_unknown_model_is_not_found(client: httpx.Client, path: str) -> None:
    response = client.post(path, json={"model": "bad-model-name", "prompt": "a"})
    assert response.status_code == 404
    assert response.json() == {"error": {"message": "Model not found: bad-model-name"}}


# --- queue ---------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [REF, OMNI])
def test_a_queued_generation_succeeds_with_a_result_url(client: httpx.Client, model: str) -> None:
    response = client.post(
        "/ai/queue",
        json={"model": model, "prompt": "astronaut", "duration": 10, "aspect_ratio": "16:9", "num_generations": 2},
    )
    generations = response.json()["generations"]
    assert len(generations) == 2
    assert all(g["status"] == "queued" and len(g["generation_id"]) == 36 for g in generations)
    job = wait_terminal(client, generations[0]["generation_id"])
    assert job["status"] == "succeeded" and job["error_message"] is None
    assert job["model_name"] == model and job["media_type"] == "video"
    assert job["prompt"] == "astronaut" and job["duration"] == 10 and job["aspect_ratio"] == "16:9"
    assert job["enqueued_at"] <= job["started_at"] <= job["completed_at"]
    assert isinstance(job["completed_at"], int)
    assert _mvhd_seconds(httpx.get(job["result_url"]).content) == 10


def test_a_generation_passes_through_queued_and_processing(sandbox_with: Any) -> None:
    with sandbox_with(queue_seconds=0.2, processing_seconds=0.2) as url, make_client(url) as c:
        (gid,) = enqueue(c, prompt="a")
        first = c.get(f"/ai/queue/{gid}").json()
        assert first["status"] == "queued" and first["started_at"] is None
        seen = [first["status"]]
        for _ in range(200):
            status = c.get(f"/ai/queue/{gid}").json()["status"]
            if status == "succeeded":
                break
            seen.append(status)
            time.sleep(0.01)
        assert sorted(set(seen)) == ["processing", "queued"]
        assert seen == sorted(seen, key=["queued", "processing"].index)


def test_invalid_parameters_are_accepted_then_fail_with_the_message(client: httpx.Client) -> None:
    (gid,) = enqueue(client, prompt="a", multi_prompt=[{"prompt": "b"}])
    job = wait_terminal(client, gid)
    assert job["status"] == "failed" and job["result_url"] is None
    assert job["error_message"] == WRAP + "Value error, Cannot provide both 'prompt' and 'multi_prompt'."
    assert job["started_at"] is not None and job["completed_at"] is not None


@pytest.mark.parametrize("count", [0, 5, "2", 1.5, True])
def test_num_generations_out_of_range_is_rejected_at_enqueue(client: httpx.Client, count: Any) -> None:
    response = client.post("/ai/queue", json={"model": REF, "prompt": "a", "num_generations": count})
    assert response.status_code == 400
    assert response.json()["error"]["detail"] == "num_generations must be an integer between 1 and 4"


def test_the_list_shows_active_jobs_by_default_and_filters_by_status(client: httpx.Client) -> None:
    done = enqueue(client, prompt="a")[0]
    failed = enqueue(client, prompt="a", duration=99)[0]
    wait_terminal(client, done), wait_terminal(client, failed)
    active = enqueue(client, prompt="a")[0]
    listing = client.get("/ai/queue").json()
    assert listing["count"] == 1 and [g["generation_id"] for g in listing["generations"]] == [active]
    ok = client.get("/ai/queue", params={"status": "succeeded"}).json()
    assert [g["generation_id"] for g in ok["generations"]] == [done]
    bad = client.get("/ai/queue", params={"status": "failed"}).json()
    assert [g["generation_id"] for g in bad["generations"]] == [failed]
    assert client.get("/ai/queue", params={"model": OMNI}).json()["count"] == 0
    assert client.get("/ai/queue", params={"status": "nope"}).status_code == 400


def test_the_list_shows_one_namespace_the_key_holders_by_default(client: httpx.Client) -> None:
    mine = enqueue(client, prompt="a")[0]
    named = enqueue(client, prompt="a", target_namespace="sandbox-user")[0]  # my namespace, by name
    org = enqueue(client, prompt="a", target_namespace="acme-studio", num_generations=2)

    def listed(**params: str) -> list[str]:
        return [g["generation_id"] for g in client.get("/ai/queue", params=params).json()["generations"]]

    assert listed() == [mine, named]  # the key holder's namespace only, never every namespace
    assert listed(namespace="sandbox-user") == [mine, named]
    assert listed(namespace="acme-studio") == org
    assert listed(namespace="someone-else") == []
    for gid in [mine, named, *org]:
        wait_terminal(client, gid)
    assert listed(namespace="acme-studio") == []  # terminal: only when `status` is given
    assert listed(namespace="acme-studio", status="succeeded") == org
    assert listed(status="succeeded") == [mine, named]
    assert client.get("/ai/queue", params={"namespace": ""}).status_code == 400


def test_jobs_are_private_to_their_token(client: httpx.Client, base_url: str) -> None:
    (gid,) = enqueue(client, prompt="a")
    with make_client(base_url) as stranger:
        assert stranger.get(f"/ai/queue/{gid}").status_code == 404
        assert stranger.get("/ai/queue").json()["count"] == 0


def test_an_unknown_generation_is_not_found(client: httpx.Client) -> None:
    for method in ("GET", "DELETE"):
        response = client.request(method, "/ai/queue/00000000-0000-4000-8000-000000000000")
        assert response.status_code == 404
        assert response.json() == {
            "error": {"type": "resource_not_found", "title": "The requested resource could not be found"},
            "status": "error",
            "status_message": "resource_not_found",
        }


def test_cancel_stops_a_queued_generation(sandbox_with: Any) -> None:
    with sandbox_with(queue_seconds=0.2) as url, make_client(url) as c:
        (gid,) = enqueue(c, prompt="a")
        response = c.delete(f"/ai/queue/{gid}")
        assert response.json() == {"status": "success", "generation_id": gid}
        job = wait_terminal(c, gid)
        assert job["status"] == "cancelled" and job["result_url"] is None
        assert c.get("/ai/queue").json()["count"] == 0
        assert c.get("/ai/queue", params={"status": "cancelled"}).json()["count"] == 1


def test_cancelling_a_finished_generation_changes_nothing(client: httpx.Client) -> None:
    (gid,) = enqueue(client, prompt="a")
    wait_terminal(client, gid)
    assert client.delete(f"/ai/queue/{gid}").status_code == 200
    assert client.get(f"/ai/queue/{gid}").json()["status"] == "succeeded"


# --- events --------------------------------------------------------------------------------


def _first_event(client: httpx.Client, body: dict[str, Any]) -> tuple[str, dict[str, Any], str]:
    """Subscribe, then enqueue `body` from another thread; the first event and its raw data line."""
    with client.stream("GET", "/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        threading.Thread(target=lambda: client.post("/ai/queue", json=body)).start()
        lines = stream.iter_lines()
        event = next(line for line in lines if line.startswith("event:"))
        data = next(lines)
        return event, json.loads(data.removeprefix("data: ")), data


def test_events_deliver_a_success(client: httpx.Client) -> None:
    event, data, raw = _first_event(client, {"model": REF, "prompt": "a"})
    assert event == "event: media_generation_completed"
    assert raw.startswith("data: {") and "\n" not in raw
    assert set(data) == {"generation_id", "status", "media_type", "model", "url"}
    assert data["status"] == "succeeded" and data["model"] == REF
    assert httpx.get(data["url"]).status_code == 200


def test_events_deliver_a_failure(client: httpx.Client) -> None:
    _, data, _ = _first_event(client, {"model": OMNI, "prompt": "a", "duration": 1})
    assert set(data) == {"generation_id", "status", "media_type", "error"}
    assert data["status"] == "failed" and data["error"].startswith(WRAP + "duration value '1'")


def test_events_send_keep_alive_comments_when_idle(sandbox_with: Any) -> None:
    with sandbox_with(keepalive_seconds=0.05) as url, make_client(url) as c, c.stream("GET", "/events") as stream:
        lines = stream.iter_lines()
        assert next(lines) == ": keep-alive"


def test_events_are_not_replayed(client: httpx.Client) -> None:
    (gid,) = enqueue(client, prompt="a")
    wait_terminal(client, gid)
    _event, data, _ = _first_event(client, {"model": REF, "prompt": "b"})
    assert data["generation_id"] != gid


def _mvhd_seconds(data: bytes) -> float:
    at = data.index(b"mvhd") + 4
    return int.from_bytes(data[at + 16 : at + 20], "big") / int.from_bytes(data[at + 12 : at + 16], "big")
