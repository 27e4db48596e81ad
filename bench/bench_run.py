"""Benchmarks of the run side, against the sandbox over loopback, as ratios of this one run.

(a) N concurrent renders with a fixed generation time G finish in about G, not N x G
    (prints elapsed / G; the goal is close to 1);
(b) HTTP requests per completed render, following with SSE and with polling only;
(c) peak memory while downloading a 50 MB result (url) and decoding a 50 MB `b64_json`
    answer (sync), each in a fresh subprocess: growth of peak RSS (VmHWM, reset just before)
    vs the file size, and the tracemalloc peak (the goal: flat, a few MB whatever the size).

Run: python bench/bench_run.py [--quick]. Nothing here asserts; it prints.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from klingspec.compiling import request_hash
from klingspec.run.client import OxenClient
from klingspec.run.ledger import Ledger
from klingspec.run.runner import Job, PollPolicy, Runner
from klingspec.sandbox import SandboxConfig, running_sandbox

QUICK = "--quick" in sys.argv
MODEL = "kling-video-o3-pro-reference-to-video"
CLI_SANDBOX_POLL = PollPolicy(initial=0.2, factor=1.5, cap=2.0, sse_check=5.0)  # what `run --sandbox` uses


def _jobs(n: int, out: str) -> list[Job]:
    jobs = []
    for i in range(n):
        body = {"model": MODEL, "prompt": f"take {i}", "duration": 5}
        jobs.append(Job.create(f"take{i}.kvs", body, 1, request_hash(body, 1), out))
    return jobs


def _render(n: int, seconds: float, sse: bool) -> tuple[float, int, int]:
    """(elapsed, client requests, sandbox requests) for n renders of `seconds` each."""
    config = SandboxConfig(queue_seconds=0.0, processing_seconds=seconds)
    with (
        running_sandbox(config) as url,
        tempfile.TemporaryDirectory() as tmp,
        Ledger(os.path.join(tmp, "l.sqlite")) as ledger,
        OxenClient.create(url, "bench") as client,
    ):
        runner = Runner(client, ledger, api_url=url, sse=sse, poll=CLI_SANDBOX_POLL, concurrency=n)
        started = time.perf_counter()
        outcomes = runner.run(_jobs(n, tmp))
        elapsed = time.perf_counter() - started
        assert all(o.state == "done" for o in outcomes), [o.error for o in outcomes]
        import httpx

        served = httpx.get(url + "/_sandbox/stats").json()["total"]
        return elapsed, client.stats.requests, served


def bench_concurrency() -> None:
    seconds = 1.0 if QUICK else 2.0
    print(f"(a) concurrent renders, generation time G = {seconds:.1f} s")
    for n in (1, 4, 8) if QUICK else (1, 4, 8, 16):
        elapsed, _, _ = _render(n, seconds, sse=True)
        print(f"    N={n:>2}: {elapsed:5.2f} s = {elapsed / seconds:4.2f} x G   (serial would be {n} x G)")


def bench_requests() -> None:
    seconds, n = (1.0, 4) if QUICK else (3.0, 8)
    print(
        f"(b) HTTP requests per completed render ({n} renders of {seconds:.0f} s; "
        f"polling {CLI_SANDBOX_POLL.initial}s x{CLI_SANDBOX_POLL.factor} up to {CLI_SANDBOX_POLL.cap}s)"
    )
    for sse in (True, False):
        elapsed, sent, served = _render(n, seconds, sse=sse)
        print(
            f"    {'SSE    ' if sse else 'polling'}: {sent / n:5.2f} requests/render "
            f"(client counted {sent}, sandbox served {served}), {elapsed:.2f} s"
        )


_CHILD = r"""
import json, os, sys, time, tracemalloc
from klingspec.run.client import OxenClient
from klingspec.run.media import decode_b64_videos
url, mode, out = sys.argv[1:4]
client = OxenClient.create(url, "bench")

def vm(field):  # bytes, from /proc/self/status (Linux)
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024

def reset_peak():  # "5" resets VmHWM, the peak RSS, to the current RSS (Linux >= 4.0)
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")

if mode == "url":
    gid = client.enqueue({"model": "kling-video-o3-pro-reference-to-video", "prompt": "x", "duration": 3}, 1)[0]
    while (item := client.generation(gid))["status"] != "succeeded":
        time.sleep(0.05)
reset_peak()
base = vm("VmRSS")
tracemalloc.start()
if mode == "url":
    sha, size = client.download(item["result_url"], out)
else:
    answer = out + ".answer.json"
    client.generate_to_file({"model": "kling-video-o3-pro-reference-to-video", "prompt": "x", "duration": 3,
                             "response_format": "b64_json"}, answer)
    [(sha, size)] = decode_b64_videos(answer, [out])
    os.unlink(answer)
traced = tracemalloc.get_traced_memory()[1]
print(json.dumps({"base": base, "peak": vm("VmHWM"), "traced": traced, "size": size}))
"""


def bench_memory() -> None:
    size = 50 * 1024 * 1024
    print(f"(c) peak RSS growth while fetching a {size // 2**20} MB result (fresh subprocess each)")
    config = SandboxConfig(queue_seconds=0.0, processing_seconds=0.0, file_size=size)
    with running_sandbox(config) as url, tempfile.TemporaryDirectory() as tmp:
        for mode in ("url", "b64_json"):
            out = os.path.join(tmp, f"{mode}.mp4")
            done = subprocess.run(
                [sys.executable, "-c", _CHILD, url, mode, out], capture_output=True, text=True, check=True
            )
            m = json.loads(done.stdout)
            growth = m["peak"] - m["base"]
            print(
                f"    {mode:8}: file {m['size'] / 2**20:5.1f} MB, peak RSS growth {growth / 2**20:5.1f} MB "
                f"= {growth / m['size']:.3f} x the file; Python heap peak {m['traced'] / 2**20:.2f} MB"
            )


if __name__ == "__main__":
    bench_concurrency()
    bench_requests()
    bench_memory()
