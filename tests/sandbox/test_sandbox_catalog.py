"""The catalogue: all seven Kling models, their pricing and schemas, retiring and repricing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sandbox_helpers import OMNI, REF, make_client, wait_terminal

from klingspec.sandbox.catalog import RETIRED_2026_07_27
from klingspec.sandbox.validation import UPSTREAM_PREFIX

IMG, VID = "https://assets.example.com/a.png", "https://assets.example.com/clip.mp4"
VALID: dict[str, dict[str, Any]] = {
    "kling-video-v2-6-pro-text-to-video": {"prompt": "a", "duration": 10, "aspect_ratio": "9:16"},
    "kling-video-v2-6-pro-image-to-video": {"prompt": "a", "input_image": IMG, "duration": 5},
    "kling-video-o3-pro-image-to-video": {"prompt": "a", "input_image": IMG, "tail_image_url": IMG, "duration": 3},
    REF: {"multi_prompt": [{"prompt": "a", "duration": 2}, {"prompt": "b", "duration": 2}], "input_image": [IMG]},
    "kling-video-o3-pro-video-to-video-edit": {"prompt": "a", "input_video": VID, "keep_audio": False},
    "kling-video-v3-pro-motion-control": {
        "prompt": "a",
        "input_image": IMG,
        "input_video": VID,
        "character_orientation": "video",
        "elements": [{"frontal_image_url": IMG}],
    },
    OMNI: {"prompt": "a", "start_image_url": IMG, "tail_image_url": IMG, "resolution": "4k", "duration": 5},
}
KEYS = {
    "id", "object", "created", "owned_by", "display_name", "description", "summary", "model_type", "endpoint",
    "capabilities", "pricing", "fine_tuning", "deployments", "developer", "source_model", "image_url",
    "released_at", "request_schema",
}  # fmt: skip


def test_all_seven_models_are_listed_in_the_documented_shape(client: httpx.Client) -> None:
    data = client.get("/ai/models").json()["data"]
    assert {m["id"] for m in data} == set(VALID)
    for model in data:
        assert set(model) == KEYS and model["endpoint"] == "/videos/generate"
        schema = model["request_schema"]
        assert schema["type"] == "object" and schema["properties"] and "basic" in schema
        assert all("x-order" in prop for prop in schema["properties"].values())
        assert client.get(f"/ai/models/{model['id']}").json() == model


@pytest.mark.parametrize("model", sorted(VALID))
def test_pricing_publishes_no_audio_or_high_res_price(client: httpx.Client, model: str) -> None:
    pricing = client.get(f"/ai/models/{model}").json()["pricing"]
    assert set(pricing) == {"method", "cost_per_second"} and pricing["method"] == "per_video_output_second"
    assert (pricing["cost_per_second"] is None) == (model == OMNI)


def test_search_finds_by_id(client: httpx.Client) -> None:
    found = client.get("/ai/models/search", params={"search": "v2-6"}).json()["data"]
    assert sorted(m["id"] for m in found) == sorted(m for m in VALID if "v2-6" in m)


@pytest.mark.parametrize("model", sorted(VALID))
def test_one_valid_body_per_model_succeeds_in_the_queue(client: httpx.Client, model: str) -> None:
    response = client.post("/ai/queue", json={"model": model} | VALID[model])
    assert response.status_code == 200, response.text
    job = wait_terminal(client, response.json()["generations"][0]["generation_id"])
    assert job["status"] == "succeeded", job["error_message"]


@pytest.mark.parametrize(
    "body,message",
    [
        ({"multi_prompt": [{"prompt": "a", "duration": 5}]}, "multi_prompt: Extra inputs are not permitted"),
        ({"prompt": "a", "negative_prompt": "blur"}, "negative_prompt: Extra inputs are not permitted"),
        ({"duration": 5}, "Field required"),
        ({"prompt": "a", "input_video": VID, "generate_audio": True}, None),
        ({"prompt": "a", "tail_image_url": IMG}, "tail_image_url requires start_image_url"),
        ({"prompt": "a", "resolution": "8k"}, "resolution: Input should be '1080p' or '720p' or '4k'"),
    ],
)
def test_the_omni_rules(client: httpx.Client, body: dict[str, Any], message: str | None) -> None:
    response = client.post("/ai/videos/generate", json={"model": OMNI} | body)
    assert response.status_code == 400
    if message is not None:
        assert response.json()["error"]["detail"] == UPSTREAM_PREFIX + message


@pytest.mark.parametrize(
    "model,body",
    [
        ("kling-video-o3-pro-image-to-video", {"prompt": "a"}),
        ("kling-video-v2-6-pro-image-to-video", {"prompt": "a"}),
        ("kling-video-o3-pro-video-to-video-edit", {"prompt": "a"}),
        ("kling-video-v3-pro-motion-control", {"prompt": "a", "input_image": IMG}),
    ],
)
def test_required_inputs(client: httpx.Client, model: str, body: dict[str, Any]) -> None:
    response = client.post("/ai/videos/generate", json={"model": model} | body)
    assert response.json()["error"]["detail"] == UPSTREAM_PREFIX + "Field required"


def test_v2_6_takes_5_or_10_seconds(client: httpx.Client) -> None:
    response = client.post(
        "/ai/videos/generate", json={"model": "kling-video-v2-6-pro-text-to-video", "prompt": "a", "duration": 7}
    )
    assert response.json()["error"]["detail"] == UPSTREAM_PREFIX + "duration: Input should be '5' or '10'"


def _assert_retired(c: httpx.Client, model: str) -> None:
    assert model not in {m["id"] for m in c.get("/ai/models").json()["data"]}
    detail = c.get(f"/ai/models/{model}")
    assert detail.status_code == 404 and detail.json()["error"]["type"] == "resource_not_found"
    for path in ("/ai/queue", "/ai/videos/generate"):
        refused = c.post(path, json={"model": model} | VALID[model])
        assert refused.status_code == 404 and refused.json() == {"error": {"message": f"Model not found: {model}"}}


def test_retired_by_config(sandbox_with: Any) -> None:
    with sandbox_with(retired=RETIRED_2026_07_27) as url, make_client(url) as c:
        for model in RETIRED_2026_07_27:
            _assert_retired(c, model)
        assert len(c.get("/ai/models").json()["data"]) == 4


def test_retire_restore_and_reprice_through_the_control_route(sandbox_with: Any) -> None:
    with sandbox_with(prices={REF: 0.3}) as url, make_client(url) as c:
        assert c.get(f"/ai/models/{REF}").json()["pricing"]["cost_per_second"] == 0.3
        answer = c.post("/_sandbox/catalog", json={"retire": [REF], "price": {OMNI: 0.5}})
        assert answer.status_code == 200
        _assert_retired(c, REF)
        assert c.get(f"/ai/models/{OMNI}").json()["pricing"]["cost_per_second"] == 0.5
        c.post("/_sandbox/catalog", json={"restore": [REF], "price": {REF: None}})
        assert c.get(f"/ai/models/{REF}").json()["pricing"]["cost_per_second"] == 0.224
        assert c.post("/_sandbox/catalog", json={"retire": ["nope"]}).status_code == 400
        c.post("/_sandbox/catalog", json={"retire": [OMNI]})
        c.post("/_sandbox/reset")
        assert c.get(f"/ai/models/{OMNI}").json()["pricing"]["cost_per_second"] is None  # back to the config's
