"""Whole processes: `klingspec sandbox --port N` in one, `klingspec run` in another, killed
with SIGKILL at the worst moments and started again. Also: the key is never written anywhere."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from run_helpers import new_key, script, shots

from klingspec.cli.report import Exit

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sandbox_process(tmp_path, request):
    """A `klingspec sandbox` process: yields its API base URL. `@pytest.mark.sandbox_args(...)`
    adds command-line arguments."""
    port = _free_port()
    log = open(tmp_path / "sandbox.log", "wb")
    marker = request.node.get_closest_marker("sandbox_args")
    extra = list(marker.args) if marker else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "klingspec", "sandbox", "--port", str(port), "--processing-seconds", "1", *extra],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}/api"
    try:
        for _ in range(200):
            try:
                httpx.get(base + "/_sandbox/stats", timeout=0.5)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            pytest.fail("the sandbox process did not start")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _env(tmp_path: Path, key: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("KLINGSPEC_LEDGER", "KLINGSPEC_API_URL")}
    env.update(OXEN_API_KEY=key, KLINGSPEC_HOME=str(tmp_path / "home"), COLUMNS="200")
    return env


def _klingspec(*args: str, env: dict, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "klingspec", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs
    )


def _ledger_rows(path: Path, query: str) -> list[tuple[Any, ...]] | None:
    """`query` on the ledger another process is writing, read-only; None while it does
    not exist yet or is locked."""
    if not path.exists():
        return None
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            return db.execute(query).fetchall()
    except sqlite3.Error:
        return None


def _ledger_state(tmp_path: Path) -> str | None:
    rows = _ledger_rows(tmp_path / "home" / "ledger.sqlite", "SELECT state FROM renders ORDER BY id DESC LIMIT 1")
    return rows[0][0] if rows else None


def _wait_for(predicate, timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


def _stats(base: str) -> dict:
    return httpx.get(base + "/_sandbox/stats", timeout=5).json()


def _no_key_anywhere(key: str, tmp_path: Path, *outputs: bytes) -> None:
    for output in outputs:
        assert key.encode() not in output
    for root, _, names in os.walk(tmp_path):
        for name in names:
            with open(os.path.join(root, name), "rb") as handle:
                assert key.encode() not in handle.read(), os.path.join(root, name)


def test_kill_9_mid_poll_then_rerun_creates_no_second_job(sandbox_process, tmp_path):
    key = new_key()
    env = _env(tmp_path, key)
    path = script(tmp_path, shots(generations=2))
    first = _klingspec("run", "--api-url", sandbox_process, "--yes", path, env=env)
    _wait_for(lambda: _ledger_state(tmp_path) == "submitted", what="the first run to submit")
    time.sleep(0.3)  # now it is following (events and polls)
    first.send_signal(signal.SIGKILL)
    out1, err1 = first.communicate(timeout=10)
    assert first.returncode == -signal.SIGKILL
    assert not (tmp_path / "renders").exists() or not list((tmp_path / "renders").glob("*.mp4"))

    second = _klingspec("run", "--api-url", sandbox_process, "--yes", path, env=env)
    out2, err2 = second.communicate(timeout=30)
    assert second.returncode == Exit.OK, err2.decode()
    assert b"reattach" in err2
    stats = _stats(sandbox_process)
    assert stats["requests"]["POST /api/ai/queue"] == 1
    assert stats["jobs"]["succeeded"] == 2
    videos = sorted((tmp_path / "renders").glob("*.mp4"))
    assert len(videos) == 2 and all(v.stat().st_size > 0 for v in videos)
    assert not list((tmp_path / "renders").glob("*.part"))
    _no_key_anywhere(key, tmp_path, out1, err1, out2, err2)


def test_kill_9_while_the_enqueue_is_in_flight_then_rerun_makes_exactly_one_job(sandbox_process, tmp_path):
    key = new_key()
    env = _env(tmp_path, key)
    path = script(tmp_path, shots())
    # the enqueue is answered 1.5 s late: the run is killed while waiting for the answer
    # (the sandbox reads the body after the latency, so this request never makes a job)
    httpx.post(
        sandbox_process + "/_sandbox/faults",
        json={"fault": "latency=1.5", "path": "/api/ai/queue", "method": "POST", "times": 1},
        timeout=5,
    )
    first = _klingspec("run", "--api-url", sandbox_process, "--yes", path, env=env)
    _wait_for(lambda: _ledger_state(tmp_path) == "sent", what="the first run to send")
    time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    out1, err1 = first.communicate(timeout=10)
    time.sleep(1.5)  # let the sandbox finish with the orphaned request

    second = _klingspec("run", "--api-url", sandbox_process, "--yes", path, env=env)
    out2, err2 = second.communicate(timeout=30)
    assert second.returncode == Exit.OK, err2.decode()
    assert b"looking for it in the queue" in err2  # reconciled before anything was re-sent
    jobs = _stats(sandbox_process)["jobs"]
    assert sum(jobs.values()) == jobs["succeeded"] == 1
    assert len(list((tmp_path / "renders").glob("*.mp4"))) == 1
    _no_key_anywhere(key, tmp_path, out1, err1, out2, err2)


def test_key_never_printed_even_in_errors(sandbox_process, tmp_path):
    key = new_key()
    env = _env(tmp_path, key)
    path = script(tmp_path, shots())
    outputs = []
    for args in (
        ["--api-url", sandbox_process, "--yes", "--poll", path],  # success
        ["--api-url", "http://127.0.0.1:9/api", "--yes", "--dry-run", path],  # dry run
        ["--api-url", sandbox_process, "--yes", "--sync", path, "--var", "x=1"],
    ):
        proc = _klingspec("run", *args, env=env)
        outputs += proc.communicate(timeout=30)
    for command in (["status", "--all", "--refresh"], ["ls"], ["cancel", "1"]):
        proc = _klingspec(*command, env=env)
        outputs += proc.communicate(timeout=30)
    assert b".mp4" in b"".join(outputs)
    _no_key_anywhere(key, tmp_path, *outputs)


def test_ctrl_c_exits_130_and_the_rerun_finishes(sandbox_process, tmp_path):
    key = new_key()
    env = _env(tmp_path, key)
    path = script(tmp_path, shots())
    first = _klingspec("run", "--api-url", sandbox_process, "--yes", path, env=env)
    _wait_for(lambda: _ledger_state(tmp_path) == "submitted", what="the first run to submit")
    first.send_signal(signal.SIGINT)
    _out1, err1 = first.communicate(timeout=10)  # Ctrl-C is prompt: no waiting for the render
    assert first.returncode == Exit.INTERRUPTED
    assert b"without paying twice" in err1 and b"Traceback" not in err1
    assert _ledger_state(tmp_path) == "submitted"
    second = _klingspec("run", "--api-url", sandbox_process, "--yes", path, env=env)
    _out2, err2 = second.communicate(timeout=30)
    assert second.returncode == Exit.OK, err2.decode()
    assert _stats(sandbox_process)["requests"]["POST /api/ai/queue"] == 1
    assert len(list((tmp_path / "renders").glob("*.mp4"))) == 1


def test_two_runs_started_at_the_same_instant_create_one_job(sandbox_process, tmp_path):
    """The ledger is the lock: of two `klingspec run` processes started together on one
    script, one records and sends the render, the other waits for it to hear back and
    reattaches; neither sends twice. The enqueue is answered 1 s late, so the second run
    arrives while the first is still sending (the old code sent it again then)."""
    key = new_key()
    env = _env(tmp_path, key)
    path = script(tmp_path, shots(generations=2))
    ledger = str(tmp_path / "shared.sqlite")
    httpx.post(
        sandbox_process + "/_sandbox/faults",
        json={"fault": "latency=1", "path": "/api/ai/queue", "method": "POST"},
        timeout=5,
    ).raise_for_status()
    args = ("run", "--api-url", sandbox_process, "--ledger", ledger, "--yes", path)
    runs = [_klingspec(*args, env=env), _klingspec(*args, env=env)]
    results = [run.communicate(timeout=60) for run in runs]
    for run, (_out, err) in zip(runs, results, strict=True):
        assert run.returncode == Exit.OK, err.decode()
    assert any(b"reattach" in err for _out, err in results)
    stats = _stats(sandbox_process)
    assert stats["requests"]["POST /api/ai/queue"] == 1
    listed = []
    with httpx.Client(base_url=sandbox_process, headers={"Authorization": f"Bearer {key}"}, timeout=5) as http:
        for status in ("queued", "processing", "succeeded", "failed", "cancelled"):
            listed += http.get("/ai/queue", params={"status": status}).json()["generations"]
    assert len(listed) == 2 and {g["status"] for g in listed} == {"succeeded"}  # one job of 2 generations
    with sqlite3.connect(ledger) as db:
        assert db.execute("SELECT COUNT(*) FROM renders").fetchone()[0] == 1
        assert db.execute("SELECT COUNT(*) FROM generations").fetchone()[0] == 2
    videos = sorted((tmp_path / "renders").glob("*.mp4"))
    assert len(videos) == 2 and all(v.stat().st_size > 0 for v in videos)
    assert not list((tmp_path / "renders").glob("*.part"))


def _fault(base: str, fault: str, path: str, method: str = "GET", times: int | None = None) -> None:
    httpx.post(
        base + "/_sandbox/faults", json={"fault": fault, "path": path, "method": method, "times": times}, timeout=5
    ).raise_for_status()


def _requests(base: str, route: str) -> int:
    return _stats(base)["requests"].get(route, 0)


def test_kill_9_during_a_sync_download_then_two_reruns_pay_once(sandbox_process, tmp_path):
    """The issue's repro: a sync run killed mid-download. The old code's next run polled
    the internal id `sync-1-1`, got 404 and marked the render failed; the run after that
    paid again. The answer's URL is in the ledger before the download now: resumed, no POST."""
    key = new_key()
    env = _env(tmp_path, key)
    path = script(tmp_path, shots())
    _fault(sandbox_process, "slow=10", "/api/files/*", times=1)  # the first download crawls
    first = _klingspec("run", "--api-url", sandbox_process, "--sync", "--yes", path, env=env)
    _wait_for(lambda: _requests(sandbox_process, "GET /api/files/{file_id}.mp4") == 1, what="the download to start")
    first.send_signal(signal.SIGKILL)
    out1, err1 = first.communicate(timeout=10)
    outputs = [out1, err1]
    for _ in range(2):
        again = _klingspec("run", "--api-url", sandbox_process, "--sync", "--yes", path, env=env)
        out, err = again.communicate(timeout=30)
        assert again.returncode == Exit.OK, err.decode()
        outputs += [out, err]
    assert _requests(sandbox_process, "POST /api/ai/videos/generate") == 1
    assert not any(route.startswith("GET /api/ai/queue") for route in _stats(sandbox_process)["requests"])
    renders = tmp_path / "renders"
    assert len(list(renders.glob("*.mp4"))) == 1
    assert sorted(os.listdir(renders)) == [v.name for v in renders.glob("*.mp4")]  # no answer, no part file
    _no_key_anywhere(key, tmp_path, *outputs)


