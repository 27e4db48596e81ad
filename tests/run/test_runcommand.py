"""runcommand.py: `klingspec run/status/ls/cancel` end to end, in-process, against the sandbox."""

from __future__ import annotations

import json
import os

from run_helpers import my_generations, new_key, oxen, posts, script, shots, stats

from klingspec.cli import main
from klingspec.cli.report import Exit
from klingspec.run.ledger import Ledger, default_path
from klingspec.sandbox import FaultRule


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_sandbox_run_then_rerun_reattaches(tmp_path, capsys):
    path = script(tmp_path, shots(generations=2))
    code, out, err = run_cli(capsys, "run", "--sandbox", "--yes", path)
    assert code == Exit.OK, err
    videos = sorted(os.listdir(tmp_path / "renders"))
    assert len(videos) == 2 and all(v.endswith(".mp4") for v in videos)
    assert "sandbox: nothing was charged (at the API this run would cost $2.24)" in out
    code, out, err = run_cli(capsys, "run", "--sandbox", "--yes", path)
    assert code == Exit.OK, err
    assert "reused" in out and "at the API this run would cost $0.00" in out
    assert sorted(os.listdir(tmp_path / "renders")) == videos
    with Ledger() as ledger:
        assert len(ledger.renders()) == 1
    code, out, err = run_cli(capsys, "run", "--sandbox", "--yes", "--again", path)
    assert code == Exit.OK, err
    assert len(os.listdir(tmp_path / "renders")) == 4  # --again never overwrites the first take
    with Ledger() as ledger:
        assert len(ledger.renders()) == 2


def test_api_run_queue_and_sync(tmp_path, capsys, monkeypatch, sandbox_with):
    monkeypatch.setenv("OXEN_API_KEY", new_key())
    a = script(tmp_path, shots(prompt="first"), "a.kvs")
    b = script(tmp_path, shots(prompt="second", fmt="b64_json"), "b.kvs")
    with sandbox_with() as url:
        code, out, err = run_cli(capsys, "run", "--api-url", url, "--yes", a, b)
        assert code == Exit.OK, err
        assert stats(url)["requests"]["POST /api/ai/queue"] == 2
        c = script(tmp_path, shots(prompt="third"), "c.kvs")
        code, _out, err = run_cli(capsys, "run", "--api-url", url, "--yes", "--sync", c)
        assert code == Exit.OK, err
        assert stats(url)["requests"]["POST /api/ai/videos/generate"] == 1
    assert len(os.listdir(tmp_path / "renders")) == 3


def test_dry_run_prints_bodies_and_sends_nothing(tmp_path, capsys, monkeypatch, sandbox_with):
    monkeypatch.setenv("OXEN_API_KEY", new_key())
    path = script(tmp_path, shots(generations=3))
    with sandbox_with() as url:
        code, out, err = run_cli(capsys, "run", "--api-url", url, "--dry-run", path)
        assert code == Exit.OK
        assert stats(url)["total"] == 0
    body = json.loads(out[out.index("{") :])
    assert body["num_generations"] == 3 and body["prompt"] == "A red paper boat drifts"
    assert "POST /ai/queue" in out and "nothing was sent" in err
    assert not os.path.exists(default_path())


def test_budget_refusal_sends_nothing(tmp_path, capsys, monkeypatch, sandbox_with):
    monkeypatch.setenv("OXEN_API_KEY", new_key())
    path = script(tmp_path, shots(generations=2))  # 2 x 5 s x $0.224 = $2.24
    with sandbox_with() as url:
        code, _out, err = run_cli(capsys, "run", "--api-url", url, "--yes", "--budget", "2.00", path)
        assert code == Exit.BUDGET_REFUSED
        assert "budget" in err and "$2.24" in err
        assert posts(url) == 0 and stats(url)["total"] == 0
        with Ledger() as ledger:
            assert ledger.renders() == []


