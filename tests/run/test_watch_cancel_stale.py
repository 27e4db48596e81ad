"""`watch --cancel-stale` records what the API says: a superseded render whose video was
already made is not marked cancelled (found in review: it was, and the paid video was
never downloaded). A real sandbox on loopback, a real ledger file."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import httpx
from run_helpers import FAST, new_key, oxen, runner

from klingspec.cli.watching import RenderThread, _cancel
from klingspec.run.ledger import Ledger
from klingspec.sandbox import running_sandbox

BODY = {"model": "kling-video-o3-pro-reference-to-video", "prompt": "a kite", "duration": 5}


def _render(ledger: Ledger, url: str, ids: list[str], tmp_path: Path) -> int:
    render = ledger.record_intent(
        request_hash="sha256:kite",
        api_url=url,
        script="kite.kvs",
        model=BODY["model"],
        body=BODY,
        generations=len(ids),
        mode="queue",
        out_dir=str(tmp_path),
        estimate_usd="1.12",
    )
    ledger.mark_sent(render.id)
    ledger.mark_submitted(render.id, ids)
    return render.id


def _wait_status(url: str, key: str, gid: str, wanted: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        item = httpx.get(f"{url}/ai/queue/{gid}", headers={"Authorization": f"Bearer {key}"}, timeout=5).json()
        if item["status"] == wanted:
            return
        time.sleep(0.02)
    raise AssertionError(f"{gid} never became {wanted}")


def test_a_finished_generation_is_not_recorded_cancelled_and_its_render_keeps_following(tmp_path):
    key = new_key()
    with running_sandbox(FAST) as url, oxen(url, key) as client:
        [gid] = client.enqueue(BODY, 1)
        _wait_status(url, key, gid, "succeeded")
        with Ledger(str(tmp_path / "l.sqlite")) as ledger:
            render_id = _render(ledger, url, [gid], tmp_path)
            run = runner(client, ledger, url)
            _cancel(RenderThread(threading.Thread(target=lambda: None), run, "sha256:kite"))
            assert ledger.render(render_id).state == "submitted"  # not cancelled: its video exists
            assert [g.status for g in ledger.generations(render_id)] == ["succeeded"]
            assert not run.stop.is_set()  # its thread goes on to download it


def test_a_generation_still_queued_is_cancelled_and_the_render_too(tmp_path):
    key = new_key()
    slow = replace(FAST, queue_seconds=30, processing_seconds=30)
    with running_sandbox(slow) as url, oxen(url, key) as client:
        [gid] = client.enqueue(BODY, 1)
        with Ledger(str(tmp_path / "l.sqlite")) as ledger:
            render_id = _render(ledger, url, [gid], tmp_path)
            run = runner(client, ledger, url)
            _cancel(RenderThread(threading.Thread(target=lambda: None), run, "sha256:kite"))
            assert ledger.render(render_id).state == "cancelled"
            assert [g.status for g in ledger.generations(render_id)] == ["cancelled"]
            assert run.stop.is_set()
