"""Start frames of a film's continued scenes: the last frame of a video as a PNG file.

A continued scene's request names its start frame by content (an uploaded image's URL is
`.../klingspec/<sha256>.png`), so the frame's bytes decide whether the ledger already holds
the scene's render. Those bytes must therefore be a function of the video alone, run after
run — also after an upgrade of FFmpeg, zlib or Pillow, any of which may change the bytes
decoded and written for the same video (and so pay again for every scene chained after it).

So the PNG is made once per video and kept: beside the video, as `<video stem>.last.png`
(the video's own name is unique to its request, so two films sharing a scene share the
frame and two films never overwrite each other's), and the ledger records which PNG was
made of which video (`start_frames`, by SHA-256). While that PNG is on disk it is used as
it is and the video is not decoded again; only a lost or altered PNG is made anew (and
recorded). Never prints.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from klingspec.run.ledger import File, Ledger


def frame_path(video: str) -> str:
    """Where the last frame of `video` is kept: beside it."""
    return os.path.splitext(os.path.abspath(video))[0] + ".last.png"


def start_frame(video: File, ledger: Ledger | None) -> str:
    """The PNG of `video`'s last frame: the one the ledger recorded while it is on disk
    unchanged, else decoded now (PyAV), written and recorded. Raises VideoError when the
    video cannot be read (gone, changed since it was downloaded, or undecodable)."""
    from klingspec.run.video import VideoError

    out = frame_path(video.path)
    kept = ledger.start_frame(video.sha256) if ledger is not None else None
    if kept is not None and _sha256_of(out) == kept:
        return out
    try:
        size = os.path.getsize(video.path)
    except OSError as error:
        raise VideoError(f"{video.path} is gone ({error.strerror})") from None
    if size != video.bytes:
        raise VideoError(f"{video.path} changed since it was downloaded ({size:,} B, the ledger says {video.bytes:,})")
    png = last_frame_png(video.path)
    if _sha256_of(out) != hashlib.sha256(png).hexdigest():
        _write(out, png)
    if ledger is not None:
        ledger.record_start_frame(video.sha256, hashlib.sha256(png).hexdigest())
    return out


def last_frame_png(video: str) -> bytes:
    """The last frame of `video` as PNG bytes (RGB; Pillow writes no time into a PNG)."""
    from klingspec.run.video import last_frame

    data = io.BytesIO()
    last_frame(video).convert("RGB").save(data, "PNG")
    return data.getvalue()


def _sha256_of(path: str) -> str | None:
    try:
        with open(path, "rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()
    except OSError:
        return None


def _write(out: str, data: bytes) -> None:
    """Written whole or not at all, through a private temporary file beside it."""
    folder = os.path.dirname(out)
    os.makedirs(folder, exist_ok=True)
    descriptor, partial = tempfile.mkstemp(dir=folder, prefix=".start-", suffix=".partial")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        os.replace(partial, out)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
