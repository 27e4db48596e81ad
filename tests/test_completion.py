"""Shell completion through click's own mechanism, via the real `klingspec` entry point.

The README tells bash, zsh and fish users to load `_KLINGSPEC_COMPLETE=<shell>_source
klingspec`; the shell then runs `klingspec` again with `_KLINGSPEC_COMPLETE=<shell>_complete`
and the words typed so far (COMP_WORDS, COMP_CWORD). These tests do what the shell does,
in a subprocess, and one of them runs bash itself on the script klingspec prints.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from klingspec.cli import COMMANDS

ENTRY = Path(sys.executable).with_name("klingspec")
# the console script pip wrote beside this interpreter; else the module, as `python -m klingspec`
KLINGSPEC = [str(ENTRY)] if ENTRY.is_file() else [sys.executable, "-m", "klingspec"]


def complete(shell: str, words: str, cword: int | str, tmp_path: Path) -> str:
    env = {
        **os.environ,
        "_KLINGSPEC_COMPLETE": f"{shell}_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(cword),
        "KLINGSPEC_HOME": str(tmp_path),  # no synced catalogue: the built-in models only
    }
    done = subprocess.run(KLINGSPEC, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return done.stdout


def bash_values(output: str) -> list[str]:
    return [line.split(",", 1)[1] for line in output.splitlines()]


def test_bash_completes_a_command_name(tmp_path):
    assert bash_values(complete("bash", "klingspec ch", 1, tmp_path)) == ["check"]


def test_bash_lists_every_command_in_the_contracts_order(tmp_path):
    assert bash_values(complete("bash", "klingspec ", 1, tmp_path)) == list(COMMANDS)


def test_bash_completes_options(tmp_path):
    assert bash_values(complete("bash", "klingspec check --no", 2, tmp_path)) == ["--no-cache"]


def test_model_ids_complete(tmp_path):
    assert bash_values(complete("bash", "klingspec models kling-video-o3-o", 2, tmp_path)) == ["kling-video-o3-omni"]
    assert bash_values(complete("bash", "klingspec models sy", 2, tmp_path)) == ["sync"]


def test_codes_complete_for_explain(tmp_path):
    assert bash_values(complete("bash", "klingspec explain KVS-no-", 2, tmp_path)) == ["KVS-no-shots"]


def test_zsh_gets_names_with_their_help(tmp_path):
    lines = complete("zsh", "klingspec ch", 1, tmp_path).splitlines()
    assert lines[:2] == ["plain", "check"]
    assert lines[2].startswith("Parse, expand, bind and check")


def test_fish_gets_names_with_their_help(tmp_path):
    [line] = complete("fish", "klingspec ch", "ch", tmp_path).splitlines()
    assert line.startswith("plain,check\tParse, expand")


@pytest.mark.parametrize(
    "shell, marker",
    [
        ("bash", "complete -o nosort -F _klingspec_completion klingspec"),
        ("zsh", "#compdef klingspec"),
        ("fish", "complete --no-files --command klingspec"),
    ],
)
def test_each_shell_gets_its_script(shell, marker):
    env = {**os.environ, "_KLINGSPEC_COMPLETE": f"{shell}_source"}
    done = subprocess.run(KLINGSPEC, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and marker in done.stdout


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash here")
def test_bash_itself_completes_with_the_readme_line(tmp_path):
    """The README's line, evaluated by bash; then what bash does on `klingspec ch<TAB>`."""
    script = (
        'eval "$(_KLINGSPEC_COMPLETE=bash_source klingspec)"\n'
        "COMP_WORDS=(klingspec ch); COMP_CWORD=1\n"
        "_klingspec_completion klingspec\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = {**os.environ, "KLINGSPEC_HOME": str(tmp_path)}
    env["PATH"] = os.pathsep.join([str(ENTRY.parent), env.get("PATH", "")])
    if not ENTRY.is_file():
        pytest.skip("no `klingspec` console script beside this interpreter")
    done = subprocess.run(["bash", "--norc", "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (0, "check\n", "")
