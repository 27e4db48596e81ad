"""What a result video shows, and the real video made of it with PyAV (the `video` extra).

A result is decodable footage whose frames carry what was asked, so tests can check a
film's seams: every frame is one flat colour.

- Each shot's frames (`multi_prompt`, or the one `prompt`) are the colour of that shot's
  prompt for that shot's seconds: the first colour word of the prompt (`COLOURS`, whole
  words, case-insensitive), else a stable colour from the SHA-256 of the prompt.
- With a start frame (`start_image_url`, or the one-string `input_image` of the models
  whose image is the start, as in `validation.py`) that the sandbox read while fetching
  the job's inputs (its repository store or a loopback URL; an example-domain URL is never
  read), the first `START_FRAMES` frames (0.5 s) are that image's average colour.
- H.264 (libx264, yuv420p) at `FPS` frames a second, small: 96x54 for 16:9 (the default),
  54x96 for 9:16, 64x64 for 1:1. The video stream lasts exactly the requested seconds.
  With `generate_audio: true`, an AAC track of silence (48 kHz stereo) of the same length.
- Deterministic: one encoder thread, no B-frames, a key frame every second; the same
  request (and the same start image) gives the same bytes. `render` keeps recent results.

Without PyAV (`available()` is False: the quick start installs no video extra) results
stay `mp4.py`'s pure-Python grey frame, and so do padded results (`SandboxConfig.file_size`,
the download benchmarks): padding is a streamed tail of zeros in that format.

PyAV is imported by `render` only, never at import time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import cache, lru_cache
from typing import Any

from PIL import Image, ImageStat

from klingspec.sandbox.catalog import ModelSpec
from klingspec.sandbox.validation import shots, total_seconds

FPS = 8
START_FRAMES = FPS // 2  # the start image's colour is shown for the first 0.5 s
AUDIO_RATE = 48_000
SIZES = {"16:9": (96, 54), "9:16": (54, 96), "1:1": (64, 64)}
DEFAULT_ASPECT = "16:9"  # the request schema's default

RGB = tuple[int, int, int]

# The colour words a prompt can name; the first one found in a shot's prompt is its colour.
COLOURS: dict[str, RGB] = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "orange": (255, 128, 0),
    "purple": (128, 0, 128),
    "pink": (255, 105, 180),
    "brown": (139, 69, 19),
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "grey": (128, 128, 128),
    "gray": (128, 128, 128),
    "cyan": (0, 255, 255),
    "magenta": (255, 0, 255),
}
_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Picture:
    """Everything the frames and the sound of one result depend on (so: its cache key)."""

    shots: tuple[tuple[RGB, int], ...]  # (colour, seconds) per shot, in order
    start: RGB | None = None
    size: tuple[int, int] = SIZES[DEFAULT_ASPECT]
    sound: bool = False

    @property
    def seconds(self) -> int:
        return sum(seconds for _, seconds in self.shots)


@cache
def available() -> bool:
    """Whether PyAV can be imported (the `video` extra is installed)."""
    return importlib.util.find_spec("av") is not None


def colour_of(prompt: object) -> RGB:
    """The first colour word of `prompt`, else a colour derived from its hash."""
    text = prompt if isinstance(prompt, str) else ""
    for word in _WORD.findall(text.lower()):
        if word in COLOURS:
            return COLOURS[word]
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return digest[0], digest[1], digest[2]


def start_url(body: Mapping[str, Any], spec: ModelSpec) -> str | None:
    """The URL of the request's start frame, if it has one (the rule of `validation.py`)."""
    url = body.get("start_image_url") or (spec.string_image and body.get("input_image"))
    return url if isinstance(url, str) else None


def average_colour(data: bytes) -> RGB | None:
    """The mean colour of the image in `data` (its first frame), or None if Pillow cannot read it."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.thumbnail((256, 256))  # a large image is averaged from a reduced copy
            mean = ImageStat.Stat(image.convert("RGB")).mean
    except Exception:  # Pillow raises many kinds for bytes that are not a whole image
        return None
    red, green, blue = (round(v) for v in mean)
    return red, green, blue


def picture_of(body: Mapping[str, Any], spec: ModelSpec, start: RGB | None = None) -> Picture:
    """What a valid request's result shows; `start` is its start image's colour, if read."""
    if spec.has_duration:
        parts = tuple(
            (colour_of(shot.get("prompt")), spec.default_duration if shot.get("duration") is None else shot["duration"])
            for shot in shots(body)
        )
    else:  # the length follows the input video: one shot (validation.total_seconds)
        parts = ((colour_of(shots(body)[0].get("prompt")), total_seconds(body, spec)),)
    aspect = body.get("aspect_ratio")
    size = SIZES.get(aspect if isinstance(aspect, str) else DEFAULT_ASPECT, SIZES[DEFAULT_ASPECT])
    return Picture(parts, start, size, body.get("generate_audio") is True)


@lru_cache(maxsize=128)
def render(picture: Picture) -> bytes:
    """The MP4 of `picture` (PyAV; a 15 s result takes about 0.1-0.2 s and 5-15 KB)."""
    av: Any = importlib.import_module("av")  # the `video` extra; see `available`

    width, height = picture.size
    buffer = io.BytesIO()
    # No `faststart`: it needs a file it can reopen. The moov box follows the mdat.
    with av.open(buffer, "w", format="mp4") as output:
        video = output.add_stream("libx264", rate=FPS, options={"bframes": "0", "g": str(FPS), "threads": "1"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.codec_context.thread_count = 1
        sound = output.add_stream("aac", rate=AUDIO_RATE, layout="stereo") if picture.sound else None
        frames: dict[RGB, Any] = {}
        index = 0
        for colour, seconds in picture.shots:
            for _ in range(seconds * FPS):
                shown = picture.start if picture.start is not None and index < START_FRAMES else colour
                if shown not in frames:
                    flat = Image.new("RGB", (width, height), shown)
                    frames[shown] = av.VideoFrame.from_image(flat).reformat(format="yuv420p")
                frame = frames[shown]
                frame.pts, frame.time_base = index, Fraction(1, FPS)
                index += 1
                output.mux(video.encode(frame))
        output.mux(video.encode())
        if sound is not None:
            position, end = 0, picture.seconds * AUDIO_RATE
            while position < end:
                samples = min(1024, end - position)
                silence = av.AudioFrame(format="fltp", layout="stereo", samples=samples)
                for plane in silence.planes:
                    plane.update(bytes(plane.buffer_size))
                silence.sample_rate, silence.pts = AUDIO_RATE, position
                position += samples
                output.mux(sound.encode(silence))
            output.mux(sound.encode())
    return buffer.getvalue()
