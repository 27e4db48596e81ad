"""`klingspec init`: a starter that checks clean, renders in the sandbox, and never
overwrites a file."""

from __future__ import annotations

import os

from klingspec.cli import main
from klingspec.cli.report import Exit
from klingspec.pipeline import run_pipeline


def test_init_writes_a_starter_that_checks_clean_and_renders_in_the_sandbox(tmp_path, capsys):
    folder = tmp_path / "film"
    assert main(["init", str(folder)]) == Exit.OK
    out = capsys.readouterr().out
    assert f"wrote {folder / 'scene.kvs'}" in out and f"wrote {folder / 'klingspec.toml'}" in out
    result = run_pipeline(str(folder / "scene.kvs"))
    assert result.ok and result.diagnostics == () and result.request is not None
    assert len(result.bound.shots) == 2 and result.bound.elements and result.bound.images  # type: ignore[union-attr]
    assert main(["fmt", "--check", str(folder / "scene.kvs")]) == Exit.OK
    assert main(["run", "--sandbox", "--yes", "--out", str(folder / "renders"), str(folder / "scene.kvs")]) == Exit.OK
    assert [f for f in os.listdir(folder / "renders") if f.endswith(".mp4")]


def test_init_never_overwrites_a_file(tmp_path, capsys):
    mine = tmp_path / "scene.kvs"
    mine.write_text('shot 5s "mine"\n', encoding="utf-8")
    assert main(["init", str(tmp_path)]) == Exit.OK
    out = capsys.readouterr().out
    assert f"kept {mine}: it exists" in out and f"wrote {tmp_path / 'klingspec.toml'}" in out
    assert mine.read_text(encoding="utf-8") == 'shot 5s "mine"\n'
    toml = (tmp_path / "klingspec.toml").read_bytes()
    assert main(["init", str(tmp_path)]) == Exit.OK
    assert (tmp_path / "klingspec.toml").read_bytes() == toml
    assert capsys.readouterr().out.count("kept ") == 2


def test_init_refuses_a_file_as_the_folder(tmp_path, capsys):
    file = tmp_path / "taken"
    file.write_text("x", encoding="utf-8")
    assert main(["init", str(file)]) == Exit.USAGE
    assert file.read_text(encoding="utf-8") == "x"


def test_the_project_file_is_read_once_a_script_names_a_local_image(tmp_path, capsys):
    assert main(["init", str(tmp_path)]) == Exit.OK
    toml = tmp_path / "klingspec.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace("# [assets]\n# repo", "[assets]\nrepo"), encoding="utf-8")
    (tmp_path / "refs").mkdir()
    from PIL import Image

    Image.new("RGB", (640, 480), (10, 20, 30)).save(tmp_path / "refs" / "cafe.png")
    script = tmp_path / "scene.kvs"
    script.write_text(
        script.read_text(encoding="utf-8").replace("https://assets.example.com/cafe.jpg", "refs/cafe.png"),
        encoding="utf-8",
    )
    result = run_pipeline(str(script))
    assert result.ok, result.diagnostics
    assert result.uploads and "/repos/your-namespace/refs/file/main/" in result.uploads[0].url
