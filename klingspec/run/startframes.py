"""Start frames of a film's continued scenes: the last frame of a video as a PNG file.

A continued scene's request names its start frame by content (an uploaded image's URL is
`.../klingspec/<sha256>.png`), so the frame's bytes decide whether the ledger already holds
the scene's render. Those bytes must therefore be a function of the video alone, run after
run — also after an upgrade of FFmpeg, zlib or Pillow, any of which may change the bytes
decoded and written for the same video (and so pay again for every scene chained after it).

So the PNG is made once per video and kept: beside the video, as `<video stem>.last.png`
(the video's own name is unique to its request, so two films sharing a scene share the
frame and two films never overwrite each other's), and the ledger records which PNG was
made of which video (`start_frames`, by SHA-256) and keeps a copy of its own, named by
content, beside the ledger file (`<ledger>.frames/<sha256>.png`). While either copy is on
disk it is used as it is and the video is not decoded again; only when both are lost is
the frame made anew (and recorded). Each copy is written whole (a private temporary file,
fsynced, then renamed) before the ledger records it.

Every failure (the video gone or changed, undecodable, a disk full, a ledger that cannot
be written) is a `VideoError` naming its cause: a plan then counts the scene in full and
a run holds it back, never a traceback. Never prints.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import sys
import tempfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from klingspec.run.ledger import File, Ledger


PARTIAL_PREFIX = ".start-"


def frame_path(video: str) -> str:
    """Where the last frame of `video` is kept: beside it."""
    return os.path.splitext(os.path.abspath(video))[0] + ".last.png"


def start_frame(video: File, ledger: Ledger | None) -> str:
    """The PNG of `video`'s last frame: the one the ledger recorded, while a copy of it is
    on disk, else decoded now (PyAV), written and recorded. Raises VideoError when the
    video cannot be read (gone, changed since it was downloaded, or undecodable) or the
    frame cannot be kept."""
    import sqlite3

    from klingspec.run.video import VideoError

    out = frame_path(video.path)
    try:
        kept = ledger.start_frame(video.sha256) if ledger is not None else None
        if kept is not None:
            if _sha256_of(out) == kept:
                return out
            stored = _store(ledger, kept) if ledger is not None else None
            if stored is not None and _sha256_of(stored) == kept:
                with open(stored, "rb") as file:
                    _write(out, file.read())
                return out
        if _sha256_of(video.path) != video.sha256.removeprefix("sha256:"):  # the ledger writes it prefixed
            if not os.path.exists(video.path):
                raise VideoError(f"{video.path} is gone")
            raise VideoError(f"{video.path} changed since it was downloaded (its SHA-256 is not the ledger's)")
        png = last_frame_png(video.path)
        digest = hashlib.sha256(png).hexdigest()
        if _sha256_of(out) != digest:
            _write(out, png)
        if ledger is not None:
            store = _store(ledger, digest)
            if _sha256_of(store) != digest:
                _write(store, png)
            ledger.record_start_frame(video.sha256, digest)
    except OSError as error:
        raise VideoError(f"the last frame of {video.path} cannot be kept: {error.strerror or error}") from None
    except sqlite3.Error as error:
        raise VideoError(f"the ledger cannot record the last frame of {video.path}: {error}") from None
    return out


def _store(ledger: Ledger, digest: str) -> str:
    """The ledger's own copy of a frame, by content."""
    from klingspec.resources import private_dir

    return os.path.join(private_dir(ledger.path + ".frames"), f"{digest}.png")


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
    """Written whole or not at all, and lasting before it is recorded: a private temporary
    file beside it, fsynced, renamed over `out`, the folder fsynced. A temporary file
    left by a killed run (older than an hour) is removed on the way."""
    folder = os.path.dirname(out)
    os.makedirs(folder, exist_ok=True)
    _sweep(folder)
    descriptor, partial = tempfile.mkstemp(dir=folder, prefix=PARTIAL_PREFIX, suffix=".partial")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, out)
        _fsync_folder(folder)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def _sweep(folder: str) -> None:
    import time

    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(PARTIAL_PREFIX) and entry.name.endswith(".partial"):
                with contextlib.suppress(OSError):
                    if entry.stat(follow_symlinks=False).st_mtime < time.time() - 3600:
                        os.unlink(entry.path)


def _fsync_folder(folder: str) -> None:
    if sys.platform == "win32":  # a folder cannot be opened there; the rename is what there is
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
