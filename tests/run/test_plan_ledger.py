"""`plan` knows the ledger: each render is new (full price), a top-up (the shortfall), in
flight or already downloaded ($0 new), and a request listed twice is rendered once."""

from __future__ import annotations

import json
import os
import re

import pytest
from run_helpers import script, shots

from klingspec.cli import main
from klingspec.cli.report import Exit
from klingspec.run.ledger import Ledger, default_path
from klingspec.run.states import GenerationStatus, RenderState

API = "https://api.example/api"  # plan never touches the network: no server is needed


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def plan_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    code, out, err = run_cli(capsys, "plan", "--format", "json", *argv)
    assert code == Exit.OK, err
    return json.loads(out)


def test_without_a_ledger_every_request_is_new_and_plan_creates_none(tmp_path, capsys):
    path = script(tmp_path, shots(generations=2))  # 5 s x 2 = $2.24
    plan = plan_json(capsys, "--api-url", API, path)
    assert (plan["standing"], plan["new_usd"], plan["render_id"]) == ("new", 2.24, None)
    assert not os.path.exists(default_path())  # a plan is only a preview


def test_a_request_listed_twice_is_priced_once(tmp_path, capsys):
    path = script(tmp_path, shots(generations=2))
    plan = plan_json(capsys, "--api-url", API, path, path)
    assert [p["standing"] for p in plan["plans"]] == ["new", "duplicate"]
    assert (plan["total_usd"], plan["new_usd"]) == (2.24, 2.24)  # not $4.48
    code, out, _ = run_cli(capsys, "plan", "--api-url", API, path, path)
    assert "total: $2.24" in out and "new spend: $2.24" in out and "rendered once, $0.00 new" in out


def test_a_downloaded_render_is_reused_for_nothing_and_again_shows_the_full_price(tmp_path, capsys):
    path = script(tmp_path, shots(generations=2))
    assert run_cli(capsys, "run", "--sandbox", "--yes", path)[0] == Exit.OK
    plan = plan_json(capsys, "--sandbox", path)
    assert (plan["standing"], plan["new_usd"], plan["total_usd"]) == ("reuse", 0.0, 2.24)
    code, out, _ = run_cli(capsys, "plan", "--sandbox", path)
    text = re.sub(r"\s+", " ", out)
    assert "→ reuse: render #1 is done, its videos are reused: $0.00 new" in text and "new spend: $0.00" in text
    assert plan_json(capsys, "--sandbox", "--again", path)["new_usd"] == 2.24
    assert plan_json(capsys, "--api-url", API, path)["standing"] == "new"  # the API has not rendered it
    # what run --sandbox would do agrees with the plan: nothing new is sent
    code, out, _ = run_cli(capsys, "run", "--sandbox", "--yes", path)
    assert code == Exit.OK and "at the API this run would cost $0.00" in out


def _render(ledger: Ledger, plan: dict, state: RenderState, kept: int = 0, tmp_path=None) -> int:
    body = {"model": plan["model"], "prompt": "x"}  # the ledger matches on the request hash
    render = ledger.record_intent(
        request_hash=plan["request_hash"],
        api_url=API,
        script=plan["path"],
        model=plan["model"],
        body=body,
        generations=plan["generations"],
        mode="queue",
        out_dir=str(tmp_path),
        estimate_usd=str(plan["total_usd"]),
    )
    ledger.mark_sent(render.id)
    ids = [f"g{render.id}-{i}" for i in range(plan["generations"])]
    ledger.mark_submitted(render.id, ids)
    for gid in ids[:kept]:
        ledger.update_generation(gid, GenerationStatus.SUCCEEDED, "https://result")
        video = tmp_path / f"{gid}.mp4"
        video.write_bytes(b"video")
        ledger.record_file(gid, str(video), "sha256:x", 5)
    for gid in ids[kept:] if kept else []:
        ledger.update_generation(gid, GenerationStatus.FAILED, error="boom")
    ledger.set_state(render.id, state)
    return render.id


