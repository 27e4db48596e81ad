"""Pipes, devices and other special files are refused with a diagnostic, never read (a
read would block for ever); `use` takes .kvs scripts only (issue 14, items 9 and 12)."""

from __future__ import annotations

import os

import pytest
from helpers import codes, run, write

from klingspec.pipeline import Options, run_pipeline

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")


def test_a_used_pipe_is_refused_not_waited_for(tmp_path):
    os.mkfifo(tmp_path / "lib.kvs")
    result = run(tmp_path, 'use "lib.kvs"\nshot a 5s "x"\n')
    [d] = [d for d in result.diagnostics if d.code == "KVS-file-unreadable"]
    assert "not a regular file" in d.message


def test_a_pipe_named_like_a_script_and_a_pipe_of_vars_are_refused(tmp_path):
    os.mkfifo(tmp_path / "x.kvs")
    assert "KVS-file-unreadable" in codes(run_pipeline(str(tmp_path / "x.kvs")))
    os.mkfifo(tmp_path / "vars.json")
    path = write(tmp_path, 'let a = "b"\nshot a 5s "{{ a }}"\n')
    result = run_pipeline(path, Options(var_files=(str(tmp_path / "vars.json"),)))
    assert "KVS-vars-file" in codes(result)


def test_use_takes_kvs_scripts_only(tmp_path):
    secret = tmp_path / "environ"
    secret.write_text("OXEN_API_KEY=sk-secret\n", encoding="utf-8")
    result = run(tmp_path, f'use "{secret}"\nshot a 5s "x"\n')
    [d] = [d for d in result.diagnostics if d.code == "KVS-file-unreadable"]
    assert "`use` takes .kvs scripts only" in d.message
    assert not any("sk-secret" in (x.message + str(x.help)) for x in result.diagnostics)