def test_budget_counts_renders_in_flight(tmp_path, capsys, monkeypatch, sandbox_with):
    key = new_key()
    monkeypatch.setenv("OXEN_API_KEY", key)
    path = script(tmp_path, shots())  # $1.12
    with sandbox_with(processing_seconds=30) as url:
        with Ledger() as ledger, oxen(url, key) as client:  # another render already in flight there
            other = {"model": "kling-video-o3-pro-reference-to-video", "prompt": "x", "duration": 10}
            render = ledger.record_intent(
                request_hash="sha256:other",
                api_url=url,
                script="other.kvs",
                model=other["model"],
                body=other,
                generations=1,
                mode="queue",
                out_dir=str(tmp_path),
                estimate_usd="2.24",
            )
            ledger.mark_sent(render.id)
            ledger.mark_submitted(
                render.id, client.enqueue({"model": "kling-video-o3-pro-reference-to-video", "prompt": "x"}, 1)
            )
        before = posts(url)
        code, out, err = run_cli(capsys, "run", "--api-url", url, "--yes", "--budget", "3.35", path)
        assert code == Exit.BUDGET_REFUSED, err
        assert "$2.24 already in flight" in err
        assert posts(url) == before
        # the same render in flight at a *different* API does not count here
        with Ledger() as ledger:
            ledger.db.execute("UPDATE renders SET api_url='https://elsewhere.example/api'")
        code, _out, err = run_cli(capsys, "run", "--api-url", url, "--yes", "--budget", "4.00", "--dry-run", path)
        assert code == Exit.OK


def test_saved_plan_runs_exactly_those_bodies_and_refuses_changes(tmp_path, capsys, monkeypatch, sandbox_with):
    key = new_key()
    monkeypatch.setenv("OXEN_API_KEY", key)
    monkeypatch.chdir(tmp_path)
    script(tmp_path, shots(prompt="planned shot", extra="aspect 9:16"), "s.kvs")
    code, out, err = run_cli(capsys, "plan", "-o", "plan.json", "s.kvs")
    assert code == Exit.OK, err
    saved = json.loads((tmp_path / "plan.json").read_text())["requests"][0]["body"]
    with sandbox_with() as url:
        code, out, err = run_cli(capsys, "run", "--api-url", url, "--yes", "plan.json")
        assert code == Exit.OK, err
        [gen] = my_generations(url, key)
        assert gen["aspect_ratio"] == saved["aspect_ratio"] == "9:16"
        assert gen["duration"] == saved["duration"]
        assert "$1.12" in out
        (tmp_path / "s.kvs").write_text(shots(prompt="changed shot"))
        before = stats(url)["total"]
        code, out, err = run_cli(capsys, "run", "--api-url", url, "--yes", "plan.json")
        assert code == Exit.SCRIPT_ERRORS
        assert "changed since plan.json" in err
        assert stats(url)["total"] == before


def test_failed_generation_shows_the_api_message(tmp_path, capsys, monkeypatch, sandbox_with):
    monkeypatch.setenv("OXEN_API_KEY", new_key())
    path = script(tmp_path, shots())
    rule = FaultRule("fail=Insufficient credits", path="/api/ai/queue", method="POST", times=1)
    with sandbox_with(faults=(rule,)) as url:
        code, out, err = run_cli(capsys, "run", "--api-url", url, "--yes", path)
    assert code == Exit.API_FAILURE
    assert "Insufficient credits" in out + err


def test_sync_validation_error_shows_the_api_message(tmp_path, capsys, monkeypatch, sandbox_with):
    monkeypatch.setenv("OXEN_API_KEY", new_key())
    path = script(tmp_path, shots())
    rule = FaultRule(
        "fail=Total shot duration (16s) exceeds maximum allowed (15s).",
        path="/api/ai/videos/generate",
        method="POST",
        times=1,
    )
    with sandbox_with(faults=(rule,)) as url:
        code, out, err = run_cli(capsys, "run", "--api-url", url, "--yes", "--sync", path)
    assert code == Exit.API_FAILURE
    assert "exceeds maximum allowed" in out + err


def test_wrong_key_is_an_api_failure(tmp_path, capsys, monkeypatch, sandbox_with):
    monkeypatch.setenv("OXEN_API_KEY", new_key())
    path = script(tmp_path, shots())
    with sandbox_with(api_key="the-only-valid-key") as url:
        code, _out, err = run_cli(capsys, "run", "--api-url", url, "--yes", path)
    assert code == Exit.API_FAILURE
    assert "(401): You must be authenticated" in err and "OXEN_API_KEY" in err


