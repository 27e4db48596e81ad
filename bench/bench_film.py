"""Benchmark: films.

1. `plan FILM` of a 40-scene film (20 chains of 2: a scene script and a scene continuing
   it, written in place), in one process. Goal: well under a second. The baseline, in the
   same process, is `plan` of the same 20 independent scene scripts given as scripts: the
   ratio is what the film's own work (its rules, stages, the continued scenes) adds.
2. The same plan once the film has been rendered (in the built-in sandbox): every
   continued scene is then planned with its start frame (its kept PNG hashed, the scene
   compiled again with it, its standing read from the ledger), so the plan is exact. The
   ratio is against the plan of the film before it was rendered, in the same process.
3. Joining: a 4-scene film rendered in the built-in sandbox with padded results (each
   download 8 MB, so the transfer is measurable), then `video.join` of the four clips;
   the join's time against the downloads' (both measured here). Goal: a small fraction.

Run: python bench/bench_film.py [--quick]. Nothing here asserts a time; it prints.
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


def _main(*argv: str) -> str:
    from klingspec.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(list(argv))
    assert code == 0, (code, argv)
    return out.getvalue()


def _timed(*argv: str) -> float:
    """Seconds one command takes in this process."""
    start = time.perf_counter()
    _main(*argv)
    return time.perf_counter() - start


def _film(folder: str, chains: int) -> tuple[str, list[str]]:
    scripts = []
    lines = []
    for i in range(chains):
        path = os.path.join(folder, f"s{i}.kvs")
        with open(path, "w", encoding="utf-8") as f:
            f.write(f'shot a{i} 5s "a lantern number {i} on a red table"\n')
        scripts.append(path)
        inline = f'  shot b{i} 4s "the lantern {i} glows"\n'
        lines.append(f'scene s{i} "s{i}.kvs"\nscene c{i} continues s{i} {{\n{inline}}}\n')
    film = os.path.join(folder, "film.kvs")
    with open(film, "w", encoding="utf-8") as f:
        f.write("".join(lines))
    with open(os.path.join(folder, "klingspec.toml"), "w", encoding="utf-8") as f:
        f.write('[assets]\nrepo = "bench/frames"\n')
    return film, scripts


def plan_bench() -> None:
    rounds = 3 if QUICK else 7
    with tempfile.TemporaryDirectory() as folder:
        film, scripts = _film(folder, 20)
        planned = json.loads(_main("plan", "--format", "json", film))
        assert len(planned["scenes"]) == 40
        films, bases = [], []
        for _ in range(rounds):  # interleaved: the machine's load falls on both alike
            films.append(_timed("plan", "--format", "json", film))
            bases.append(_timed("plan", "--format", "json", *scripts))
        f, b = statistics.median(films), statistics.median(bases)
        print(
            f"plan of a 40-scene film: median {f * 1000:.0f} ms (goal: well under 1 s); "
            f"the same 20 scene scripts planned as scripts: {b * 1000:.0f} ms (x{f / b:.2f})"
        )


def rendered_plan_bench() -> None:
    rounds = 3 if QUICK else 7
    with tempfile.TemporaryDirectory() as folder:
        os.environ["KLINGSPEC_HOME"] = os.path.join(folder, "home")
        film, _ = _film(folder, 20)
        before = [_timed("plan", "--sandbox", "--format", "json", film) for _ in range(rounds)]
        _main("run", "--sandbox", "--yes", "--no-join", "--concurrency", "8", film)
        planned = json.loads(_main("plan", "--sandbox", "--format", "json", film))
        assert [s["standing"] for s in planned["scenes"]] == ["reuse"] * 40, planned
        after = [_timed("plan", "--sandbox", "--format", "json", film) for _ in range(rounds)]
        a, b = statistics.median(after), statistics.median(before)
        print(
            f"plan of the 40-scene film once rendered (20 start frames read): median {a * 1000:.0f} ms; "
            f"before it was rendered: {b * 1000:.0f} ms (x{a / b:.2f})"
        )


def join_bench() -> None:
    from klingspec.run.video import join
    from klingspec.sandbox import SandboxConfig, running_sandbox

    size = 8 * 1024 * 1024
    with tempfile.TemporaryDirectory() as folder, running_sandbox(SandboxConfig(file_size=size)) as base:
        os.environ["KLINGSPEC_HOME"] = os.path.join(folder, "home")
        os.environ["OXEN_API_KEY"] = "sk-bench-film"  # the sandbox takes any key
        clips = []
        start = time.perf_counter()
        for i in range(4):
            path = os.path.join(folder, f"c{i}.kvs")
            with open(path, "w", encoding="utf-8") as f:
                f.write(f'shot c{i} 5s "clip {i}"\n')
            _main("run", "--api-url", base, "--yes", "--poll", path)
            clips += sorted(os.path.join(folder, "renders", n) for n in os.listdir(os.path.join(folder, "renders")))
        run_time = time.perf_counter() - start
        clips = sorted(set(clips))
        start = time.perf_counter()
        joined = join(clips, os.path.join(folder, "film.mp4"))
        join_time = time.perf_counter() - start
        print(
            f"join of 4 downloaded clips ({sum(os.path.getsize(c) for c in clips) / 1e6:.0f} MB, "
            f"{'copied' if joined.remuxed else 're-encoded'}): {join_time * 1000:.0f} ms; "
            f"rendering and downloading them took {run_time:.1f} s (join: {join_time / run_time:.1%} of that)"
        )


if __name__ == "__main__":
    plan_bench()
    rendered_plan_bench()
    join_bench()
