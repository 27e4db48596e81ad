"""Local images: the URL-or-path split, reading and identifying files with Pillow, the
assets target and its precedence, the content-addressed URL, and what the pipeline
exposes for uploading (`Result.uploads`). Golden cases in tests/cases/images/ show the
diagnostics; these tests cover what a golden text cannot hold (large files, two
checkouts, the cache, imports)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import codes, only, write
from PIL import Image

from klingspec import cli
from klingspec.assets import HUB_URL, is_local_path, parse_target
from klingspec.pipeline import Options, run_pipeline


def image(path: Path, size: tuple[int, int] = (320, 320), fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (30, 90, 160)).save(path, fmt)
    return path


SHOT = 'shot a 5s "@hero walks in"\n'


@pytest.mark.parametrize(
    "uri, local",
    [
        ("refs/hero.png", True),
        ("./hero.png", True),
        ("../x.webp", True),
        ("/abs/x.jpg", True),
        ("my refs/hero.png", True),
        ("C:\\refs\\hero.png", True),
        ("https://cdn.example.com/hero.png", False),
        ("file:///home/me/hero.png", False),
        ("data:image/png;base64,AAAA", False),
        ("//cdn.example.com/hero.png", False),
        ("", False),
        (" refs/hero.png", False),
    ],
)
def test_the_split_between_urls_and_paths(uri: str, local: bool) -> None:
    assert is_local_path(uri) is local


def test_targets_parse_with_a_default_branch() -> None:
    target = parse_target("aurora/refs", "--assets")
    assert not isinstance(target, str)
    assert (target.namespace, target.repo, target.branch) == ("aurora", "refs", "main")
    assert target.url("klingspec/x.png") == f"{HUB_URL}/api/repos/aurora/refs/file/main/klingspec/x.png"
    for bad in ("aurora", "aurora/", "au rora/refs", "aurora/refs@feature/x", "aurora/refs@a..b", "/refs"):
        assert isinstance(parse_target(bad, "--assets"), str), bad


def test_uploads_carry_what_run_needs_and_an_image_named_twice_is_one_upload(tmp_path: Path) -> None:
    picture = image(tmp_path / "refs" / "hero.jpg", (640, 480), "JPEG")
    script = write(
        tmp_path,
        'assets aurora/refs@media\nimage hero = "refs/hero.jpg"\nelement cast {\n  front "./refs/../refs/hero.jpg"\n}\n'
        'shot a 5s "@hero meets @cast"\n',
    )
    result = run_pipeline(script)
    assert result.ok, [d.message for d in result.diagnostics]
    (upload,) = result.uploads
    digest = hashlib.sha256(picture.read_bytes()).hexdigest()
    assert upload.path == str(picture)
    assert (upload.sha256, upload.size, upload.width, upload.height) == (digest, picture.stat().st_size, 640, 480)
    assert (upload.format, upload.mime_type) == ("jpeg", "image/jpeg")
    assert (upload.namespace, upload.repo, upload.branch) == ("aurora", "refs", "media")
    assert upload.remote_path == f"klingspec/{digest}.jpg"
    assert upload.url == f"https://hub.oxen.ai/api/repos/aurora/refs/file/media/klingspec/{digest}.jpg"
    assert upload.span.start_position == (2, 14)
    body = result.request.body
    assert body["input_image"] == [upload.url] and body["elements"][0]["frontal_image_url"] == upload.url
    assert "KVS-uri-duplicate" in codes(result)


def test_two_copies_of_one_image_are_duplicates_and_one_upload(tmp_path: Path) -> None:
    first = image(tmp_path / "a.png")
    shutil.copy(first, tmp_path / "b.png")
    result = run_pipeline(write(tmp_path, 'assets a/b\nimage hero = "a.png"\nstart "b.png"\n' + SHOT))
    assert len(result.uploads) == 1
    assert only(result, "KVS-uri-duplicate").span.start_position == (3, 7)


def test_an_image_over_ten_megabytes_warns_and_says_where_the_limit_comes_from(tmp_path: Path) -> None:
    picture = image(tmp_path / "hero.png")
    with open(picture, "r+b") as handle:
        handle.truncate(10_000_001)  # zeros after the PNG's end: sparse, and still a valid PNG
    result = run_pipeline(write(tmp_path, 'assets a/b\nimage hero = "hero.png"\n' + SHOT))
    warning = only(result, "KVS-image-large")
    assert "Kling's own API and fal" in warning.message and warning.severity == "warning"
    assert result.ok and result.uploads[0].size == 10_000_001
    with open(picture, "r+b") as handle:
        handle.truncate(9_999_999)
    assert "KVS-image-large" not in codes(run_pipeline(write(tmp_path, 'assets a/b\nimage hero = "hero.png"\n' + SHOT)))


@pytest.mark.parametrize(
    "size, code",
    [
        ((299, 400), "KVS-image-small"),
        ((300, 750), None),
        ((300, 751), "KVS-image-aspect"),
        ((751, 300), "KVS-image-aspect"),
    ],
)
def test_limits_from_other_hosts_are_warnings_at_their_edges(tmp_path: Path, size, code) -> None:
    image(tmp_path / "hero.png", size)
    found = codes(run_pipeline(write(tmp_path, 'assets a/b\nimage hero = "hero.png"\n' + SHOT)))
    assert [c for c in found if c.startswith("KVS-image")] == ([code] if code else [])


def test_a_truncated_jpeg_is_an_error(tmp_path: Path) -> None:
    picture = image(tmp_path / "hero.jpg", (640, 480), "JPEG")
    picture.write_bytes(picture.read_bytes()[:-200])
    result = run_pipeline(write(tmp_path, 'assets a/b\nimage hero = "hero.jpg"\n' + SHOT))
    assert "truncated" in only(result, "KVS-image-invalid").message


def test_a_file_url_is_fixed_by_its_plain_path(tmp_path: Path) -> None:
    result = run_pipeline(write(tmp_path, 'image hero = "file:///home/me/hero%20one.png"\n' + SHOT))
    (fix,) = only(result, "KVS-uri-scheme").suggestions
    assert (fix.replacement, fix.span.text) == ("/home/me/hero one.png", "file:///home/me/hero%20one.png")


def test_a_template_names_the_path(tmp_path: Path) -> None:
    image(tmp_path / "refs" / "ada.png")
    result = run_pipeline(
        write(tmp_path, 'assets a/b\nlet who = "ada"\nimage hero = "refs/{{ who }}.png"\n' + SHOT),
    )
    assert result.ok and result.uploads[0].path == str(tmp_path / "refs" / "ada.png")


def test_the_option_beats_the_script(tmp_path: Path) -> None:
    image(tmp_path / "hero.png")
    script = write(tmp_path, 'assets a/from-script\nimage hero = "hero.png"\n' + SHOT)
    result = run_pipeline(script, Options(assets="a/from-option@dev"))
    assert (result.uploads[0].repo, result.uploads[0].branch) == ("from-option", "dev")


def test_a_bad_assets_option_is_a_usage_error(tmp_path: Path, capsys) -> None:
    script = write(tmp_path, SHOT)
    assert cli.main(["check", "--assets", "nobranch", script]) == 2
    assert "NAMESPACE/REPO" in capsys.readouterr().err


def test_compile_is_byte_identical_from_two_checkouts_and_working_folders(tmp_path: Path) -> None:
    """The URL is made of the content and the target alone: no local path gets in."""
    outputs = []
    for checkout in ("one", "two/deeper"):
        root = tmp_path / checkout
        image(root / "refs" / "hero.png")
        (root / "klingspec.toml").write_text('[assets]\nrepo = "aurora/refs"\n', encoding="utf-8")
        (root / "scenes").mkdir()
        (root / "scenes" / "main.kvs").write_text('image hero = "../refs/hero.png"\n' + SHOT, encoding="utf-8")
        for cwd, path in (
            (root, "scenes/main.kvs"),
            (root / "scenes", "main.kvs"),
            (tmp_path, str(root / "scenes" / "main.kvs")),
        ):
            done = subprocess.run(
                [sys.executable, "-m", "klingspec", "compile", path], cwd=cwd, capture_output=True, check=True
            )
            outputs.append(done.stdout)
    assert len(set(outputs)) == 1
    assert str(tmp_path).encode() not in outputs[0]
    assert json.loads(outputs[0])["input_image"][0].startswith("https://hub.oxen.ai/api/repos/aurora/refs/file/main/")


def test_plan_lists_the_uploads(tmp_path: Path, monkeypatch, capsys) -> None:
    image(tmp_path / "hero.png", (400, 300))
    monkeypatch.chdir(tmp_path)
    write(tmp_path, 'assets aurora/refs\nimage hero = "hero.png"\n' + SHOT)
    assert cli.main(["plan", "main.kvs"]) == 0
    out = capsys.readouterr().out
    assert "1 local image to upload to aurora/refs (branch main)" in out
    assert "hero.png  PNG 400x300" in out


def test_an_edited_image_is_a_cache_miss(tmp_path: Path) -> None:
    image(tmp_path / "hero.png", (320, 320))
    write(tmp_path, 'assets a/b\nimage hero = "hero.png"\n' + SHOT)
    probe = (
        "import json, sys\nfrom klingspec.cli import main\ncode = main(['check', 'main.kvs'])\n"
        "print(json.dumps({'code': code, 'parser': 'lark' in sys.modules or 'klingspec.syntax' in sys.modules}))"
    )

    def check() -> dict:
        done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
        return {**json.loads(done.stdout.splitlines()[-1]), "out": done.stdout}

    first, second = check(), check()
    assert (first["parser"], second["parser"]) == (True, False)
    assert "KVS-image-small" not in second["out"]
    image(tmp_path / "hero.png", (200, 200))  # same name, new content
    third = check()
    assert third["parser"] is True and "KVS-image-small" in third["out"]
    os.unlink(tmp_path / "hero.png")
    assert "KVS-image-not-found" in check()["out"]


def test_a_klingspec_toml_that_appears_later_is_a_cache_miss(tmp_path: Path) -> None:
    image(tmp_path / "hero.png")
    write(tmp_path, 'image hero = "hero.png"\n' + SHOT)
    run = [sys.executable, "-m", "klingspec", "check", "main.kvs"]
    assert subprocess.run(run, cwd=tmp_path, capture_output=True).returncode == 1
    (tmp_path / "klingspec.toml").write_text('[assets]\nrepo = "a/b"\n', encoding="utf-8")
    assert subprocess.run(run, cwd=tmp_path, capture_output=True).returncode == 0


def test_the_editor_hover_shows_the_file_and_its_url(tmp_path: Path) -> None:
    from klingspec.lsp.hovers import mention_text

    image(tmp_path / "hero.png", (400, 300))
    result = run_pipeline(write(tmp_path, 'assets aurora/refs\nimage hero = "hero.png"\n' + SHOT))
    text = mention_text("@hero", result.bound.images[0], result)
    assert "(PNG 400x300," in text and result.uploads[0].url in text
    bare = run_pipeline(write(tmp_path, 'image hero = "hero.png"\n' + SHOT))
    assert "not uploaded: no `assets` repository" in mention_text("@hero", bare.bound.images[0], bare)


def test_fmt_keeps_the_assets_setting_canonical() -> None:
    from klingspec.formatting import format_text

    assert format_text('assets   aurora/refs@media\t# where images go\nshot a 5s "x"\n') == (
        'assets aurora/refs@media  # where images go\n\nshot a 5s "x"\n'
    )


def test_a_path_with_a_nul_character_is_unreadable_not_an_internal_error(tmp_path):
    """Found by hypothesis (an editor's unsaved text, which may hold any character): the
    operating system refuses such a path with ValueError."""
    path = str(tmp_path / "main.kvs")
    text = 'assets aurora/refs\nimage cafe = "caf\x00e.png"\nshot a 5s "@cafe"\n'
    result = run_pipeline(path, Options(overlays={path: text}))
    assert "KVS-internal" not in codes(result)
    assert "NUL character" in only(result, "KVS-image-unreadable").message