def test_missing_key_is_a_usage_error(tmp_path, capsys):
    code, _out, err = run_cli(capsys, "run", "--api-url", "http://127.0.0.1:9/api", "--yes", script(tmp_path, shots()))
    assert code == Exit.USAGE and "OXEN_API_KEY" in err


def _slow_render(tmp_path, url: str, key: str, request_hash: str):
    """A render of two generations the sandbox is still working on, recorded in the ledger
    as `run` records one: what `status` and `cancel` act on."""
    with Ledger() as ledger, oxen(url, key) as client:
        render = ledger.record_intent(
            request_hash=request_hash,
            api_url=url,
            script="slow.kvs",
            model="kling-video-o3-pro-reference-to-video",
            body={},
            generations=2,
            mode="queue",
            out_dir=str(tmp_path),
            estimate_usd="2.24",
        )
        ledger.mark_sent(render.id)
        ids = client.enqueue({"model": "kling-video-o3-pro-reference-to-video", "prompt": "slow"}, 2)
        ledger.mark_submitted(render.id, ids)
    return render, ids


def test_status_ls_and_cancel(tmp_path, capsys, monkeypatch, sandbox_with):
    key = new_key()
    monkeypatch.setenv("OXEN_API_KEY", key)
    with sandbox_with(processing_seconds=30) as url:
        render, ids = _slow_render(tmp_path, url, key, "sha256:abc")
        code, out, err = run_cli(capsys, "status", "--refresh", "--api-url", url)
        assert code == Exit.OK, err
        assert "slow.kvs" in out and "submitted" in out
        code, out, err = run_cli(capsys, "cancel", str(render.id), "--api-url", url)
        assert code == Exit.OK, err
        assert [g["status"] for g in my_generations(url, key)] == ["cancelled", "cancelled"]
        with Ledger() as ledger:
            assert ledger.render(render.id).state == "cancelled"
        code, out, err = run_cli(capsys, "status")
        assert "no renders in flight" in out
        code, out, err = run_cli(capsys, "cancel", str(render.id))
        assert code == Exit.OK and "nothing to cancel" in out
        code, out, err = run_cli(capsys, "cancel", "no-such-id")
        assert code == Exit.API_FAILURE
        code, out, err = run_cli(capsys, "ls")
        assert code == Exit.OK and "slow.kvs" in out and "cancelled" in out


def test_cancel_json_says_what_happened_to_each_generation(tmp_path, capsys, monkeypatch, sandbox_with):
    import json

    key = new_key()
    monkeypatch.setenv("OXEN_API_KEY", key)
    with sandbox_with(processing_seconds=30) as url:
        render, ids = _slow_render(tmp_path, url, key, "sha256:def")
        code, out, err = run_cli(capsys, "cancel", str(render.id), "--format", "json", "--api-url", url)
        assert code == Exit.OK, err
        said = json.loads(out)
        assert said["target"] == str(render.id) and said["render"] == render.id and said["state"] == "cancelled"
        assert sorted(g["generation_id"] for g in said["generations"]) == sorted(ids)
        assert {g["status"] for g in said["generations"]} == {"cancelled"} and said["error"] is None
        code, out, _ = run_cli(capsys, "cancel", str(render.id), "--format", "json")
        assert code == Exit.OK and "nothing to cancel" in json.loads(out)["message"]
        code, out, err = run_cli(capsys, "cancel", "no-such-id", "--format", "json")
        assert code == Exit.API_FAILURE and json.loads(out)["error"].startswith("no render or generation")
        assert "no render or generation" in err


def test_the_key_goes_only_to_the_configured_api(tmp_path, capsys, monkeypatch, sandbox_with):
    """A render the ledger says was sent to another API is neither refreshed nor cancelled
    with the key, unless that API is the one configured (--api-url)."""
    key = new_key()
    monkeypatch.setenv("OXEN_API_KEY", key)
    with sandbox_with(processing_seconds=30) as url:
        render, _ = _slow_render(tmp_path, url, key, "sha256:elsewhere")
        asked = stats(url)["total"]
        code, _, err = run_cli(capsys, "status", "--refresh")  # configured: the default API
        assert code == Exit.OK and f"was sent to {url}" in err and "not refreshed" in err
        code, _, err = run_cli(capsys, "cancel", str(render.id))
        assert code == Exit.API_FAILURE and f"pass --api-url {url}" in err
        assert stats(url)["total"] == asked  # nothing reached that API with the key
        assert run_cli(capsys, "cancel", str(render.id), "--api-url", url)[0] == Exit.OK


