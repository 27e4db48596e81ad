"""The project file: klingspec.toml or [tool.klingspec] of pyproject.toml, found walking up
from the script; its settings applied, its mistakes reported at their own line."""

from __future__ import annotations

from helpers import codes, run, where

from klingspec import project

UNUSED = 'image cafe = "https://assets.example.com/cafe.jpg"\nshot a 5s "x"\n'
T2V = "kling-video-v2-6-pro-text-to-video"


def test_the_project_model_is_the_default_of_scripts_that_name_none(tmp_path):
    (tmp_path / "klingspec.toml").write_text(f'model = "{T2V}"\n')
    result = run(tmp_path, 'shot a 5s "x"\n')
    assert result.bound is not None and result.bound.model_id == T2V
    assert result.estimate is not None and not result.estimate.defaulted
    named = run(tmp_path, 'model kling-video-o3-omni\nshot a 5s "x"\n', "named.kvs")
    assert named.bound is not None and named.bound.model_id == "kling-video-o3-omni"  # the script wins


def test_pyproject_is_read_only_with_its_table_and_klingspec_toml_wins(tmp_path):
    (tmp_path / "klingspec.toml").write_text(f'model = "{T2V}"\n')
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "pyproject.toml").write_text('[project]\nname = "film"\n')  # no [tool.klingspec]: passed over
    assert project.load(str(sub / "a.kvs")).value("model") == T2V
    (sub / "pyproject.toml").write_text('[tool.klingspec]\nmodel = "kling-video-o3-omni"\n')
    found = project.load(str(sub / "a.kvs"))
    assert found.value("model") == "kling-video-o3-omni" and found.settings["model"].where.endswith("pyproject.toml:2")
    (sub / "klingspec.toml").write_text("budget = 3\n")
    assert project.load(str(sub / "a.kvs")).value("budget") == 3  # same level: klingspec.toml


def test_severity_ignores_or_raises_warnings_but_never_lowers_an_error(tmp_path):
    assert "KVS-binding-unused" in codes(run(tmp_path, UNUSED))
    (tmp_path / "klingspec.toml").write_text('[severity]\nKVS-binding-unused = "ignore"\n')
    assert codes(run(tmp_path, UNUSED)) == []
    (tmp_path / "klingspec.toml").write_text('[severity]\nKVS-binding-unused = "error"\n')
    raised = run(tmp_path, UNUSED)
    assert not raised.ok and [d.severity for d in raised.diagnostics] == ["error"]
    text = '[severity]\nKVS-shot-duration = "warning"\n'
    (tmp_path / "klingspec.toml").write_text(text)
    result = run(tmp_path, 'shot a 17s "x"\n')
    assert "KVS-shot-duration" in codes(result) and not result.ok
    [config] = [d for d in result.diagnostics if d.code == "KVS-config"]
    assert "cannot be lowered" in config.message and where(config)[:2] == (2, 1)


def test_mistakes_are_reported_at_their_line_and_column(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the file is named as the user would see it: klingspec.toml
    (tmp_path / "klingspec.toml").write_text('budgte = 5\nmodel = "kling-video-nope"\napi_url = "ftp://x"\n')
    found = {d.message: d for d in run(tmp_path, 'shot a 5s "x"\n').diagnostics if d.code == "KVS-config"}
    unknown = found["unknown key `budgte` in klingspec.toml"]
    assert unknown.help == "did you mean `budget`?" and where(unknown)[:2] == (1, 1)
    assert [s.replacement for s in unknown.suggestions] == ["budget"]
    assert where(found["`model` in klingspec.toml names no model klingspec knows: `kling-video-nope`"])[0] == 2
    assert any(m.startswith("`api_url` in klingspec.toml must be") for m in found)
    (tmp_path / "klingspec.toml").write_text("model = \n")
    [broken] = run(tmp_path, 'shot a 5s "x"\n', "b.kvs").diagnostics
    assert broken.code == "KVS-config" and "is not valid TOML" in broken.message and where(broken)[0] == 1


def test_out_is_relative_to_the_project_file(tmp_path):
    (tmp_path / "klingspec.toml").write_text('out = "films/renders"\n')
    (tmp_path / "deep").mkdir()
    assert project.load(str(tmp_path / "deep" / "a.kvs")).value("out") == str(tmp_path / "films" / "renders")


def test_a_raised_warning_stops_the_request_as_any_error(tmp_path):
    (tmp_path / "klingspec.toml").write_text('[severity]\nKVS-binding-unused = "error"\n')
    raised = run(tmp_path, UNUSED)
    assert not raised.ok and raised.request is None and raised.estimate is None  # watch --run must have nothing


def test_a_project_file_cannot_send_the_key_to_another_host(tmp_path):
    for url, fine in (
        ("https://hub.oxen.ai/api", True),
        ("http://127.0.0.1:8080/api", True),
        ("http://hub.oxen.ai/api", False),  # not over https
        ("https://evil.example/api", False),
        ("https://hub.oxen.ai.evil.example/api", False),
        ("http://localhost:notaport/api", False),
    ):
        (tmp_path / "klingspec.toml").write_text(f'api_url = "{url}"\n')
        found = project.load(str(tmp_path / "a.kvs"))
        assert (found.value("api_url") is not None) == fine, url
        assert bool(found.problems) != fine, url


def test_pyproject_keys_are_found_in_the_klingspec_table(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.black]\nmodel = "whatever"\n\n[tool.klingspec]\nmodel = "kling-video-nope"\n'
    )
    [problem] = project.load(str(tmp_path / "a.kvs")).problems
    assert where(problem)[0] == 5
