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