def test_ls_lists_files(tmp_path, capsys):
    path = script(tmp_path, shots())
    assert run_cli(capsys, "run", "--sandbox", "--yes", path)[0] == Exit.OK
    code, out, _err = run_cli(capsys, "ls", "-n", "5")
    assert code == Exit.OK and "scene.kvs" in out and "done" in out and ".mp4" in out


def test_without_a_terminal_yes_or_budget_nothing_is_sent(tmp_path, capsys, monkeypatch, sandbox_with):
    """No one to ask (the test's stdin and stderr are not terminals), no --yes, no --budget:
    a spend refusal, exit 4, and a message that says how to allow it."""
    monkeypatch.setenv("OXEN_API_KEY", new_key())
    path = script(tmp_path, shots())  # $1.12
    with sandbox_with() as url:
        code, _out, err = run_cli(capsys, "run", "--api-url", url, path)
        assert code == Exit.BUDGET_REFUSED, err
        assert (
            "klingspec: nothing was sent: this would spend $1.12 at the API, and there is no terminal to "
            "confirm it; pass --yes to allow it, or --budget USD to cap it"
        ) in err
        assert stats(url)["total"] == 0
        with Ledger() as ledger:
            assert ledger.renders() == []


def test_an_unknown_price_is_refused_as_unknown_never_zero(tmp_path, capsys, monkeypatch, sandbox_with):
    monkeypatch.setenv("OXEN_API_KEY", new_key())
    path = script(tmp_path, shots(extra="model kling-video-o3-omni"))  # no published price
    with sandbox_with() as url:
        code, _out, err = run_cli(capsys, "run", "--api-url", url, path)
        assert code == Exit.BUDGET_REFUSED, err
        refusal = next(line for line in err.splitlines() if "nothing was sent" in line)
        assert "would spend an unknown amount at the API" in refusal and "$0" not in refusal
        assert stats(url)["total"] == 0


def test_yes_or_a_budget_is_consent_without_a_terminal(tmp_path, capsys, monkeypatch, sandbox_with):
    monkeypatch.setenv("OXEN_API_KEY", new_key())
    a = script(tmp_path, shots(prompt="first"), "a.kvs")
    b = script(tmp_path, shots(prompt="second"), "b.kvs")
    with sandbox_with() as url:
        code, _out, err = run_cli(capsys, "run", "--api-url", url, "--yes", a)
        assert code == Exit.OK, err
        assert posts(url) == 1 and "nothing was sent" not in err
        code, _out, err = run_cli(capsys, "run", "--api-url", url, "--budget", "100", b)
        assert code == Exit.OK, err
        assert posts(url) == 2 and "nothing was sent" not in err


def test_a_run_that_spends_nothing_new_needs_no_consent(tmp_path, capsys, monkeypatch, sandbox_with):
    monkeypatch.setenv("OXEN_API_KEY", new_key())
    path = script(tmp_path, shots())
    with sandbox_with() as url:
        assert run_cli(capsys, "run", "--api-url", url, "--yes", path)[0] == Exit.OK
        before = posts(url)
        code, out, err = run_cli(capsys, "run", "--api-url", url, path)  # reattaches: free
        assert code == Exit.OK, err
        assert "reused" in out and posts(url) == before


def test_the_sandbox_never_asks(tmp_path, capsys):
    code, _out, err = run_cli(capsys, "run", "--sandbox", script(tmp_path, shots()))
    assert code == Exit.OK, err
    assert "nothing was sent" not in err and "[y/N]" not in err
    assert len(os.listdir(tmp_path / "renders")) == 1


