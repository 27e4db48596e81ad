"""The result MP4: its boxes parse back, its durations are the requested ones, padding works."""

from __future__ import annotations

import struct

import pytest

from klingspec.sandbox.mp4 import TIMESCALE, VideoSpec, iter_mp4, mp4_bytes

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"dinf"}


def boxes(data: bytes, start: int = 0, end: int | None = None) -> dict[bytes, list[tuple[int, int]]]:
    """Every box in `data` by type, as (payload offset, payload end); containers recursed."""
    found: dict[bytes, list[tuple[int, int]]] = {}
    end = len(data) if end is None else end
    offset = start
    while offset < end:
        size, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", data, offset + 8)[0], 16
        assert size >= header and offset + size <= end, f"{kind!r} overruns its parent"
        found.setdefault(kind, []).append((offset + header, offset + size))
        if kind in CONTAINERS:
            for child, spans in boxes(data, offset + header, offset + size).items():
                found.setdefault(child, []).extend(spans)
        offset += size
    assert offset == end, "boxes do not tile their parent exactly"
    return found


def duration_of(data: bytes, kind: bytes) -> float:
    """Seconds in an mvhd or mdhd (version 0: timescale at +12, duration at +16)."""
    ((start, _),) = boxes(data)[kind]
    timescale, duration = struct.unpack_from(">II", data, start + 12)
    return duration / timescale


@pytest.mark.parametrize("seconds", [3, 5, 15])
def test_the_file_parses_and_lasts_the_requested_seconds(seconds: int) -> None:
    data = mp4_bytes(VideoSpec(seconds))
    found = boxes(data)
    assert list(found)[:2] == [b"ftyp", b"moov"]
    for kind in (b"mvhd", b"tkhd", b"mdhd", b"hdlr", b"stsd", b"stts", b"stsz", b"stco", b"mdat"):
        assert kind in found, kind
    assert duration_of(data, b"mvhd") == seconds
    assert duration_of(data, b"mdhd") == seconds
    ((tkhd, _),) = found[b"tkhd"]
    assert struct.unpack_from(">I", data, tkhd + 20)[0] == seconds * TIMESCALE


def test_the_sample_table_points_at_the_frame_in_mdat() -> None:
    data = mp4_bytes(VideoSpec(5))
    found = boxes(data)
    ((stco, _),) = found[b"stco"]
    ((stsz, _),) = found[b"stsz"]
    ((mdat, mdat_end),) = found[b"mdat"]
    offset = struct.unpack_from(">I", data, stco + 8)[0]
    size = struct.unpack_from(">I", data, stsz + 12)[0]  # after sample_size, count
    assert offset == mdat and offset + size <= mdat_end
    nal_length = struct.unpack_from(">I", data, offset)[0]
    assert nal_length == size - 4 and data[offset + 4] == 0x65  # an IDR slice NAL unit
    ((stsd, _),) = found[b"stsd"]
    assert data[stsd + 12 : stsd + 16] == b"avc1"


def test_padding_makes_the_exact_size_and_keeps_the_file_valid() -> None:
    spec = VideoSpec(5, pad_to=200_000)
    data = mp4_bytes(spec)
    assert len(data) == spec.size == 200_000
    assert duration_of(data, b"mvhd") == 5


def test_padding_is_streamed_in_chunks_not_built() -> None:
    spec = VideoSpec(4, pad_to=50 * 1024 * 1024)
    chunks = iter_mp4(spec, chunk_size=65536)
    head = next(chunks)
    assert len(head) < 2048
    sizes = [len(next(chunks)) for _ in range(10)]
    assert sizes == [65536] * 10


def test_a_file_over_4_gib_uses_the_64_bit_mdat_header() -> None:
    spec = VideoSpec(3, pad_to=2**32 + 1000)
    head = next(iter_mp4(spec))
    assert spec.size == 2**32 + 1000
    mdat = head.index(b"mdat") - 4
    assert struct.unpack_from(">I4sQ", head, mdat) == (1, b"mdat", spec.size - mdat)
