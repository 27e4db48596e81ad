"""`plan --compare`: the same script tried on other models, through the real pipeline."""

from __future__ import annotations

import json
from decimal import Decimal

from helpers import write

from klingspec import targets
from klingspec.cli import main
from klingspec.cli.report import Exit
from klingspec.comparing import cheapest, compare, wanted
from klingspec.pipeline import Options, run_pipeline

REF = "kling-video-o3-pro-reference-to-video"
T2V = "kling-video-v2-6-pro-text-to-video"
I2V = "kling-video-v2-6-pro-image-to-video"
ELEMENTS = """element hero {
  front "https://assets.example.com/hero/front.png"
}
shot arrival 5s "@hero walks in"
"""


def test_elements_on_a_text_to_video_model_are_rejected_where_they_are_written(tmp_path):
    path = write(tmp_path, ELEMENTS)
    own, t2v = compare(path, Options(), [T2V])
    assert own.model == REF and own.own and own.valid and not t2v.own
    assert not t2v.valid
    [error] = [d for d in t2v.errors if "elements" in d.message]
    assert error.code == "KVS-model-unsupported" and error.span.start_position == (1, 1)
    assert t2v.quote is not None and t2v.quote.amount == Decimal("0.35")  # 5 s x $0.07, had it been valid
    assert cheapest([own, t2v]) is own


def test_the_cheapest_valid_model_is_found_and_figures_match_the_plan(tmp_path):
    path = write(tmp_path, 'shot a 5s "a red balloon rising"\n')
    trials = compare(path, Options(), [T2V, I2V, "kling-video-o3-omni"])
    by_model = {t.model: t for t in trials}
    assert by_model[T2V].valid and not by_model[I2V].valid  # the image model needs a start frame
    assert cheapest(trials) is by_model[T2V]
    plan = run_pipeline(path, Options(model=T2V)).estimate
    assert plan is not None and by_model[T2V].quote == plan.quote  # one money function
    assert [t.model for t in trials][:2] == [REF, T2V]  # own first, then valid and cheapest first
    assert by_model["kling-video-o3-omni"].quote is not None
    assert by_model["kling-video-o3-omni"].quote.amount is None  # unknown, never $0


def test_an_unknown_model_is_listed_as_unknown_and_rejected(tmp_path):
    path = write(tmp_path, 'shot a 5s "x"\n')
    _, nope = compare(path, Options(), ["kling-video-nope"])
    assert nope.status == "unknown" and not nope.valid and nope.seconds == 5
    assert nope.quote is not None and nope.quote.amount is None  # unknown, never $0
    assert [d.code for d in nope.errors] == ["KVS-model-unknown"]


def test_wanted_reads_commas_and_all():
    assert wanted(f"{T2V}, {T2V},{I2V}") == (T2V, I2V)
    assert wanted("all") == targets.known_ids()
    assert wanted(" , ") == ()


def test_plan_compare_prints_the_table_and_marks_the_cheapest(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    path = write(tmp_path, 'shot a 5s "a red balloon rising"\n')
    assert main(["plan", path, "--compare", f"{T2V},{I2V}"]) == Exit.OK
    out = capsys.readouterr().out
    assert "the same shots on 3 models" in out
    line = next(x for x in out.splitlines() if x.strip().startswith(T2V))
    assert "$0.35" in line and "← cheapest valid" in line
    assert f"{I2V}: {path}:1:1: error[KVS-start-required]" in out
    assert f"cheapest valid: {T2V} at $0.35" in out


def test_plan_compare_json_and_a_script_its_own_model_rejects(tmp_path, capsys):
    path = write(tmp_path, f"model {T2V}\n" + ELEMENTS)
    assert main(["plan", path, "--format", "json", "--compare", REF]) == Exit.SCRIPT_ERRORS
    report = json.loads(capsys.readouterr().out)
    assert report["path"] == path and report["cheapest_valid"] == REF
    own, ref = report["compare"]
    assert own["model"] == T2V and own["own"] and not own["valid"]
    assert any(r["code"] == "KVS-model-unsupported" and r["line"] == 2 for r in own["rejected"])
    assert ref["valid"] and ref["total_usd"] == 1.12 and ref["rejected"] == []


def test_plan_compare_needs_a_model(tmp_path, capsys):
    path = write(tmp_path, 'shot a 5s "x"\n')
    assert main(["plan", path, "--compare", ","]) == Exit.USAGE
