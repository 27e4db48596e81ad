"""klingspec/run/startframes.py: the last frame of a video as a PNG kept beside it, made
once per video (the ledger records which PNG was made of which video), so the same video
gives a continued scene the same start frame, and so the same request, run after run."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

pytest.importorskip("av", reason="PyAV (the video extra) is not installed")

from PIL import Image

from klingspec.run import startframes
from klingspec.run.ledger import File, Ledger
from klingspec.run.startframes import frame_path, start_frame
from klingspec.run.video import VideoError
from klingspec.sandbox.footage import Picture, render

RED, BLUE = (255, 0, 0), (0, 0, 255)


def video(tmp_path: Path, name: str = "intro-0123abcd-1.mp4") -> File:
    """A 2 s video, red then blue (the last frame blue), recorded as the ledger records one."""
    data = render(Picture(((RED, 1), (BLUE, 1))))
    path = tmp_path / name
    path.write_bytes(data)
    return File("gen-1", str(path), "sha256:" + hashlib.sha256(data).hexdigest(), len(data))  # as the ledger has it


def centre(path: str) -> tuple[int, ...]:
    with Image.open(path) as image:
        pixel = image.convert("RGB").getpixel((image.width // 2, image.height // 2))
    assert isinstance(pixel, tuple)
    return pixel


def test_the_last_frame_is_kept_beside_its_video_and_recorded(tmp_path):
    clip = video(tmp_path)
    with Ledger(str(tmp_path / "ledger.sqlite")) as ledger:
        png = start_frame(clip, ledger)
        assert png == str(tmp_path / "intro-0123abcd-1.last.png") == frame_path(clip.path)
        assert all(abs(a - b) <= 12 for a, b in zip(centre(png), BLUE, strict=True))
        assert ledger.start_frame(clip.sha256) == hashlib.sha256(Path(png).read_bytes()).hexdigest()


def test_a_recorded_frame_on_disk_is_used_without_decoding_even_when_the_video_is_gone(tmp_path, monkeypatch):
    clip = video(tmp_path)
    with Ledger(str(tmp_path / "ledger.sqlite")) as ledger:
        first = Path(start_frame(clip, ledger)).read_bytes()
        Path(clip.path).unlink()

        def never(path: str) -> bytes:
            raise AssertionError("decoded again")

        monkeypatch.setattr(startframes, "last_frame_png", never)
        assert Path(start_frame(clip, ledger)).read_bytes() == first


def test_an_altered_frame_is_made_again_and_a_changed_video_is_refused(tmp_path):
    clip = video(tmp_path)
    with Ledger(str(tmp_path / "ledger.sqlite")) as ledger:
        png = Path(start_frame(clip, ledger))
        first = png.read_bytes()
        png.write_bytes(b"not the frame")
        assert Path(start_frame(clip, ledger)).read_bytes() == first  # decoded again: the same picture
        png.unlink()
        for copy in Path(ledger.path + ".frames").iterdir():  # and the ledger's own copy
            copy.unlink()
        Path(clip.path).write_bytes(b"x" * 10)  # replaced since the ledger recorded it
        with pytest.raises(VideoError, match="changed since it was downloaded"):
            start_frame(clip, ledger)
        Path(clip.path).unlink()
        with pytest.raises(VideoError, match="is gone"):
            start_frame(clip, ledger)


def test_without_a_ledger_the_frame_is_still_made_and_only_rewritten_when_it_differs(tmp_path):
    clip = video(tmp_path)
    png = Path(start_frame(clip, None))
    made = png.stat().st_ino  # a rewrite is a new file renamed over it: a new inode
    assert Path(start_frame(clip, None)) == png and png.stat().st_ino == made
