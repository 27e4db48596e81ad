"""Helpers shared by the sandbox tests (a module, so its name does not clash with others')."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from klingspec.sandbox import SandboxConfig

FAST = SandboxConfig(queue_seconds=0.05, processing_seconds=0.05)
REF = "kling-video-o3-pro-reference-to-video"
OMNI = "kling-video-o3-omni"


def make_client(base_url: str, token: str | None = None, **kwargs: Any) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token or uuid.uuid4().hex}"}
    return httpx.Client(base_url=base_url, headers=headers, timeout=5.0, **kwargs)


def wait_terminal(client: httpx.Client, generation_id: str, timeout: float = 5.0) -> dict[str, Any]:
    """Poll until the generation is succeeded, failed or cancelled."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/ai/queue/{generation_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.02)
    raise AssertionError(f"generation {generation_id} still {job['status']} after {timeout}s")


def enqueue(client: httpx.Client, **body: Any) -> list[str]:
    response = client.post("/ai/queue", json={"model": REF} | body)
    assert response.status_code == 200, response.text
    return [g["generation_id"] for g in response.json()["generations"]]
