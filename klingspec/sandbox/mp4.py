"""The result videos: real footage made with PyAV when it is installed, else small, valid,
playable MP4 files built in pure Python.

A `VideoSpec` with a `picture` is rendered by `footage.py` (flat colours from the prompts,
H.264 and AAC; see there), once, then served from memory. Without one (no PyAV, or a padded
file):

A pure-Python result is one 16x16 grey H.264 frame (an I_PCM macroblock, so no encoder is needed)
shown for the requested number of seconds: `mvhd`, `tkhd` and `mdhd` all carry that
duration, so a client that reads the container sees the length it asked for. The file
can be padded (zeros at the end of `mdat`, which ISO-BMFF allows) to any size for
download benchmarks; `iter_mp4` streams the padding in chunks and never builds it.

Layout ("fast start"): ftyp, moov (mvhd, trak (tkhd, mdia (mdhd, hdlr, minf (vmhd,
dinf/dref, stbl (stsd/avc1/avcC, stts, stss, stsc, stsz, stco))))), mdat.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

from klingspec.sandbox.footage import Picture, render

TIMESCALE = 1000  # ticks per second in mvhd and mdhd: durations are in milliseconds
WIDTH = HEIGHT = 16  # one macroblock
_GREY = 0x80  # mid-grey in Y, Cb and Cr; never 0x00, so the PCM bytes need no escaping
_UNITY_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


@dataclass(frozen=True)
class VideoSpec:
    """What a result file looks like: its length and the size to pad it to, or the
    `picture` PyAV renders (then `pad_to` is not used: padding is the grey file's)."""

    seconds: int
    pad_to: int | None = None
    picture: Picture | None = None

    @property
    def size(self) -> int:
        """Total bytes of the file, known before any byte is sent (Content-Length). A
        `picture` is rendered for it (call it off the event loop first: `render` keeps it)."""
        if self.picture is not None:
            return len(render(self.picture))
        natural = len(_ftyp()) + len(_moov(self.seconds, 0)) + 8 + len(_sample())
        return max(natural, self.pad_to or 0)


def mp4_bytes(spec: VideoSpec) -> bytes:
    """The whole file in memory; for small files and `b64_json` responses."""
    return b"".join(iter_mp4(spec))


def iter_mp4(spec: VideoSpec, chunk_size: int = 64 * 1024) -> Iterator[bytes]:
    """Yield the file: the real boxes first, then zero padding in `chunk_size` pieces."""
    if spec.picture is not None:
        data = render(spec.picture)
        yield from (data[i : i + chunk_size] for i in range(0, len(data), chunk_size))
        return
    head = _head(spec.seconds, spec.size)
    yield head
    remaining = spec.size - len(head)
    zeros = bytes(min(chunk_size, remaining))
    while remaining > 0:
        piece = zeros if remaining >= len(zeros) else zeros[:remaining]
        remaining -= len(piece)
        yield piece


@cache
def _head(seconds: int, total: int) -> bytes:
    """ftyp + moov + the mdat header and its one sample; the padding follows separately.

    mdat spans to the end of the file, so the padding is inside it, after the sample.
    """
    ftyp, sample = _ftyp(), _sample()
    # moov's size does not depend on the chunk offset's value (a fixed 32-bit field).
    moov_len = len(_moov(seconds, 0))
    mdat_len = total - len(ftyp) - moov_len
    if mdat_len < 2**32:
        mdat_header = struct.pack(">I4s", mdat_len, b"mdat")
    else:  # a box of 4 GiB or more takes the 64-bit `largesize` form
        mdat_header = struct.pack(">I4sQ", 1, b"mdat", mdat_len)
    moov = _moov(seconds, chunk_offset=len(ftyp) + moov_len + len(mdat_header))
    return ftyp + moov + mdat_header + sample


def _ftyp() -> bytes:
    return _box(b"ftyp", b"isom" + struct.pack(">I", 0x200) + b"isomiso2avc1mp41")


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _full_box(kind: bytes, version: int, flags: int, payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags) + payload)


