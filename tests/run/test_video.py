"""klingspec/run/video.py on real MP4 files made here with PyAV (H.264 + AAC): a clip's
exact length, its last picture, and clips joined into one, copied when their streams
match and re-encoded when they do not, the sound kept in step."""

from __future__ import annotations

import pytest

av = pytest.importorskip("av", reason="PyAV (the video extra) is not installed")

from PIL import Image  # noqa: E402

from klingspec.run.video import VideoError, join, last_frame, probe  # noqa: E402

RED, GREEN, BLUE = (220, 30, 30), (30, 200, 30), (30, 30, 220)


def clip(path, colours, seconds: int, *, fps: int = 8, size=(64, 48), audio: bool = True) -> str:
    """`seconds` of video at `fps`, each second in the next of `colours` (the last one
    repeating), with a second of silence per second when `audio`."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        sound = out.add_stream("aac", rate=48_000, layout="mono") if audio else None
        for i in range(seconds * fps):
            colour = colours[min(i // fps, len(colours) - 1)]
            frame = av.VideoFrame.from_image(Image.new("RGB", size, colour))
            frame.pts = i
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if sound is not None:
            for start in range(0, 48_000 * seconds, 1024):
                silence = av.AudioFrame(format="fltp", layout="mono", samples=1024)
                silence.planes[0].update(bytes(silence.planes[0].buffer_size))
                silence.sample_rate, silence.pts = 48_000, start
                for packet in sound.encode(silence):
                    out.mux(packet)
            for packet in sound.encode():
                out.mux(packet)
    return str(path)


def near(pixel, colour, tolerance: int = 24) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


def frames(path: str) -> list[Image.Image]:
    with av.open(path) as container:
        return [f.to_image() for f in container.decode(container.streams.video[0])]


def test_probe_reads_the_exact_length_and_streams(tmp_path):
    info = probe(clip(tmp_path / "a.mp4", [RED], 3))
    assert info.seconds == pytest.approx(3.0)
    assert (info.video.codec, info.video.width, info.video.height) == ("h264", 64, 48)
    assert info.audio is not None and info.audio.codec == "aac" and info.audio.rate == 48_000
    assert probe(clip(tmp_path / "b.mp4", [RED], 2, audio=False)).audio is None


def test_the_last_frame_is_the_last_picture(tmp_path):
    path = clip(tmp_path / "a.mp4", [RED, RED, RED, BLUE], 4)  # blue only in the last second
    picture = last_frame(path)
    assert picture.size == (64, 48)
    assert near(picture.getpixel((32, 24)), BLUE)
    assert near(frames(path)[0].getpixel((32, 24)), RED)


def test_matching_clips_are_copied_in_order_with_their_sound(tmp_path):
    a = clip(tmp_path / "a.mp4", [RED], 2)
    b = clip(tmp_path / "b.mp4", [GREEN], 3)
    c = clip(tmp_path / "c.mp4", [BLUE], 1)
    joined = join([a, b, c], str(tmp_path / "film.mp4"))
    assert joined.remuxed
    assert joined.seconds == pytest.approx(6.0, abs=0.01)
    pictures = frames(joined.path)
    assert len(pictures) == 6 * 8
    assert [near(pictures[i].getpixel((32, 24)), colour) for i, colour in ((0, RED), (16, GREEN), (47, BLUE))] == [
        True,
        True,
        True,
    ]
    info = probe(joined.path)
    assert info.audio is not None
    with av.open(joined.path) as container:
        sound = container.streams.audio[0]
        assert float(sound.duration * sound.time_base) == pytest.approx(6.0, abs=0.1)


def test_clips_that_differ_are_re_encoded_to_the_first_ones_size_and_a_silent_clip_keeps_the_sound_in_step(tmp_path):
    a = clip(tmp_path / "a.mp4", [RED], 2)
    b = clip(tmp_path / "b.mp4", [GREEN], 2, size=(96, 64), audio=False)
    joined = join([a, b], str(tmp_path / "film.mp4"))
    assert not joined.remuxed
    assert joined.seconds == pytest.approx(4.0, abs=0.15)
    info = probe(joined.path)
    assert (info.video.width, info.video.height) == (64, 48)
    pictures = frames(joined.path)
    assert near(pictures[0].getpixel((32, 24)), RED) and near(pictures[-1].getpixel((32, 24)), GREEN)
    with av.open(joined.path) as container:
        sound = container.streams.audio[0]
        assert float(sound.duration * sound.time_base) == pytest.approx(4.0, abs=0.1)


def test_what_is_not_a_video_is_a_clear_error_and_a_failed_join_leaves_nothing(tmp_path):
    bogus = tmp_path / "bogus.mp4"
    bogus.write_bytes(b"not a video at all")
    with pytest.raises(VideoError, match="not a video"):
        probe(str(bogus))
    a = clip(tmp_path / "a.mp4", [RED], 1)
    with pytest.raises(VideoError):
        join([a, str(bogus)], str(tmp_path / "film.mp4"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "bogus.mp4"]
