"""`run --sandbox` works for every model klingspec accepts (the sandbox serves all seven)."""

from __future__ import annotations

import os

import pytest
from run_helpers import script

from klingspec.cli import main
from klingspec.cli.report import Exit

START = 'start "https://assets.example.com/door.png"\n'
SCRIPTS = {
    "kling-video-v2-6-pro-text-to-video": 'aspect 9:16\nshot a 10s "a door"\n',
    "kling-video-v2-6-pro-image-to-video": START + 'shot a 5s "the door opens"\n',
    "kling-video-o3-pro-image-to-video": START + 'shot a 4s "the door opens"\n',
    "kling-video-o3-pro-reference-to-video": 'shot a 2s "one"\nshot b 3s "two"\n',
    "kling-video-o3-omni": 'shot a 5s "the door opens"\n',
}


@pytest.mark.parametrize("model", sorted(SCRIPTS))
def test_a_valid_script_renders_in_the_sandbox(tmp_path, capsys, model):
    path = script(tmp_path, f"model {model}\n" + SCRIPTS[model])
    code = main(["run", "--sandbox", "--yes", path])
    out, err = capsys.readouterr()
    assert code == Exit.OK, out + err
    assert [v for v in os.listdir(tmp_path / "renders") if v.endswith(".mp4")]


OMNI = "kling-video-o3-omni"
OMNI_SCRIPTS = {
    "frames-only": START + 'end "https://assets.example.com/street.png"\nshot a 5s "the door opens"\n',
    "references-4k": 'image door = "https://assets.example.com/door.png"\nelement cat {\n'
    '  front "https://assets.example.com/cat.png"\n}\naspect 9:16\nresolution 4k\naudio on\n'
    'shot a 6s "@cat walks through @door"\n',
    "720p": 'resolution 720p\nshot a 3s "the door opens"\n',
}


@pytest.mark.parametrize("case", sorted(OMNI_SCRIPTS))
def test_single_prompt_omni_scripts_render_in_the_sandbox(tmp_path, capsys, case):
    path = script(tmp_path, f"model {OMNI}\n" + OMNI_SCRIPTS[case])
    code = main(["run", "--sandbox", "--yes", path])
    out, err = capsys.readouterr()
    assert code == Exit.OK, out + err
    assert [v for v in os.listdir(tmp_path / "renders") if v.endswith(".mp4")]


def test_several_shots_on_omni_are_refused_by_check_before_anything_is_sent(
    tmp_path, capsys, monkeypatch, sandbox_with
):
    from run_helpers import new_key, stats

    monkeypatch.setenv("OXEN_API_KEY", new_key())
    path = script(tmp_path, f'model {OMNI}\nshot a 5s "the door opens"\nshot b 5s "a cat walks in"\n')
    with sandbox_with() as url:
        code = main(["run", "--api-url", url, "--yes", path])
        out, err = capsys.readouterr()
        assert code == Exit.SCRIPT_ERRORS, out + err
        assert "KVS-model-unsupported" in out + err and "takes a single prompt" in out + err
        assert stats(url)["total"] == 0
    assert not (tmp_path / "renders").exists() or not os.listdir(tmp_path / "renders")