@pytest.mark.sandbox_args("--fault", "POST /api/ai/videos/generate: latency=1")
def test_kill_9_during_a_sync_request_is_reported_unknown_and_never_paid_again(sandbox_process, tmp_path):
    """Killed while the sync request blocks (the sandbox takes 2 s, a latency fault set on its
    command line and the render itself): the render may be made
    and billed, and the queue does not list sync renders, so the next runs say so plainly,
    send nothing, and leave no `.answer-*` file in the output folder."""
    key = new_key()
    env = _env(tmp_path, key)
    path = script(tmp_path, shots())
    first = _klingspec("run", "--api-url", sandbox_process, "--sync", "--yes", path, env=env)
    sent = "POST /api/ai/videos/generate"
    _wait_for(lambda: _requests(sandbox_process, sent) == 1, what="the sync request to reach the sandbox")
    assert _ledger_state(tmp_path) == "sent"  # recorded before it was sent
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=10)
    for _ in range(2):
        again = _klingspec("run", "--api-url", sandbox_process, "--sync", "--yes", path, env=env)
        _out, err = again.communicate(timeout=30)
        assert again.returncode != Exit.OK
        assert "outcome unknown — may have been billed" in err.decode() and b"--again" in err
    assert _requests(sandbox_process, "POST /api/ai/videos/generate") == 1
    assert _ledger_state(tmp_path) == "unknown"
    renders = tmp_path / "renders"
    assert not renders.exists() or not [n for n in os.listdir(renders) if n.startswith(".answer")]


