"""`klingspec config`, and the project file's budget, out and api_url in `run`."""

from __future__ import annotations

import json
import os

from klingspec.cli import main
from klingspec.cli.report import Exit


def _project(tmp_path, text: str) -> str:
    (tmp_path / "klingspec.toml").write_text(text, encoding="utf-8")
    script = tmp_path / "scene.kvs"
    script.write_text('shot a 5s "a fox"\n', encoding="utf-8")
    return str(script)


def test_config_shows_each_setting_and_where_it_comes_from(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _project(tmp_path, 'model = "kling-video-o3-omni"\nbudget = 5\n\n[severity]\nKVS-binding-unused = "ignore"\n')
    monkeypatch.setenv("KLINGSPEC_API_URL", "http://127.0.0.1:9/api")
    assert main(["config", "scene.kvs", "--format", "json"]) == Exit.OK
    shown = {s["key"]: s for s in json.loads(capsys.readouterr().out)["settings"]}
    assert shown["model"] == {"key": "model", "value": "kling-video-o3-omni", "from": "klingspec.toml:1"}
    assert shown["budget"]["from"] == "klingspec.toml:2"
    assert shown["api_url"] == {"key": "api_url", "value": "http://127.0.0.1:9/api", "from": "env KLINGSPEC_API_URL"}
    assert shown["severity.KVS-binding-unused"]["value"] == "ignore"
    assert shown["out"]["value"] is None and shown["out"]["from"].startswith("default")


def test_config_reports_a_broken_project_file_and_exits_1(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _project(tmp_path, 'modle = "x"\n')
    assert main(["config"]) == Exit.SCRIPT_ERRORS
    err = capsys.readouterr().err
    assert "klingspec.toml:1:1: error[KVS-config]: unknown key `modle`" in err


def test_run_renders_into_the_project_out_folder(tmp_path, capsys):
    script = _project(tmp_path, 'out = "films"\n')
    assert main(["run", "--sandbox", "--yes", script]) == Exit.OK
    assert [f for f in os.listdir(tmp_path / "films") if f.endswith(".mp4")]


def test_the_project_budget_caps_a_run_but_grants_no_consent(tmp_path, capsys, monkeypatch):
    script = _project(tmp_path, "budget = 0.5\n")
    assert main(["run", "--sandbox", script]) == Exit.BUDGET_REFUSED  # $1.12 > $0.50
    assert "budget refused" in capsys.readouterr().err
    _project(tmp_path, "budget = 100\n")
    monkeypatch.setenv("OXEN_API_KEY", "k")
    assert main(["run", "--api-url", "http://127.0.0.1:9/api", script]) == Exit.BUDGET_REFUSED
    assert "--yes" in capsys.readouterr().err  # nobody to ask: a budget in a file is not consent


def test_a_saved_plan_runs_under_its_scripts_project_file(tmp_path, capsys, monkeypatch):
    script = _project(tmp_path, "budget = 0.5\n")
    elsewhere = tmp_path / "plans"
    elsewhere.mkdir()
    saved = str(elsewhere / "plan.json")
    assert main(["plan", script, "-o", saved]) == Exit.OK
    monkeypatch.chdir(elsewhere)  # nowhere near the project file
    assert main(["run", "--sandbox", saved]) == Exit.BUDGET_REFUSED
    assert "budget refused" in capsys.readouterr().err
    (tmp_path / "klingspec.toml").write_text('budget = "lots"\n', encoding="utf-8")
    assert main(["run", "--sandbox", saved]) == Exit.SCRIPT_ERRORS  # its mistakes are not skipped
    assert "error[KVS-config]" in capsys.readouterr().err
