"""`ls --spend`: what the ledger says was spent, per day and per script, sandbox apart."""

from __future__ import annotations

import json
import time

import pytest
from run_helpers import MODEL, script, shots

from klingspec.cli import main
from klingspec.cli.report import Exit
from klingspec.run.ledger import Ledger, Render
from klingspec.run.spending import column_of
from klingspec.run.states import RenderState

API = "https://api.example/api"
DAY = 86_400.0


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _render(
    ledger: Ledger, name: str, usd: str | None, state: RenderState, *, ids: int = 1, sent: float | None = None
) -> Render:
    body = {"model": MODEL, "prompt": name, "duration": 5}
    render = ledger.record_intent(
        request_hash=f"sha256:{name}",
        api_url=API,
        script=f"{name.split('-')[0]}.kvs",
        model=MODEL,
        body=body,
        generations=max(ids, 1),
        mode="queue",
        out_dir="renders",
        estimate_usd=usd,
    )
    if state != RenderState.INTENT:
        ledger.mark_sent(render.id)
        if sent is not None:
            ledger.db.execute("UPDATE renders SET sent_at=? WHERE id=?", (sent, render.id))
        if ids:
            ledger.mark_submitted(render.id, [f"{name}-gen-{i}" for i in range(ids)])
        ledger.set_state(render.id, state)
    latest = ledger.render(render.id)
    assert latest is not None
    return latest


def test_spend_per_day_and_script_counts_what_reached_the_api(tmp_path, capsys):
    today = time.time()
    yesterday = today - DAY
    with Ledger() as ledger:
        _render(ledger, "a-1", "1.12", RenderState.DONE, sent=yesterday)
        _render(ledger, "a-2", "2.24", RenderState.SUBMITTED, sent=today)  # in flight: committed
        _render(ledger, "b-1", "1.57", RenderState.DONE, sent=today)
        _render(ledger, "b-2", "3.36", RenderState.CANCELLED, sent=today)  # may be billed
        _render(ledger, "b-3", None, RenderState.DONE, sent=today)  # unknown price: named, not $0
        _render(ledger, "c-1", "9.99", RenderState.INTENT)  # never sent
        _render(ledger, "c-2", "9.99", RenderState.FAILED, ids=0, sent=today)  # refused at the API
    path = script(tmp_path, shots())
    assert run_cli(capsys, "run", "--sandbox", "--yes", path)[0] == Exit.OK
    code, out, _ = run_cli(capsys, "ls", "--spend", "--format", "json")
    assert code == Exit.OK
    report = json.loads(out)
    real = report["real"]
    assert real["total"] == {
        "label": "total",
        "renders": 5,
        "spent_usd": 4.93,  # 1.12 + 2.24 + 1.57
        "unknown_price_renders": 1,
        "may_be_billed_usd": 3.36,
        "may_be_billed_unknown_price_renders": 0,
    }
    days = {d["day"]: d for d in real["days"]}
    assert days[time.strftime("%Y-%m-%d", time.localtime(yesterday))]["spent_usd"] == 1.12
    assert days[time.strftime("%Y-%m-%d", time.localtime(today))]["spent_usd"] == 3.81
    scripts = {s["script"]: s for s in real["scripts"]}
    assert set(scripts) == {"a.kvs", "b.kvs"}  # c.kvs never reached the API
    assert (scripts["a.kvs"]["spent_usd"], scripts["b.kvs"]["may_be_billed_usd"]) == (3.36, 3.36)
    sandbox = report["sandbox"]["total"]
    assert (sandbox["renders"], sandbox["spent_usd"]) == (1, 1.12)  # kept apart, never mixed in
    code, out, _ = run_cli(capsys, "ls", "--spend")
    assert "$4.93 + 1 unknown" in out and "$3.36" in out and "sandbox (nothing was charged): 1 render" in out
    code, out, _ = run_cli(capsys, "ls")
    assert "$1.12 (sandbox: not charged)" in out and "cancelled — may be billed for work done" in out
    code, out, _ = run_cli(capsys, "status", "--all")
    assert "(sandbox: not charged)" in out


def test_an_empty_ledger_has_spent_nothing(capsys):
    code, out, _ = run_cli(capsys, "ls", "--spend")
    assert code == Exit.OK and "nothing was sent" in out


def test_an_intent_cancelled_before_it_was_sent_costs_nothing(tmp_path):
    with Ledger(str(tmp_path / "l.sqlite")) as ledger:
        render = ledger.record_intent(
            request_hash="sha256:x",
            api_url=API,
            script="x.kvs",
            model=MODEL,
            body={},
            generations=1,
            mode="queue",
            out_dir="renders",
            estimate_usd="1.12",
        )
        ledger.set_state(render.id, RenderState.CANCELLED, "cancelled before it was sent")
        assert column_of(ledger.render(render.id), 0) is None


@pytest.mark.parametrize(
    ("state", "ids", "column"),
    [
        (RenderState.INTENT, 0, None),
        (RenderState.SENT, 0, "maybe"),
        (RenderState.UNKNOWN, 0, "maybe"),
        (RenderState.SUBMITTED, 1, "spent"),
        (RenderState.DONE, 2, "spent"),
        (RenderState.FAILED, 0, None),
        (RenderState.FAILED, 2, "spent"),
        (RenderState.CANCELLED, 1, "maybe"),
    ],
)
def test_each_state_has_one_column(tmp_path, state, ids, column):
    with Ledger(str(tmp_path / "l.sqlite")) as ledger:
        render = _render(ledger, "x", "1.12", state, ids=ids)
        assert column_of(render, ids) == column