def test_a_sandbox_render_that_died_with_its_process_is_rendered_anew(tmp_path, capsys):
    from run_helpers import job

    from klingspec.cli.renders import SANDBOX_LEDGER_URL

    path = script(tmp_path, shots())
    j = job(path)
    with Ledger() as ledger:
        render = ledger.record_intent(
            request_hash=j.request_hash,
            api_url=SANDBOX_LEDGER_URL,
            script=path,
            model=j.model,
            body=j.body,
            generations=1,
            mode="queue",
            out_dir=j.out_dir,
            estimate_usd="1.12",
        )
        ledger.mark_sent(render.id)
        ledger.mark_submitted(render.id, ["00000000-0000-4000-8000-000000000000"])
    code, _out, err = run_cli(capsys, "run", "--sandbox", "--yes", path)
    assert code == Exit.OK, err
    with Ledger() as ledger:
        old, new = ledger.render(render.id), ledger.renders()[0]
        assert old.state == "failed" and "sandbox" in old.error
        assert new.id != old.id and new.state == "done"


def test_a_budget_that_is_not_a_finite_amount_is_a_usage_error(tmp_path, capsys):
    path = script(tmp_path, shots())
    for budget in ("nan", "NaN", "inf", "-inf", "-1"):
        for command in (["run", "--sandbox"], ["watch", "--run", "--sandbox"]):
            code, _out, err = run_cli(capsys, *command, "--budget", budget, path)
            assert code == Exit.USAGE and "finite amount" in err, (command, budget, err)
    code, _out, err = run_cli(capsys, "plan", "--budget", "nan", path)  # plan spends nothing: no such option
    assert code == Exit.USAGE and "--budget" in err, err


def test_a_hand_broken_saved_plan_is_a_clear_error_not_a_crash(tmp_path, capsys):
    broken = tmp_path / "plan.json"
    for payload in (
        {"format": "klingspec-plan/1"},
        {"format": "klingspec-plan/1", "requests": [{"path": "x.kvs"}]},
        {
            "format": "klingspec-plan/1",
            "requests": [
                {"path": "x", "inputs": {}, "request_hash": "h", "num_generations": 1, "body": {"duration": "five"}}
            ],
        },
    ):
        broken.write_text(json.dumps(payload), encoding="utf-8")
        code, _out, err = run_cli(capsys, "run", "--sandbox", "--yes", str(broken))
        assert code == Exit.USAGE and "not a complete klingspec plan" in err, err


def test_a_tampered_saved_plan_is_refused_before_anything_is_sent(tmp_path, capsys, monkeypatch, sandbox_with):
    """A plan's `path` decides where videos are written: a plan edited by hand (its
    `path`, a body, an input) is refused, and so is one whose `path` is not among the
    inputs it hashed, even with its content hash recomputed."""
    from klingspec.cli.plans import _content_hash

    monkeypatch.setenv("OXEN_API_KEY", new_key())
    monkeypatch.chdir(tmp_path)
    script(tmp_path, shots(), "s.kvs")
    assert run_cli(capsys, "plan", "-o", "plan.json", "s.kvs")[0] == Exit.OK
    good = json.loads((tmp_path / "plan.json").read_text())
    outside = tmp_path / "elsewhere" / "s.kvs"

    def edited(change, rehash=False):
        plan = json.loads(json.dumps(good))
        change(plan["requests"][0])
        if rehash:
            plan["sha256"] = _content_hash(plan["requests"])
        return plan

    tampered = [
        (edited(lambda r: r.update(path=str(outside))), "content hash does not match"),
        (edited(lambda r: r["body"].update(duration=10)), "content hash does not match"),
        ({k: v for k, v in good.items() if k != "sha256"}, "content hash does not match"),
        (edited(lambda r: r.update(path=str(outside)), rehash=True), "script is not among its inputs"),
    ]
    with sandbox_with() as url:
        for plan, words in tampered:
            (tmp_path / "bad.json").write_text(json.dumps(plan), encoding="utf-8")
            code, _out, err = run_cli(capsys, "run", "--api-url", url, "--yes", "bad.json")
            assert code == Exit.SCRIPT_ERRORS and "edited by hand" in err and words in err, err
        assert stats(url)["total"] == 0
        assert not (tmp_path / "elsewhere").exists()
        code, _out, err = run_cli(capsys, "run", "--api-url", url, "--yes", "plan.json")  # the untouched plan runs
        assert code == Exit.OK, err


