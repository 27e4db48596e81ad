"""Helpers shared by the run-side tests (a module named so it cannot clash with others')."""

from __future__ import annotations

import os
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from klingspec.pipeline import Options, run_pipeline
from klingspec.run.client import OxenClient, RetryPolicy
from klingspec.run.ledger import Ledger
from klingspec.run.runner import Job, PollPolicy, Runner
from klingspec.sandbox import SandboxConfig

FAST = SandboxConfig(queue_seconds=0.05, processing_seconds=0.05)
FAST_POLL = PollPolicy(initial=0.02, factor=1.5, cap=0.1, sse_check=0.5)
FAST_RETRY = RetryPolicy(attempts=4, base=0.01, cap=0.05)
MODEL = "kling-video-o3-pro-reference-to-video"


def new_key() -> str:
    """A distinctive key: easy to grep for, unique per test (the sandbox scopes jobs to it)."""
    return f"sk-TESTKEY-{uuid.uuid4().hex}"


class Sleeps:
    """The client's `sleep` seam: records each requested delay, sleeps a token amount."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        time.sleep(min(seconds, 0.01))


def oxen(base_url: str, key: str, *, sleep: Sleeps | None = None, **http: Any) -> OxenClient:
    """A real client (the CLI's own construction) with fast retries."""
    client = OxenClient.create(base_url, key, retry=FAST_RETRY, sleep=sleep or Sleeps())
    if http:  # rebuild the httpx client with extra options (event hooks, transport …)
        client.http.close()
        from klingspec.run.client import TIMEOUT, HostBearer

        client.http = httpx.Client(auth=HostBearer(key, base_url), timeout=TIMEOUT, follow_redirects=True, **http)
    return client


def script(tmp_path: Path, text: str, name: str = "scene.kvs") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def shots(
    *,
    generations: int = 1,
    fmt: str | None = None,
    prompt: str = "A red paper boat drifts",
    seconds: int = 5,
    extra: str = "",
) -> str:
    lines = [f"generations {generations}"] if generations != 1 else []
    if fmt:
        lines.append(f"format {fmt}")
    if extra:
        lines.append(extra)
    lines.append(f'shot {seconds}s "{prompt}"')
    return "\n".join(lines) + "\n"


def job(path: str, out_dir: str | None = None) -> Job:
    result = run_pipeline(path, Options())
    assert result.ok and result.request is not None, result.diagnostics
    return Job.create(
        path,
        result.request.body,
        result.request.generations,
        result.request.content_hash,
        out_dir or os.path.join(os.path.dirname(path), "renders"),
    )


def runner(client: OxenClient, ledger: Ledger, base_url: str, **kwargs: Any) -> Runner:
    kwargs.setdefault("poll", FAST_POLL)
    return Runner(client, ledger, api_url=base_url, **kwargs)


def raw(base_url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=5.0)


def my_generations(base_url: str, key: str, namespace: str | None = None) -> list[dict]:
    """Every generation the sandbox holds for `key` in one namespace (the key holder's
    unless `namespace` names another: the listing shows one at a time), whatever its status."""
    with raw(base_url, key) as http:
        found = []
        for status in ("queued", "processing", "succeeded", "failed", "cancelled"):
            params = {"status": status} | ({"namespace": namespace} if namespace else {})
            found += http.get("/ai/queue", params=params).json()["generations"]
        return found


def stats(base_url: str) -> dict:
    return httpx.get(base_url + "/_sandbox/stats", timeout=5.0).json()


def posts(base_url: str) -> int:
    requests = stats(base_url)["requests"]
    return sum(n for route, n in requests.items() if route.startswith("POST "))


def usd(value: str) -> Decimal:
    return Decimal(value)
