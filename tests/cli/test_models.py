"""`klingspec models` as a user sees it: the listing and one model's matrix with no synced
catalogue are golden files (tests/cases/cli/*.out; `--update-golden` rewrites them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from klingspec.cli import main
from klingspec.cli.report import Exit

CASES = Path(__file__).resolve().parent.parent / "cases" / "cli"


@pytest.mark.parametrize(
    ("name", "argv"),
    [
        ("models", ["models"]),
        ("models-omni", ["models", "kling-video-o3-omni"]),
        ("models-unknown", ["models", "kling-video-nope"]),
    ],
)
def test_models_output_is_golden(name, argv, capsys, update_golden):
    code = main(argv)
    out, err = capsys.readouterr()
    actual = f"$ klingspec {' '.join(argv)}\n{out}{err}exit {code}\n"
    golden = CASES / f"{name}.out"
    if update_golden:
        golden.write_text(actual, encoding="utf-8")
        return
    assert actual == golden.read_text(encoding="utf-8"), "stale golden: rerun with --update-golden"


def test_models_refuses_sync_options_without_sync(capsys):
    assert main(["models", "--sandbox"]) == Exit.USAGE
    assert "go with `klingspec models sync`" in capsys.readouterr().err
