"""Benchmark: `plan` of 100 scripts against a ledger of 1,000 past renders, in one process.

Goal: under 1 s. The baseline is the same `plan` with no ledger (so the ratio is what the
ledger adds), measured in the same process; the median of several runs each, interleaved.
A tenth of the scripts were rendered before (done), a tenth are in flight and a tenth
kept only some videos (a top-up), so every kind of standing is looked up.

Run: python bench/bench_plan.py [--quick]. Nothing here asserts a time; it prints.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time

QUICK = "--quick" in sys.argv
SCRIPTS = 100
PAST = 1_000
API = "https://api.example/api"


def _plan(files: list[str], ledger: str) -> dict[str, object]:
    from klingspec.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["plan", "--format", "json", "--api-url", API, "--ledger", ledger, *files])
    assert code == 0, code
    return json.loads(out.getvalue())


def _ledger(path: str, hashes: list[str], folder: str) -> None:
    from klingspec.run.ledger import Ledger
    from klingspec.run.states import GenerationStatus, RenderState

    body = {"model": "kling-video-o3-pro-reference-to-video", "prompt": "past", "duration": 5}
    with Ledger(path) as ledger:
        for i in range(PAST):
            request_hash = hashes[i] if i < len(hashes) else f"sha256:past-{i}"
            state = (
                (RenderState.DONE, RenderState.SUBMITTED, RenderState.PARTIAL)[i % 3]
                if i < len(hashes)
                else RenderState.DONE
            )
            render = ledger.record_intent(
                request_hash=request_hash,
                api_url=API,
                script=f"past{i}.kvs",
                model=body["model"],
                body=body,
                generations=2,
                mode="queue",
                out_dir=folder,
                estimate_usd="2.24",
            )
            ledger.mark_sent(render.id)
            ids = [f"g{i}-1", f"g{i}-2"]
            ledger.mark_submitted(render.id, ids)
            ledger.update_generation(ids[0], GenerationStatus.SUCCEEDED, "https://result")
            ledger.record_file(ids[0], os.path.join(folder, f"g{i}.mp4"), "sha256:x", 1)
            ledger.set_state(render.id, state)


def main() -> None:
    runs = 3 if QUICK else 7
    with tempfile.TemporaryDirectory() as folder:
        os.environ["KLINGSPEC_HOME"] = os.path.join(folder, "home")
        files = []
        for i in range(SCRIPTS):
            path = os.path.join(folder, f"scene{i}.kvs")
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(f'generations 2\nshot a 5s "take {i} of the harbour at dawn"\nshot b 4s "close-up {i}"\n')
            files.append(path)
        baseline = _plan(files, os.path.join(folder, "absent.sqlite"))
        plans = baseline["plans"]
        assert isinstance(plans, list)
        hashes = [p["request_hash"] for p in plans[: SCRIPTS * 3 // 10]]  # 30 of them were seen before
        full = os.path.join(folder, "ledger.sqlite")
        _ledger(full, hashes, folder)
        with_ledger: list[float] = []
        without: list[float] = []
        for _ in range(runs):
            start = time.perf_counter()
            result = _plan(files, full)
            with_ledger.append(time.perf_counter() - start)
            start = time.perf_counter()
            _plan(files, os.path.join(folder, "absent.sqlite"))
            without.append(time.perf_counter() - start)
        standings = sorted({p["standing"] for p in result["plans"]})  # type: ignore[index,union-attr]
        median, base = statistics.median(with_ledger), statistics.median(without)
        print(
            f"plan of {SCRIPTS} scripts, ledger of {PAST} past renders: median {median * 1000:.0f} ms "
            f"(goal < 1000 ms); without a ledger {base * 1000:.0f} ms; the ledger adds x{median / base:.2f}"
        )
        print(f"    standings seen: {', '.join(standings)}; new spend ${result['new_usd']:.2f}")


if __name__ == "__main__":
    main()
