"""Degenerate sizes: a script of very many shots is checked correctly, and the run pauses
the cyclic garbage collector (half the time of `check` on 290,000 shots went to its passes
over objects that are never in cycles), restoring it as it was found."""

from __future__ import annotations

import gc

from klingspec.loading import read_bytes
from klingspec.pipeline import Options, run_pipeline


def test_many_shots_are_checked_correctly_with_the_collector_paused_and_restored(tmp_path):
    path = tmp_path / "many.kvs"
    path.write_text('shot 1s "x"\n' * 5000, encoding="utf-8")
    seen: list[bool] = []

    def reader(name: str, limit: int = 8 * 1024 * 1024) -> bytes:
        seen.append(gc.isenabled())
        return read_bytes(name, limit)

    assert gc.isenabled()
    result = run_pipeline(str(path), Options(), reader=reader)
    assert gc.isenabled(), "the collector is resumed"
    assert seen and not any(seen), "paused while the pipeline runs"
    codes = {d.code for d in result.diagnostics}
    assert {"KVS-total-duration", "KVS-shots-beyond-kling"} <= codes, codes

    gc.disable()
    try:
        run_pipeline(str(path), Options(), reader=reader)
        assert not gc.isenabled(), "a collector found paused stays paused"
    finally:
        gc.enable()