def test_a_render_in_flight_costs_nothing_new(tmp_path, capsys):
    path = script(tmp_path, shots(generations=2))
    first = plan_json(capsys, "--api-url", API, path)
    with Ledger() as ledger:
        render_id = _render(ledger, first, RenderState.SUBMITTED, tmp_path=tmp_path)
    plan = plan_json(capsys, "--api-url", API, path)
    assert (plan["standing"], plan["render_id"], plan["new_usd"]) == ("in flight", render_id, 0.0)
    code, out, _ = run_cli(capsys, "plan", "--api-url", API, path)
    assert f"→ in flight: render #{render_id} is submitted" in re.sub(r"\s+", " ", out)


def test_a_partial_render_is_topped_up_for_the_missing_generations_only(tmp_path, capsys):
    path = script(tmp_path, shots(generations=4))  # 5 s x 4 = $4.48
    first = plan_json(capsys, "--api-url", API, path)
    with Ledger() as ledger:
        render_id = _render(ledger, first, RenderState.PARTIAL, kept=1, tmp_path=tmp_path)
    plan = plan_json(capsys, "--api-url", API, path)
    assert (plan["standing"], plan["render_id"], plan["new_usd"]) == ("top-up", render_id, 3.36)  # 3 missing
    assert plan["total_usd"] == 4.48  # the request's full bill is still shown
    code, out, _ = run_cli(capsys, "plan", "--api-url", API, path)
    text = re.sub(r"\s+", " ", out)
    assert f"→ top-up: render #{render_id} kept 1 of 4 videos; the 3 missing: $3.36 new" in text
    assert "new spend: $3.36" in text
    assert plan_json(capsys, "--api-url", API, "--again", path)["new_usd"] == 4.48


def test_a_render_that_may_never_have_been_sent_is_priced_and_needs_consent(
    tmp_path, capsys, monkeypatch, sandbox_with
):
    """Found in review: a render left `unknown` (its answer lost) was shown as "$0.00 new",
    so `run` sent it again without asking. It is "unsent" now: priced, and consent needed."""
    from run_helpers import new_key, stats

    monkeypatch.setenv("OXEN_API_KEY", new_key())
    path = script(tmp_path, shots())  # $1.12
    with sandbox_with() as url:
        first = plan_json(capsys, "--api-url", url, path)
        with Ledger() as ledger:
            render = ledger.record_intent(
                request_hash=first["request_hash"],
                api_url=url,
                script=path,
                model=first["model"],
                body={"model": first["model"], "prompt": "x"},
                generations=1,
                mode="queue",
                out_dir=str(tmp_path),
                estimate_usd="1.12",
            )
            ledger.mark_sent(render.id)
            ledger.set_state(render.id, RenderState.UNKNOWN, "the answer was lost")
        plan = plan_json(capsys, "--api-url", url, path)
        assert (plan["standing"], plan["render_id"], plan["new_usd"]) == ("unsent", render.id, 1.12)
        code, out, err = run_cli(capsys, "run", "--api-url", url, path)  # no terminal, no --yes
        assert code == Exit.BUDGET_REFUSED and "nothing was sent" in err
        assert "→ unsent: render #1" in " ".join(out.split()) and stats(url)["total"] == 0


def test_a_run_sends_only_what_its_plan_allowed(tmp_path, base_url):
    """The ledger may change between the plan a run showed and its send: a request outside
    the consented set is not sent (its fresh intent is cancelled), whatever happened."""
    from run_helpers import job, new_key, oxen, runner

    path = script(tmp_path, shots())
    with Ledger(str(tmp_path / "l.sqlite")) as ledger, oxen(base_url, new_key()) as client:
        run = runner(client, ledger, base_url)
        run.consented = frozenset()  # the plan said nothing would be paid for
        [outcome] = run.run([job(path)])
        assert outcome.state == "failed" and "not sent" in (outcome.error or "")
        assert [r.state for r in ledger.renders()] == ["cancelled"]
