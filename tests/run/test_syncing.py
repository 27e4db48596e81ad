"""`klingspec models sync` against a real sandbox on loopback, and what check and plan make
of the synced facts: a changed price, a retired model, a failed sync."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from decimal import Decimal

import httpx
import pytest
from run_helpers import script, stats

from klingspec import catalogue, targets
from klingspec.catalogue import Catalogue, Listed
from klingspec.cli import main
from klingspec.cli.report import Exit
from klingspec.pipeline import Options, run_pipeline
from klingspec.run.syncing import changes
from klingspec.sandbox import SandboxConfig
from klingspec.sandbox.config import FaultRule

REF = "kling-video-o3-pro-reference-to-video"
OMNI = "kling-video-o3-omni"
T2V = "kling-video-v2-6-pro-text-to-video"
TWO_SHOTS = 'shot a 4s "a cat"\nshot b 4s "a dog"\n'


def _sync(url: str, capsys: pytest.CaptureFixture[str], *more: str) -> tuple[int, str, str]:
    code = main(["models", "sync", "--api-url", url, *more])
    out, err = capsys.readouterr()
    return code, out, err


def _control(url: str, **change: object) -> None:
    root = url.removesuffix("/api")
    response = httpx.post(f"{root}/_sandbox/catalog", json=change, timeout=5)
    assert response.status_code == 200, response.text


@pytest.fixture
def api(sandbox_with, monkeypatch):
    """A private sandbox (its catalogue is changed by the test) and the key `sync` sends."""
    monkeypatch.setenv("OXEN_API_KEY", "test-key")
    with sandbox_with() as url:
        yield url


def test_sync_saves_every_kling_model_with_its_fetch_time_and_hash(api, capsys):
    code, out, err = _sync(api, capsys)
    assert code == Exit.OK, out + err
    assert "synced 7 Kling video models" in out and "no changes against the built-in matrices" in out
    saved = json.loads(open(catalogue.path(), encoding="utf-8").read())
    assert saved["format"] == catalogue.FORMAT and saved["api_url"] == api
    assert sorted(saved["models"]) == sorted(targets.known_ids())
    assert len(saved["sha256"]) == 64 and saved["fetched_at"] > 0
    assert saved["models"][REF]["pricing"]["cost_per_second"] == 0.224
    for model_id in targets.known_ids():
        assert targets.model(model_id).status == "live"  # type: ignore[union-attr]


def test_a_changed_price_is_reported_and_used_by_plan(api, capsys, tmp_path):
    _sync(api, capsys)
    _control(api, price={REF: 0.25})
    code, out, _ = _sync(api, capsys)
    assert code == Exit.OK
    assert f"{REF}: price per second $0.224/s -> $0.25/s" in out  # against the built-in matrix
    assert "changed since the last sync" in out
    path = script(tmp_path, TWO_SHOTS)
    assert main(["plan", "--format", "json", path]) == Exit.OK
    plan = json.loads(capsys.readouterr().out)
    assert plan["price_per_second"] == 0.25 and plan["total_usd"] == 2.0
    facts = [a for a in plan["assumptions"] if a.startswith("prices and limits")]
    assert facts and "catalogue synced" in facts[0] and "over the built-in matrix" in facts[0]


def test_a_retired_model_warns_with_its_successor_and_moves_the_default(api, capsys, tmp_path):
    _control(api, retire=[REF])
    code, out, _ = _sync(api, capsys)
    assert code == Exit.OK
    assert f"{REF}: retired: the catalogue synced" in out and "no longer lists it" in out
    named = run_pipeline(script(tmp_path, f"model {REF}\n" + TWO_SHOTS, "named.kvs"))
    [warning] = [d for d in named.diagnostics if d.code == "KVS-model-retired"]
    assert warning.severity == "warning" and warning.span.text == REF
    assert [s.replacement for s in warning.suggestions] == [OMNI]
    assert targets.default_model_id() == OMNI
    single = run_pipeline(script(tmp_path, 'shot a 5s "a cat"\n', "single.kvs"))
    assert single.bound is not None and single.bound.model_id == OMNI
    assert main(["models"]) == Exit.OK
    listing = capsys.readouterr().out
    assert f"{REF} is retired" in listing and f"use {OMNI}" in listing


def test_a_failed_sync_keeps_the_previous_catalogue(capsys, monkeypatch):
    monkeypatch.setenv("OXEN_API_KEY", "test-key")
    with running(SandboxConfig()) as url:
        assert _sync(url, capsys)[0] == Exit.OK
    before = open(catalogue.path(), "rb").read()
    broken = SandboxConfig(faults=(FaultRule("status=500", path=f"/api/ai/models/{OMNI}"),))
    with running(broken) as url:
        code, out, err = _sync(url, capsys)
    assert code == Exit.API_FAILURE
    assert "models sync failed" in err and "the previous catalogue is kept" in err
    assert open(catalogue.path(), "rb").read() == before
    assert not [n for n in os.listdir(os.path.dirname(catalogue.path())) if n.endswith(".tmp")]


def test_sync_needs_a_key_for_the_api(capsys, monkeypatch):
    monkeypatch.delenv("OXEN_API_KEY", raising=False)
    assert main(["models", "sync", "--api-url", "http://127.0.0.1:9/api"]) == Exit.USAGE
    assert not os.path.exists(catalogue.path())


def test_sync_json_lists_models_and_changes(api, capsys):
    _control(api, price={T2V: 0.08})
    code, out, _ = _sync(api, capsys, "--format", "json")
    assert code == Exit.OK
    report = json.loads(out)
    assert report["since_last_sync"] is None and len(report["models"]) == 7
    assert {"model": T2V, "what": "price per second", "before": "$0.07/s", "after": "$0.08/s"} in report["changes"]


def test_models_lists_sources_and_shows_one_matrix(api, capsys):
    assert main(["models", "--format", "json"]) == Exit.OK
    listing = json.loads(capsys.readouterr().out)
    assert listing["catalogue"] is None
    row = next(r for r in listing["models"] if r["id"] == REF)
    assert row["status"] == "documented" and row["price_per_second"] == "0.224" and row["replaced_by"] == OMNI
    assert row["source"].startswith("built-in matrix")
    _sync(api, capsys)
    assert main(["models", REF, "--format", "json"]) == Exit.OK
    one = json.loads(capsys.readouterr().out)
    assert one["status"] == "live" and one["matrix"]["price_per_second"] == "0.224"
    assert one["matrix"]["total_max"] == 15 and one["source"].startswith("catalogue synced")
    assert main(["models", "kling-video-nope"]) == Exit.USAGE


def _requests(url: str) -> int:
    return sum(stats(url)["requests"].values())


def test_check_and_plan_never_touch_the_network_and_the_cache_follows_the_sync(api, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("KLINGSPEC_API_URL", api)  # where a stray request would go
    path = script(tmp_path, f"model {REF}\n" + TWO_SHOTS)
    assert main(["check", path]) == Exit.OK
    assert "warning" not in capsys.readouterr().out
    _control(api, retire=[REF])
    _sync(api, capsys)
    asked = _requests(api)
    assert main(["check", path]) == Exit.OK  # a warning, from the synced facts, not the cache
    assert "KVS-model-retired" in capsys.readouterr().out
    assert main(["plan", path, "--compare", "all"]) == Exit.OK
    assert "is retired: the catalogue synced" in capsys.readouterr().out
    assert _requests(api) == asked


# -- the diff, on catalogues made by hand (a model the sandbox cannot serve) -----------------


def _catalogue(models: dict[str, dict]) -> Catalogue:
    listed = {k: Listed(k, v) for k, v in models.items()}
    return Catalogue("http://api", 1_800_000_000.0, None, "0" * 64, frozenset(models), listed)


def _laid(synced: Catalogue):
    return lambda i: targets.facts_of(i, synced)


def test_a_new_model_and_a_changed_enum_are_reported():
    base = {i: {"id": i, "pricing": {"cost_per_second": None}} for i in targets.known_ids()}
    base[T2V] = {
        "id": T2V,
        "pricing": {"cost_per_second": 0.07},
        "request_schema": {
            "properties": {
                "aspect_ratio": {"enum": ["16:9", "9:16"], "default": "16:9"},
                "duration": {"enum": [5, 10, 15]},
            }
        },
    }
    base["kling-video-v4-pro"] = {"id": "kling-video-v4-pro", "summary": "the next one"}
    synced = _catalogue(base)
    found = {(c.model, c.what): c for c in changes(targets.builtin, _laid(synced), synced)}
    assert found[(T2V, "aspect ratios")].after == "16:9, 9:16"
    assert found[(T2V, "durations")].line() == f"{T2V}: durations 5, 10 -> 5, 10, 15"
    assert found[("kling-video-v4-pro", "new")].after == "the next one"
    overlaid = targets.overlay(targets.builtin(T2V), synced)  # type: ignore[arg-type]
    assert overlaid.allowed_durations == (5, 10, 15) and overlaid.total_max == 15
    # A null price keeps the documented one: "not published" is no reason to forget it.
    assert targets.overlay(targets.builtin(REF), synced).price_per_second == Decimal("0.224")  # type: ignore[arg-type]


def test_a_published_audio_price_replaces_the_ceiling():
    synced = _catalogue({REF: {"id": REF, "pricing": {"cost_per_second": 0.224, "cost_per_second_with_audio": 0.3}}})
    model = targets.overlay(targets.builtin(REF), synced)  # type: ignore[arg-type]
    assert model.price_per_second_with_audio == Decimal("0.3") and model.audio_price_ceiling is None


def test_a_deprecated_model_is_retired_and_an_unreadable_cache_is_no_cache(tmp_path):
    synced = _catalogue({REF: {"id": REF, "deprecated": True}})
    model = targets.overlay(targets.builtin(REF), synced)  # type: ignore[arg-type]
    assert model.status == "retired" and "deprecated" in (model.status_note or "")
    bad = tmp_path / "catalogue.json"
    bad.write_text("{not json", encoding="utf-8")
    assert catalogue.load(str(bad)) is None
    bad.write_text(json.dumps({"format": "something else"}), encoding="utf-8")
    assert catalogue.load(str(bad)) is None


def running(config: SandboxConfig):
    from klingspec.sandbox import running_sandbox

    return running_sandbox(config)


def test_the_synced_schema_is_the_one_bodies_are_validated_against(tmp_path):
    schema = {"type": "object", "required": ["prompt", "cfg_scale"], "properties": {"prompt": {"type": "string"}}}
    catalogue.save(_catalogue({T2V: {"id": T2V, "pricing": {"cost_per_second": 0.07}, "request_schema": schema}}))
    assert targets.model_schema(T2V) == schema
    result = run_pipeline(script(tmp_path, f'model {T2V}\nshot a 5s "x"\n'))
    [gap] = [d for d in result.diagnostics if d.code == "KVS-schema-model"]
    assert "cfg_scale" in gap.message and gap.span.text == T2V  # the checker's bug, at the script's span
    catalogue.save(_catalogue({REF: {"id": REF, "request_schema": None}}))
    assert targets.model_schema(REF) == targets.builtin_schema(REF)  # no schema synced: the built-in one


def test_synced_resolutions_and_high_res_price_reach_check_and_plan(tmp_path):
    detail = {
        "id": OMNI,
        "pricing": {"cost_per_second": 0.3, "cost_per_second_high_res": 0.5},
        "request_schema": {"properties": {"resolution": {"enum": ["720p", "1080p", "4k"], "default": "720p"}}},
    }
    catalogue.save(_catalogue({OMNI: detail}))
    model = targets.model(OMNI)
    assert model is not None and model.default_resolution == "720p"
    omni = {
        (c.what, c.after)
        for c in changes(targets.builtin, _laid(_catalogue({OMNI: detail})), _catalogue({OMNI: detail}))
        if c.model == OMNI
    }
    assert {
        ("high-res price per second", "$0.5/s"),
        ("default resolution", "720p"),
        ("price per second", "$0.3/s"),
    } <= omni
    assert model.price_per_second_high_res == Decimal("0.5")
    at_4k = run_pipeline(script(tmp_path, f'model {OMNI}\nresolution 4k\nshot a 5s "x"\n', "hi.kvs"))
    assert at_4k.ok and at_4k.estimate is not None and at_4k.estimate.total == Decimal("2.50")
    default = run_pipeline(script(tmp_path, f'model {OMNI}\nshot a 5s "x"\n', "lo.kvs"))
    assert default.estimate is not None and default.estimate.total == Decimal("1.50")
    catalogue.save(_catalogue({OMNI: detail | {"request_schema": {"properties": {"resolution": {"enum": ["720p"]}}}}}))
    gone = run_pipeline(script(tmp_path, f'model {OMNI}\nresolution 4k\nshot a 5s "x"\n', "gone.kvs"))
    assert not gone.ok and any("4k" in d.message for d in gone.diagnostics if d.severity == "error")


# -- odd catalogues: nothing a server or a damaged file says may crash a check -----------


@pytest.mark.parametrize(
    "duration", [{"enum": 5}, {"enum": [True, "5", 5.0]}, {"minimum": 10, "maximum": 3}, {"maximum": 10**9}]
)
def test_a_strange_duration_schema_is_not_believed(tmp_path, duration):
    catalogue.save(_catalogue({T2V: {"id": T2V, "request_schema": {"properties": {"duration": duration}}}}))
    model = targets.model(T2V)
    assert model is not None and model.allowed_durations == (5, 10) and model.total_max == 10
    result = run_pipeline(script(tmp_path, f'model {T2V}\nshot a 5s "x"\n'))
    assert "KVS-internal" not in [d.code for d in result.diagnostics]
    # The schema itself still judges the body: a range that holds nothing refuses it.
    assert result.ok == ("minimum" not in duration)


@pytest.mark.parametrize("price", [0, "-0", "1e40", float("nan"), "cheap", True, [1]])
def test_a_price_that_is_no_price_leaves_the_documented_one(price):
    synced = _catalogue({REF: {"id": REF, "pricing": {"cost_per_second": price}}})
    assert targets.overlay(targets.builtin(REF), synced).price_per_second == Decimal("0.224")  # type: ignore[arg-type]
    assert targets.price_of(price) is None


def test_prices_of_another_method_are_not_read_per_second():
    synced = _catalogue({REF: {"id": REF, "pricing": {"method": "token", "cost_per_second": 9}}})
    assert targets.overlay(targets.builtin(REF), synced).price_per_second == Decimal("0.224")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(
            {"format": catalogue.FORMAT, "api_url": "x", "fetched_at": "NaN", "sha256": "", "listed": [], "models": {}}
        ),
        json.dumps(
            {"format": catalogue.FORMAT, "api_url": "x", "fetched_at": 1e20, "sha256": "", "listed": [], "models": {}}
        ),
        "[" * 100_000 + "]" * 100_000,
    ],
)
def test_a_damaged_catalogue_file_is_no_catalogue(tmp_path, text):
    (tmp_path / "catalogue.json").write_text(text, encoding="utf-8")
    assert catalogue.load(str(tmp_path / "catalogue.json")) is None


def test_a_model_listed_without_a_video_detail_is_live_not_retired():
    synced = replace(_catalogue({}), listed=frozenset({REF}))
    assert targets.overlay(targets.builtin(REF), synced).status == "live"  # type: ignore[arg-type]


def test_a_listing_without_any_known_model_fails_and_keeps_the_cache(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("OXEN_API_KEY", "test-key")
    with running(SandboxConfig()) as url:
        assert _sync(url, capsys)[0] == Exit.OK
    before = open(catalogue.path(), "rb").read()
    with running(SandboxConfig(retired=frozenset(targets.known_ids()))) as url:
        code, _, err = _sync(url, capsys)
    assert code == Exit.API_FAILURE and "names none of klingspec's" in err
    assert open(catalogue.path(), "rb").read() == before


def test_when_the_successor_is_retired_too_the_default_stays_and_the_first_shot_warns(tmp_path):
    ids = [i for i in targets.known_ids() if i not in (REF, OMNI)]
    catalogue.save(_catalogue({i: {"id": i} for i in ids}))
    assert targets.default_model_id() == REF
    result = run_pipeline(script(tmp_path, 'shot a 5s "x"\n'))
    [warning] = [d for d in result.diagnostics if d.code == "KVS-model-retired"]
    assert warning.span.start_position == (1, 1) and warning.message.startswith(f"the default model `{REF}` is retired")


def test_the_default_becomes_the_live_successor_without_a_warning(tmp_path):
    ids = [i for i in targets.known_ids() if i != REF]
    catalogue.save(_catalogue({i: {"id": i, "pricing": {"cost_per_second": 0.3}} for i in ids}))
    result = run_pipeline(script(tmp_path, 'shot a 5s "x"\n'))
    assert result.bound is not None and result.bound.model_id == OMNI
    assert [d.code for d in result.diagnostics] == [] and result.estimate is not None
    assert result.estimate.total == Decimal("1.50")
    assert "the default (the successor of" in result.estimate.assumptions[0]


def test_compare_never_recommends_a_retired_model(tmp_path):
    from klingspec.comparing import cheapest, compare

    ids = [i for i in targets.known_ids() if i != T2V]
    catalogue.save(_catalogue({i: {"id": i} for i in ids}))
    path = script(tmp_path, 'shot a 5s "x"\n')
    trials = {t.model: t for t in compare(path, Options(), [T2V])}
    assert trials[T2V].status == "retired" and not trials[T2V].valid
    assert cheapest(list(trials.values())) is trials[REF]


def test_an_unpublished_high_res_reach_is_budgeted_at_the_high_res_price(tmp_path):
    detail = {"id": OMNI, "pricing": {"cost_per_second": 0.3, "cost_per_second_high_res": 0.5}}
    catalogue.save(_catalogue({OMNI: detail}))
    result = run_pipeline(script(tmp_path, f'model {OMNI}\nresolution 1080p\nshot a 5s "x"\n'))
    assert result.estimate is not None
    assert (result.estimate.total, result.estimate.ceiling) == (Decimal("1.50"), Decimal("2.50"))
    lowest = run_pipeline(script(tmp_path, f'model {OMNI}\nresolution 720p\nshot a 5s "x"\n', "low.kvs"))
    assert lowest.estimate is not None and lowest.estimate.ceiling == Decimal("1.50")


def test_bodies_validate_against_the_schemas_synced_over_http(api, capsys, tmp_path):
    """The schemas `models sync` fetched from the sandbox are the ones compile checks
    against; a valid script for each model the checker takes validates against them."""
    from test_model_schemas import NEEDS_VIDEO, SCRIPTS

    _sync(api, capsys)
    synced = catalogue.load()
    assert synced is not None
    for model_id, text in SCRIPTS.items():
        schema = targets.model_schema(model_id)
        assert schema == synced.models[model_id].schema  # the synced one, not the built-in copy
        result = run_pipeline(script(tmp_path, f"model {model_id}\n{text}", f"{model_id}.kvs"))
        gaps = [d for d in result.diagnostics if d.code == "KVS-schema-model"]
        if model_id in NEEDS_VIDEO:
            assert not result.ok  # the checker refuses first: a .kvs script gives no video
        else:
            assert result.ok and gaps == [], (model_id, result.diagnostics)