def test_a_saved_plan_too_large_to_be_one_is_refused_by_its_size(tmp_path, capsys):
    from klingspec.cli.plans import MAX_PLAN_BYTES

    huge = tmp_path / "plan.json"
    with open(huge, "wb") as handle:
        handle.truncate(4 * MAX_PLAN_BYTES)  # sparse: costs no disk
    code, _out, err = run_cli(capsys, "run", "--sandbox", "--yes", str(huge))
    assert code == Exit.USAGE and "cannot read the plan" in err and "larger than" in err, err


def test_run_json_prints_one_object_with_each_render_and_its_files(tmp_path, capsys):
    path = script(tmp_path, 'shot x 5s "a fox"\n')
    code, out, err = run_cli(capsys, "run", "--sandbox", "--format", "json", path)
    assert code == Exit.OK, err
    result = json.loads(out)  # stdout is the one object: no table, no live view
    [render] = result["renders"]
    assert render["state"] == "done" and render["cost_usd"] == 1.12 and render["generations"] == 1
    assert render["files"] and os.path.exists(render["files"][0]["path"])
    assert result["sandbox"] is True and "$1.12" in result["spend"]
    code, out, _ = run_cli(capsys, "run", "--sandbox", "--format", "json", path)  # again: reused, $0 new
    assert json.loads(out)["renders"][0]["reused"] is True


def test_run_json_never_asks_and_dry_run_json_shows_the_bodies(tmp_path, capsys, monkeypatch):
    from klingspec.cli import consent

    monkeypatch.setattr(consent, "can_ask", lambda: True)  # as if at a terminal: still no question
    monkeypatch.setattr(consent, "ask", lambda question: (_ for _ in ()).throw(AssertionError(question)))
    monkeypatch.setenv("OXEN_API_KEY", new_key())
    path = script(tmp_path, 'shot x 5s "a fox"\n')
    code, out, err = run_cli(capsys, "run", "--api-url", "http://127.0.0.1:9/api", "--format", "json", path)
    assert code == Exit.BUDGET_REFUSED and out == "" and "--yes" in err  # no question on stdout
    code, out, _ = run_cli(capsys, "run", "--dry-run", "--format", "json", path)
    dry = json.loads(out)
    [request] = dry["requests"]
    assert dry["dry_run"] is True and request["standing"] == "new" and request["route"] == "POST /ai/queue"
    assert request["body"]["prompt"] == "a fox" and request["body"]["num_generations"] == 1
    assert dry["new_usd"] == 1.12 and dry["uploads"] == []


def test_an_empty_or_damaged_ledger_sends_nothing_and_says_why(tmp_path, capsys, monkeypatch):
    path = script(tmp_path, shots())
    ledger = tmp_path / "ledger.sqlite"
    monkeypatch.setenv("KLINGSPEC_LEDGER", str(ledger))
    for content, words in ((b"", "is empty (0 bytes)"), (b"not sqlite at all" * 64, "is not a klingspec ledger")):
        ledger.write_bytes(content)
        code, _, err = run_cli(capsys, "run", "--sandbox", "--yes", path)
        assert code == Exit.USAGE and words in err and "nothing is sent" in err
        assert "internal error" not in err
        assert ledger.read_bytes() == content  # left as it was, for the user to look at
        assert not (tmp_path / "renders").exists()
        code, _, err = run_cli(capsys, "status")
        assert code == Exit.USAGE and words in err


def test_a_script_path_with_markup_brackets_is_shown_as_text(tmp_path, capsys):
    """`[/bold]` in a folder name is a path, not a rich closing tag (it crashed plan and run)."""
    folder = tmp_path / "c[/bold]" / "[dim]"
    folder.mkdir(parents=True)
    path = script(folder, shots(generations=1))
    code, out, err = run_cli(capsys, "plan", path)
    assert code == Exit.OK, err
    assert "c[/bold]" in out and "internal error" not in out + err
    code, out, err = run_cli(capsys, "run", "--sandbox", "--yes", path)
    assert code == Exit.OK, err
    assert "[dim]" in out + err and "internal error" not in out + err
    for command in (["ls"], ["status"], ["ls", "--spend"]):
        code, out, err = run_cli(capsys, *command)
        assert "internal error" not in out + err, command