@pytest.mark.parametrize(
    "fault, path, route",
    [
        ("status=429, retry-after=100", "/api/ai/queue/*", "GET /api/ai/queue/{generation_id}"),
        ("slow=10", "/api/files/*", "GET /api/files/{file_id}.mp4"),
    ],
    ids=["retry-after", "slow-download"],
)
def test_ctrl_c_interrupts_a_retry_after_wait_and_a_slow_download(sandbox_process, tmp_path, fault, path, route):
    """Ctrl-C lands while a worker waits out a 100 s `Retry-After`, or reads a download
    that trickles at 10 B/s: the run ends at once (the old code sat both out)."""
    key = new_key()
    env = _env(tmp_path, key)
    kvs = script(tmp_path, shots())
    _fault(sandbox_process, fault, path)
    first = _klingspec("run", "--api-url", sandbox_process, "--poll", "--yes", kvs, env=env)
    _wait_for(lambda: _requests(sandbox_process, route) >= 1, what=route)
    time.sleep(0.3)  # inside the wait, or the read
    first.send_signal(signal.SIGINT)
    _out, err = first.communicate(timeout=20)  # a hang guard, far below what the waits would take
    assert first.returncode == Exit.INTERRUPTED, err.decode()
    assert b"Traceback" not in err
    assert _ledger_state(tmp_path) == "submitted"
    assert not (tmp_path / "renders").exists() or not list((tmp_path / "renders").glob("*.part"))


