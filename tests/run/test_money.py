"""One money model: the plan, the run's summary and the ledger show the same figure for the
same render, rounded once per render; unknown is never $0; cancelled is counted apart."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from run_helpers import script

from klingspec.cli import main
from klingspec.cli.report import Exit
from klingspec.run import display
from klingspec.run.jobs import Job, Outcome
from klingspec.run.ledger import Ledger
from klingspec.run.states import RenderState


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_three_renders_whose_cents_round_up_cost_the_same_in_plan_run_and_ledger(tmp_path, capsys):
    # 7 s x $0.224 = $1.568 each: billed $1.57 each, $4.71 together (the sum of the exact
    # amounts, $4.704, would print as $4.70 — the one-cent gap this guards against).
    paths = [script(tmp_path, f'shot x 7s "take {n}"\n', f"{n}.kvs") for n in "abc"]
    code, out, _ = run_cli(capsys, "plan", "--format", "json", *paths)
    assert code == Exit.OK
    plan = json.loads(out)
    assert [p["total_usd"] for p in plan["plans"]] == [1.57, 1.57, 1.57] and plan["total_usd"] == 4.71
    code, out, _ = run_cli(capsys, "plan", *paths)
    assert "total: $4.71" in out
    code, out, err = run_cli(capsys, "run", "--sandbox", "--yes", *paths)
    assert code == Exit.OK, err
    assert "at the API this run would cost $4.71)" in out
    assert out.count("= $1.57") == 3 and out.count("→ new: $1.57") == 3  # the plan `run` shows first
    assert out.count("$1.57") == 9  # ... and once more each in the summary
    with Ledger() as ledger:
        assert sorted(r.estimate_usd for r in ledger.renders()) == ["1.57"] * 3


def test_an_unknown_price_is_unknown_in_the_run_summary_never_zero(tmp_path, capsys):
    path = script(tmp_path, 'model kling-video-o3-omni\nshot x 5s "a fox"\n')
    code, out, err = run_cli(capsys, "run", "--sandbox", "--yes", path)
    assert code == Exit.OK, err
    assert "$0.00" not in out
    assert "at the API this run would cost an unknown amount (1 render without a known cost)" in out
    code, out, _ = run_cli(capsys, "ls")
    assert "unknown" in out and "$0.00" not in out


def test_audio_shows_the_preview_and_the_most_it_may_cost(tmp_path, capsys):
    path = script(tmp_path, 'audio on\nshot x 5s "a fox barks"\n')
    code, out, _ = run_cli(capsys, "plan", path)
    assert code == Exit.OK and "= $1.12 (up to $1.40)" in re.sub(r"\s+", " ", out)
    code, out, _ = run_cli(capsys, "plan", "--format", "json", path)
    plan = json.loads(out)
    assert (plan["total_usd"], plan["max_total_usd"]) == (1.12, 1.4)
    assert any("the budget and the confirmation count the higher" in a for a in plan["assumptions"])
    code, _out, err = run_cli(capsys, "run", "--sandbox", "--yes", "--budget", "1.39", path)
    assert code == Exit.BUDGET_REFUSED and "up to $1.40" in err


def _outcome(tmp_path, state: RenderState, spent: str | None, *, reused: bool = False, name: str = "s") -> Outcome:
    body = {"model": "kling-video-o3-pro-reference-to-video", "prompt": name, "duration": 5}
    job = Job.create(str(tmp_path / f"{name}.kvs"), body, 1, f"sha256:{name}")
    return Outcome(job, 1, state, spent_usd=None if spent is None else Decimal(spent), reused=reused)


def test_the_closing_line_counts_cancelled_renders_apart_and_names_unknowns(tmp_path):
    outcomes = [
        _outcome(tmp_path, RenderState.DONE, "1.12", name="a"),
        _outcome(tmp_path, RenderState.DONE, "0", reused=True, name="b"),
        _outcome(tmp_path, RenderState.CANCELLED, "2.24", name="c"),
        _outcome(tmp_path, RenderState.INTERRUPTED, None, name="d"),
    ]
    line = display.spend_line(outcomes)
    assert line.startswith("new spend this run: $1.12 + an unknown amount (1 render without a known cost)")
    assert line.endswith("; cancelled — may be billed for work done: $2.24")
    assert display.spend_line(outcomes[:2]) == "new spend this run: $1.12"
    assert display._cost(outcomes[2]) == "$2.24 cancelled — may be billed for work done"
    assert display._cost(outcomes[1]) == "reused ($0 new)"


def test_the_run_summary_shows_the_ceiling_the_plan_showed(tmp_path, capsys):
    path = script(tmp_path, 'audio on\nshot x 5s "a fox barks"\n')
    code, out, err = run_cli(capsys, "run", "--sandbox", "--yes", path)
    assert code == Exit.OK, err
    flat = " ".join(out.split())
    assert "→ new: $1.12 (up to $1.40)" in flat  # the plan run shows first
    assert "$1.12 (up to $1.40)" in flat.split("renders", 1)[1]  # the summary row
    assert "at the API this run would cost $1.12 (up to $1.40))" in flat
    code, out, _ = run_cli(capsys, "ls")
    assert "$1.12 (up to $1.40) (sandbox: not charged)" in " ".join(out.split())


def test_status_and_ls_json_show_the_same_render_and_its_generations(tmp_path, capsys):
    import json

    path = script(tmp_path, 'shot x 5s "a fox"\n')
    assert run_cli(capsys, "run", "--sandbox", "--yes", path)[0] == Exit.OK
    code, out, _ = run_cli(capsys, "status", "--all", "--format", "json")
    assert code == Exit.OK
    status = json.loads(out)
    [render] = status["renders"]
    assert render["state"] == "done" and render["cost_usd"] == 1.12 and render["sandbox"] is True
    [generation] = render["generations"]
    assert generation["status"] == "succeeded" and generation["result_url"] and generation["error"] is None
    code, out, _ = run_cli(capsys, "ls", "--format", "json")
    [listed] = json.loads(out)["renders"]
    assert {k: v for k, v in listed.items() if k != "files"} == {k: v for k, v in render.items() if k != "generations"}
    assert listed["files"] and listed["files"][0]["path"].endswith(".mp4")
    code, out, _ = run_cli(capsys, "status", "--format", "json")  # in flight only: none
    assert json.loads(out) == {"renders": [], "missing": None}


def test_tables_never_cut_a_path_at_eighty_columns(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    deep = tmp_path / "a-rather-long-folder-name-for-renders" / "and-another-level"
    path = script(tmp_path, 'shot x 5s "a fox"\n')
    assert run_cli(capsys, "run", "--sandbox", "--yes", "--out", str(deep), path)[0] == Exit.OK
    for command in (["ls"], ["status", "--all"]):
        code, out, _ = run_cli(capsys, *command)
        assert code == Exit.OK and "…" not in out, out
    code, out, _ = run_cli(capsys, "ls")
    cells = "".join(line.split("│")[-2].strip() for line in out.splitlines() if line.count("│") > 2)
    assert str(deep) in cells  # the files column, read down, is the whole path
