"""The check cache: an unchanged script is answered without the parser, with the same
output byte for byte; any change to a file the result came from is a miss."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import json, sys
from klingspec.cli import main
code = main({argv!r})
print(json.dumps({{"code": code, "parser": "lark" in sys.modules or "klingspec.syntax" in sys.modules}}))
"""


def check(argv: list[str], cwd: Path) -> tuple[dict, str, str]:
    """`klingspec check` in a fresh process: (exit code and whether the parser loaded, stdout, stderr)."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=["check", *argv])], cwd=cwd, capture_output=True, text=True, check=True
    )
    *out, last = done.stdout.splitlines()
    return json.loads(last), "\n".join(out), done.stderr


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "lib.kvs").write_text('image cafe = "https://example.com/cafe.jpg"\n', encoding="utf-8")
    (tmp_path / "scene.kvs").write_text(
        'use "lib.kvs"\nlet mood = "dusk"\nshot a 5s "@cafe at {{ mood }}"\nshot b 20s "too long"\n', encoding="utf-8"
    )
    return tmp_path


@pytest.mark.parametrize("fmt", ["text", "json", "sarif"])
def test_an_unchanged_script_is_answered_from_the_cache_with_the_same_output(project: Path, fmt: str) -> None:
    first, out1, err1 = check(["--format", fmt, "scene.kvs"], project)
    second, out2, err2 = check(["--format", fmt, "scene.kvs"], project)
    assert first == {"code": 1, "parser": True}
    assert second == {"code": 1, "parser": False}
    assert (out2, err2) == (out1, err1)
    assert "KVS-shot-duration" in out1


def test_a_changed_used_file_is_a_miss(project: Path) -> None:
    check(["scene.kvs"], project)
    (project / "lib.kvs").write_text('image cafe = "ftp://example.com/cafe.jpg"\n', encoding="utf-8")
    again, out, _ = check(["scene.kvs"], project)
    assert again["parser"] is True
    assert "KVS-uri-scheme" in out


def test_a_used_file_that_appears_later_is_a_miss(tmp_path: Path) -> None:
    (tmp_path / "scene.kvs").write_text('use "later.kvs"\nshot a 5s "x"\n', encoding="utf-8")
    first, out1, _ = check(["scene.kvs"], tmp_path)
    assert "KVS-file-not-found" in out1
    (tmp_path / "later.kvs").write_text('let x = "1"\n', encoding="utf-8")
    second, out2, _ = check(["scene.kvs"], tmp_path)
    assert second == {"code": 0, "parser": True}
    assert "KVS-file-not-found" not in out2


def test_vars_files_and_options_are_part_of_the_key(project: Path) -> None:
    vars_file = project / "v.json"
    vars_file.write_text('{"mood": "noon"}', encoding="utf-8")
    check(["--vars", "v.json", "scene.kvs"], project)
    assert check(["--vars", "v.json", "scene.kvs"], project)[0]["parser"] is False
    vars_file.write_text('{"mood": "noon", "unused": 1}', encoding="utf-8")
    changed, out, _ = check(["--vars", "v.json", "scene.kvs"], project)
    assert changed["parser"] is True and "KVS-var-unused" in out
    other, _, _ = check(["--var", "mood=night", "scene.kvs"], project)
    assert other["parser"] is True


def test_no_cache_neither_reads_nor_writes(project: Path, klingspec_home: str) -> None:
    check(["--no-cache", "scene.kvs"], project)
    assert not os.path.exists(os.path.join(klingspec_home, "cache"))
    check(["scene.kvs"], project)
    assert check(["--no-cache", "scene.kvs"], project)[0]["parser"] is True


def test_a_corrupt_entry_is_a_miss_not_an_error(project: Path, klingspec_home: str) -> None:
    _, out1, _ = check(["scene.kvs"], project)
    for folder, _, names in os.walk(os.path.join(klingspec_home, "cache")):
        for name in names:
            Path(folder, name).write_bytes(b"not a pickle")
    result, out2, _ = check(["scene.kvs"], project)
    assert result == {"code": 1, "parser": True}
    assert out2 == out1


def test_an_internal_error_is_never_cached(project: Path, klingspec_home: str) -> None:
    from klingspec.cli.cache import CheckCache, RecordingReader
    from klingspec.diagnostics import Diagnostic
    from klingspec.pipeline import run_pipeline
    from klingspec.source import Source

    cache = CheckCache.open()
    reader = RecordingReader()
    path = str(project / "scene.kvs")
    run_pipeline(path, reader=reader)
    internal = Diagnostic.of("KVS-internal", Source(path, "").span(0), "klingspec failed: boom")
    cache.put(path, (), (), reader, [internal])
    assert cache.get(path, (), ()) is None
    cache.put(path, (), (), reader, [])
    assert cache.get(path, (), ()) == ()