def _moov(seconds: int, chunk_offset: int) -> bytes:
    ticks = seconds * TIMESCALE
    mvhd = _full_box(
        b"mvhd",
        0,
        0,
        struct.pack(">IIII", 0, 0, TIMESCALE, ticks)
        + struct.pack(">IH", 0x10000, 0x100)
        + bytes(10)
        + _UNITY_MATRIX
        + bytes(24)
        + struct.pack(">I", 2),
    )
    tkhd = _full_box(
        b"tkhd",
        0,
        0x3,
        struct.pack(">IIIII", 0, 0, 1, 0, ticks)
        + bytes(8)
        + struct.pack(">hhHH", 0, 0, 0, 0)
        + _UNITY_MATRIX
        + struct.pack(">II", WIDTH << 16, HEIGHT << 16),
    )
    mdhd = _full_box(
        b"mdhd", 0, 0, struct.pack(">IIII", 0, 0, TIMESCALE, ticks) + struct.pack(">HH", 0x55C4, 0)
    )  # language "und"
    hdlr = _full_box(b"hdlr", 0, 0, struct.pack(">I4s", 0, b"vide") + bytes(12) + b"VideoHandler\0")
    vmhd = _full_box(b"vmhd", 0, 1, bytes(8))
    dinf = _box(b"dinf", _full_box(b"dref", 0, 0, struct.pack(">I", 1) + _full_box(b"url ", 0, 1, b"")))
    stbl = _box(
        b"stbl",
        b"".join(
            (
                _full_box(b"stsd", 0, 0, struct.pack(">I", 1) + _avc1()),
                _full_box(b"stts", 0, 0, struct.pack(">III", 1, 1, ticks)),  # one frame, whole length
                _full_box(b"stss", 0, 0, struct.pack(">II", 1, 1)),
                _full_box(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, 1, 1)),
                _full_box(b"stsz", 0, 0, struct.pack(">III", 0, 1, len(_sample()))),
                _full_box(b"stco", 0, 0, struct.pack(">II", 1, chunk_offset)),
            )
        ),
    )
    minf = _box(b"minf", vmhd + dinf + stbl)
    mdia = _box(b"mdia", mdhd + hdlr + minf)
    return _box(b"moov", mvhd + _box(b"trak", tkhd + mdia))


def _avc1() -> bytes:
    sps, pps = _nal(0x67, _sps_rbsp()), _nal(0x68, _pps_rbsp())
    avcc = _box(
        b"avcC",
        struct.pack(">BBBBBB", 1, 66, 0xC0, 10, 0xFF, 0xE1)
        + struct.pack(">H", len(sps))
        + sps
        + b"\x01"
        + struct.pack(">H", len(pps))
        + pps,
    )
    return _box(
        b"avc1",
        bytes(6)
        + struct.pack(">H", 1)
        + bytes(16)
        + struct.pack(">HHII", WIDTH, HEIGHT, 0x480000, 0x480000)
        + bytes(4)
        + struct.pack(">H", 1)
        + bytes(32)
        + struct.pack(">Hh", 0x18, -1)
        + avcc,
    )


@cache
def _sample() -> bytes:
    """One IDR access unit, as a 4-byte length-prefixed NAL unit (avcC length size 4)."""
    idr = _nal(0x65, _idr_rbsp())
    return struct.pack(">I", len(idr)) + idr


class _Bits:
    """Big-endian bit writer with the Exp-Golomb codes H.264 headers use."""

    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, n: int, value: int) -> _Bits:
        self.bits.extend((value >> i) & 1 for i in range(n - 1, -1, -1))
        return self

    def ue(self, value: int) -> _Bits:
        code = value + 1
        return self.u(code.bit_length() - 1, 0).u(code.bit_length(), code)

    def se(self, value: int) -> _Bits:
        return self.ue(2 * value - 1 if value > 0 else -2 * value)

    def align_zero(self) -> _Bits:
        return self.u(-len(self.bits) % 8, 0)

    def trailing(self) -> bytes:
        """rbsp_trailing_bits: a stop bit, then zeros to the byte boundary."""
        self.u(1, 1).align_zero()
        return bytes(int("".join(map(str, self.bits[i : i + 8])), 2) for i in range(0, len(self.bits), 8))


def _sps_rbsp() -> bytes:
    # Constrained Baseline, level 1.0, 1x1 macroblocks, POC type 2, frames only, no VUI.
    return (
        _Bits()
        .u(8, 66)
        .u(8, 0xC0)
        .u(8, 10)
        .ue(0)
        .ue(0)
        .ue(2)
        .ue(1)
        .u(1, 0)
        .ue(0)
        .ue(0)
        .u(1, 1)
        .u(1, 1)
        .u(1, 0)
        .u(1, 0)
        .trailing()
    )


def _pps_rbsp() -> bytes:
    # CAVLC, one slice group, QP 26, deblocking control present.
    return (
        _Bits()
        .ue(0)
        .ue(0)
        .u(1, 0)
        .u(1, 0)
        .ue(0)
        .ue(0)
        .ue(0)
        .u(1, 0)
        .u(2, 0)
        .se(0)
        .se(0)
        .se(0)
        .u(1, 1)
        .u(1, 0)
        .u(1, 0)
        .trailing()
    )


def _idr_rbsp() -> bytes:
    # Slice header (I slice, IDR, deblocking off), then the single I_PCM macroblock.
    bits = _Bits().ue(0).ue(7).ue(0).u(4, 0).ue(0).u(1, 0).u(1, 0).se(0).ue(1).ue(25).align_zero()
    for _ in range(WIDTH * HEIGHT * 3 // 2):  # 256 luma + 2 x 64 chroma samples
        bits.u(8, _GREY)
    return bits.trailing()


def _nal(header: int, rbsp: bytes) -> bytes:
    """A NAL unit: header byte plus the RBSP with emulation-prevention bytes inserted."""
    out, zeros = bytearray([header]), 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)
