"""Peak memory of checking large inputs, as multiples of the input's size.

(a) a script with one 5 MB string literal (and one 5 MB of escapes), checked and
    formatted: the lexer, the literal's positions and the printer should cost a few times
    the file, not hundreds (874 MB before the STRING terminal was made possessive);
(b) a 10,000-key `--vars` file (minified JSON, one line) none of whose keys the script
    uses: linear, with one summary warning (30 s and 2.7 GB before);
(c) a template bomb refused from its operands.

Each case runs `klingspec` in a fresh process; peak is the child's maximum resident set
(resource.getrusage), printed beside `python -c pass` for the interpreter's own share.
Run: python bench/bench_memory.py. Nothing here asserts; it prints.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _peak(argv: list[str]) -> tuple[float, float, str]:
    """(max RSS in MB, seconds, the first diagnostic's header) of one child process."""
    before = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - before
    # RUSAGE_CHILDREN's maxrss is the largest child so far: each case runs in its own
    # grandchild so the figure is this case's alone
    first = re.search(r"\b(?:error|warning)\[[\w-]+\]", done.stdout)
    return float(done.stderr.strip().splitlines()[-1]) / 1024, seconds, first.group() if first else "clean"


def _measured(*argv: str) -> list[str]:
    code = (
        "import resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)\n"
        "sys.stdout.write(done.stdout)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
    )
    return [sys.executable, "-c", code, *argv]


def main() -> None:
    klingspec = [sys.executable, "-m", "klingspec"]
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        plain = base / "long.kvs"
        plain.write_text('shot a 5s "' + "word " * 1_000_000 + '"\n', encoding="utf-8")
        escapes = base / "escapes.kvs"
        escapes.write_text('shot a 5s "' + 'wo\\"d ' * 833_333 + '"\n', encoding="utf-8")
        vars_file = base / "vars.json"
        vars_file.write_text(
            json.dumps({f"key{i}": f"value {i}" for i in range(10_000)}, separators=(",", ":")), encoding="utf-8"
        )
        scene = base / "scene.kvs"
        scene.write_text('shot a 5s "hello"\n', encoding="utf-8")
        bomb = base / "bomb.kvs"
        bomb.write_text("shot a 5s \"{{ ('x' * 90000) | replace('x', 'x' * 90000) }}\"\n", encoding="utf-8")
        os.environ["KLINGSPEC_NO_CACHE"] = "1"
        baseline, _, _ = _peak(_measured(sys.executable, "-c", "pass"))
        print(f"python -c pass: {baseline:.0f} MB max RSS")
        cases = [
            ("check, one 5 MB string", plain, [*klingspec, "check", str(plain)]),
            ("fmt --check, one 5 MB string", plain, [*klingspec, "fmt", "--check", str(plain)]),
            ("check, 5 MB of escapes", escapes, [*klingspec, "check", str(escapes)]),
            (
                "check --vars, 10,000 unused keys",
                vars_file,
                [*klingspec, "check", "--vars", str(vars_file), str(scene)],
            ),
            ("check, a replace bomb", bomb, [*klingspec, "check", str(bomb)]),
        ]
        for name, measured, argv in cases:
            megabytes, seconds, first = _peak(_measured(*map(str, argv)))
            size = measured.stat().st_size / 1e6
            ratio = f" ({(megabytes - baseline) / size:.0f}x the input)" if size >= 1 else ""
            print(
                f"{name} ({size:.2f} MB): {megabytes:.0f} MB max RSS, {megabytes - baseline:.0f} MB over python"
                f"{ratio}, {seconds:.2f} s; {first}"
            )


if __name__ == "__main__":
    main()
