"""The videos themselves, read and joined with PyAV: what a film needs once its scenes are
downloaded (a scene's last frame becomes the next scene's start frame; the chosen takes
become one MP4).

- `probe`: the streams of a file and its exact length (the video stream's own duration).
- `last_frame`: the last picture of the video, as a Pillow image. It seeks to the last key
  frame before the end and decodes from there, so a 15 s clip costs a few frames, not all.
- `join`: clips in order into one MP4. When every clip's streams match (codec, size,
  pixel format, the codec's own parameters, the audio's rate and layout) the packets are
  copied (remuxed): nothing is re-encoded, the pictures are the originals, and the cost is
  that of copying the bytes. Otherwise the video is re-encoded (H.264, the first clip's
  size) and the audio too (AAC); a clip without sound contributes silence of its length,
  so the sound stays in step with the pictures.

PyAV is imported by each function, never by the module's importers: only a film run and
its tests pay for it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL.Image import Image

AUDIO_RATE = 48_000  # Hz: what a re-encoded join's sound is resampled to


class VideoError(Exception):
    """A file that is not a video PyAV can read, or a join that cannot be made."""


@dataclass(frozen=True)
class Stream:
    kind: str  # "video" or "audio"
    codec: str
    width: int = 0
    height: int = 0
    pixel_format: str = ""
    rate: Fraction | int = 0  # frames per second, or samples per second
    layout: str = ""
    extradata: bytes = b""  # the codec's own parameters (SPS/PPS for H.264): equal, or no copy


@dataclass(frozen=True)
class VideoInfo:
    path: str
    seconds: float  # the video stream's duration
    streams: tuple[Stream, ...]

    @property
    def video(self) -> Stream:
        return next(s for s in self.streams if s.kind == "video")

    @property
    def audio(self) -> Stream | None:
        return next((s for s in self.streams if s.kind == "audio"), None)


@dataclass(frozen=True)
class Joined:
    path: str
    seconds: float  # the joined file's video duration, read back from it
    remuxed: bool  # True: packets copied; False: re-encoded


def probe(path: str) -> VideoInfo:
    av = _av()
    try:
        with av.open(path) as container:
            streams = []
            seconds = 0.0
            for s in container.streams:
                if s.type == "video":
                    c = s.codec_context
                    streams.append(
                        Stream(
                            "video",
                            c.name,
                            c.width,
                            c.height,
                            c.pix_fmt or "",
                            s.average_rate or 0,
                            extradata=bytes(c.extradata or b""),
                        )
                    )
                    seconds = _seconds(s, container)
                elif s.type == "audio":
                    c = s.codec_context
                    extra = bytes(c.extradata or b"")
                    streams.append(Stream("audio", c.name, rate=c.sample_rate, layout=c.layout.name, extradata=extra))
    except av.FFmpegError as error:
        raise VideoError(f"{path} is not a video klingspec can read: {error}") from None
    if not any(s.kind == "video" for s in streams):
        raise VideoError(f"{path} has no video stream")
    return VideoInfo(path, seconds, tuple(streams))


def last_frame(path: str) -> Image:
    """The last picture of the video at `path`."""
    av = _av()
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            end = _seconds(stream, container)
            if stream.time_base and end > 1:
                container.seek(int((end - 1) / stream.time_base), stream=stream, backward=True, any_frame=False)
            last = None
            for frame in container.decode(stream):
                last = frame
            if last is None:  # the seek overshot: decode from the start
                container.seek(0, stream=stream)
                for frame in container.decode(stream):
                    last = frame
    except av.FFmpegError as error:
        raise VideoError(f"cannot read the frames of {path}: {error}") from None
    if last is None:
        raise VideoError(f"{path} has no frame")
    image: Image = last.to_image()
    return image


def join(paths: Sequence[str], out: str) -> Joined:
    """`paths` in order into the MP4 `out` (written beside it first, then moved in place)."""
    if not paths:
        raise VideoError("nothing to join")
    infos = [probe(p) for p in paths]
    remux = _matching(infos)
    partial = out + ".partial.mp4"
    av = _av()
    try:
        if remux:
            try:
                _remux(infos, partial)
            except _NotCopyable:
                remux = False
        if not remux:
            _reencode(infos, partial)
        os.replace(partial, out)
    except (av.FFmpegError, OSError) as error:  # a disk full, a stream PyAV cannot write
        raise VideoError(f"cannot join into {out}: {error}") from None
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return Joined(out, probe(out).seconds, remux)


class _NotCopyable(Exception):
    """The packets cannot be copied in order (their decoding times would overlap)."""


def _matching(infos: Sequence[VideoInfo]) -> bool:
    first = infos[0].streams
    return all(info.streams == first for info in infos[1:])


def _remux(infos: Sequence[VideoInfo], out: str) -> None:
    av = _av()
    with av.open(out, "w", format="mp4") as output:
        targets: dict[str, Any] = {}
        offsets: dict[str, int] = {}
        last: dict[str, int] = {}  # the last decoding time muxed, per stream, in its time base
        for info in infos:
            with av.open(info.path) as source:
                streams = [s for s in source.streams if s.type in ("video", "audio")]
                if not targets:
                    for s in streams:
                        targets[s.type] = output.add_stream_from_template(s)
                        offsets[s.type] = 0
                ends = dict.fromkeys(targets, 0)
                for packet in source.demux(streams):
                    if packet.dts is None:
                        continue  # the demuxer's flush packet
                    kind = packet.stream.type
                    target = targets[kind]
                    shift = _rescale(offsets[kind], target.time_base, packet.time_base)
                    ends[kind] = max(ends[kind], packet.pts + (packet.duration or 0) if packet.pts is not None else 0)
                    packet.pts = packet.pts + shift if packet.pts is not None else None
                    packet.dts += shift
                    dts = _rescale(packet.dts, packet.time_base, target.time_base)
                    if kind in last and dts <= last[kind]:
                        if kind == "audio":
                            continue  # the next clip's encoder priming, under the last one's end
                        raise _NotCopyable
                    last[kind] = dts
                    packet.stream = target
                    output.mux(packet)
                for s in streams:
                    offsets[s.type] += _rescale(ends[s.type], s.time_base, targets[s.type].time_base)


def _reencode(infos: Sequence[VideoInfo], out: str) -> None:
    av = _av()
    first = infos[0].video
    rate = Fraction(first.rate) if first.rate else Fraction(24)
    audio = any(info.audio is not None for info in infos)
    with av.open(out, "w", format="mp4") as output:
        video = output.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = first.width, first.height, "yuv420p"
        sound = output.add_stream("aac", rate=AUDIO_RATE, layout="stereo") if audio else None
        index, start = 0, 0.0
        for info in infos:
            with av.open(info.path) as source:
                for frame in source.decode(source.streams.video[0]):
                    picture = frame.reformat(width=first.width, height=first.height, format="yuv420p")
                    picture.pts = index
                    picture.time_base = 1 / rate
                    index += 1
                    for packet in video.encode(picture):
                        output.mux(packet)
            if sound is not None:
                for packet in _sound(info, start, sound):
                    output.mux(packet)
            start += info.seconds
            index = max(index, round(start * rate))  # the next clip starts where this one's time ends
        for packet in video.encode():
            output.mux(packet)
        if sound is not None:
            for packet in sound.encode():
                output.mux(packet)


def _sound(info: VideoInfo, start: float, sound: Any) -> Iterator[Any]:
    """The clip's sound resampled for the output (or silence of its length), from `start`."""
    av = _av()
    resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
    position = round(start * AUDIO_RATE)
    end = position + round(info.seconds * AUDIO_RATE)
    frames: list[Any] = []
    if info.audio is not None:
        with av.open(info.path) as source:
            for frame in source.decode(source.streams.audio[0]):
                frame.pts = None
                frames += resampler.resample(frame)
            frames += resampler.resample(None)
    for frame in frames:
        if position >= end:
            break
        frame.pts = position
        position += frame.samples
        yield from sound.encode(frame)
    while position < end:  # no sound, or less sound than pictures: silence
        samples = min(1024, end - position)
        silence = av.AudioFrame(format="fltp", layout="stereo", samples=samples)
        for plane in silence.planes:
            plane.update(bytes(plane.buffer_size))
        silence.sample_rate = AUDIO_RATE
        silence.pts = position
        position += samples
        yield from sound.encode(silence)


def _seconds(stream: Any, container: Any) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return float(container.duration or 0) / 1_000_000


def _rescale(value: int, source: Fraction, target: Fraction) -> int:
    return round(value * source / target)


def _av() -> Any:
    try:
        import av
    except ImportError as error:  # an install without the video extra
        raise VideoError("reading and joining videos needs PyAV: pip install 'klingspec[video]'") from error
    return av