# Kill points drawn at random (a fixed seed: a failure is replayed by its seed) over the
# whole life of a run: before the ledger exists, around the submit, while following, while
# downloading. Each point is one script of its own, so the sandbox's counts tell, per
# request, how many times it was sent.
KILL_SEED = 20261201
KILL_POINTS = 3


@pytest.mark.parametrize("mode", ["--queue", "--sync"])
def test_kill_9_at_random_points_never_pays_twice_nor_loses_a_video(mode, sandbox_process, tmp_path):
    import random

    chooser = random.Random(f"{KILL_SEED}{mode}")
    key = new_key()
    env = _env(tmp_path, key)
    route = "POST /api/ai/queue" if mode == "--queue" else "POST /api/ai/videos/generate"
    unknown = 0
    for point in range(KILL_POINTS):
        delay = chooser.uniform(0.0, 3.0)  # a whole run takes about 2-3 s here
        path = script(tmp_path, shots(prompt=f"A paper boat, take {point}"), f"scene{point}.kvs")
        before = _requests(sandbox_process, route)
        first = _klingspec("run", "--api-url", sandbox_process, mode, "--yes", path, env=env)
        time.sleep(delay)
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=10)
        again = _klingspec("run", "--api-url", sandbox_process, mode, "--yes", path, env=env)
        _out, err = again.communicate(timeout=60)
        sent = _requests(sandbox_process, route) - before
        assert sent <= 1, f"kill at {delay:.2f} s: the request was sent {sent} times"
        videos = list(tmp_path.glob(f"renders/scene{point}-*.mp4"))
        if again.returncode == Exit.OK:
            assert sent == 1 and len(videos) == 1 and videos[0].stat().st_size > 0, (delay, err.decode())
        else:  # only a sync request killed in flight cannot be told: said so, never sent again
            assert mode == "--sync" and "outcome unknown" in err.decode(), (delay, err.decode())
            unknown += 1
        assert not list(tmp_path.glob("renders/*.part"))
    if mode == "--queue":
        assert unknown == 0  # the queue lists its jobs: a lost answer is always found again
