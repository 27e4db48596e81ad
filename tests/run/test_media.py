"""media.py: streamed base64 decoding of `b64_json` answers."""

from __future__ import annotations

import base64
import json
import os

import pytest

from klingspec.run import media


@pytest.mark.parametrize("chunk", [3, 7, 64, 1 << 16])
def test_decodes_several_videos_across_chunk_boundaries(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(media, "CHUNK", chunk)
    videos = [os.urandom(1000), os.urandom(1), b"", os.urandom(4099)]
    answer = tmp_path / "a.json"
    answer.write_text(
        json.dumps({"created": 1, "videos": [{"b64_json": base64.b64encode(v).decode()} for v in videos]})
    )
    dests = [str(tmp_path / f"{i}.mp4") for i in range(len(videos))]
    results = media.decode_b64_videos(str(answer), dests)
    for video, dest, (sha, size) in zip(videos, dests, results, strict=False):
        assert open(dest, "rb").read() == video and size == len(video)
        assert sha == media.file_sha256(dest)
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".part")]


def test_json_escapes_and_line_wraps_are_dropped(tmp_path, monkeypatch):
    monkeypatch.setattr(media, "CHUNK", 5)
    video = bytes(range(256)) * 3
    text = base64.encodebytes(video).decode().replace("/", "\\/").replace("\n", "\\n")
    answer = tmp_path / "a.json"
    answer.write_text('{"videos": [{"b64_json" : "' + text + '"}]}')
    [(_sha, _size)] = media.decode_b64_videos(str(answer), [str(tmp_path / "v.mp4")])
    assert (tmp_path / "v.mp4").read_bytes() == video


def test_memory_stays_flat(tmp_path):
    import tracemalloc

    video = os.urandom(8 << 20)
    answer = tmp_path / "a.json"
    answer.write_text('{"videos": [{"b64_json": "' + base64.b64encode(video).decode() + '"}]}')
    del video
    tracemalloc.start()
    media.decode_b64_videos(str(answer), [str(tmp_path / "v.mp4")])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1 << 20  # a few chunks, not the 8 MB video (let alone three copies)
