"""Writing results to disk: streamed base64 decoding and atomic placement.

A `b64_json` response carries the whole video inside a JSON string. Decoding it with
`json.loads` + `base64.b64decode` holds three copies; here the response is first
streamed to a file, then the base64 text is decoded in fixed-size chunks straight into
the destination's temporary file, which is renamed into place only when complete.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from typing import BinaryIO

_KEY = b'"b64_json"'
CHUNK = 1 << 16


def create_part(path: str) -> BinaryIO:
    """A new temporary file at `path`, for writing. A symlink there (planted in the out
    folder, pointing out of it) is removed, never written through, and one planted again
    meanwhile is refused (`O_NOFOLLOW`): the bytes go only where klingspec chose, and
    `os.replace` then puts the whole file in place of any link at the video's own name."""
    try:
        if stat.S_ISLNK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o666)
    return os.fdopen(descriptor, "wb")


class NotAVideo(ValueError):
    """A decoded `b64_json` video that is no MP4, or larger than a video can be."""


def decode_b64_videos(json_path: str, destinations: list[str], max_bytes: int | None = None) -> list[tuple[str, int]]:
    """Decode each `"b64_json": "..."` string in the JSON file at `json_path`, in order,
    into `destinations` (renamed into place when done). With `max_bytes` each is first
    checked to be an MP4 of at most that many bytes (NotAVideo otherwise, and nothing is
    left behind). Returns (sha256, size) for each."""
    results = []
    with open(json_path, "rb") as handle:
        for destination in destinations:
            if not _seek_past(handle, _KEY):
                break
            _skip_to_quote(handle)
            results.append(_decode_string(handle, destination, max_bytes))
    return results


def _seek_past(handle: BinaryIO, needle: bytes) -> bool:
    window = b""
    while True:
        chunk = handle.read(CHUNK)
        if not chunk:
            return False
        window += chunk
        index = window.find(needle)
        if index != -1:
            handle.seek(handle.tell() - (len(window) - index - len(needle)))
            return True
        window = window[-len(needle) :]


def _skip_to_quote(handle: BinaryIO) -> None:
    while True:
        byte = handle.read(1)
        if not byte or byte == b'"':
            return


def _decode_string(handle: BinaryIO, destination: str, max_bytes: int | None = None) -> tuple[str, int]:
    part = destination + ".part"
    try:
        sha, size = _decode_to(handle, part, max_bytes)
        with open(part, "rb") as written:
            head = written.read(8)
        if max_bytes is not None and not (len(head) >= 8 and head[4:8] == b"ftyp"):
            raise NotAVideo("the answer's video is not an MP4 (no `ftyp` box at its start)")
        os.replace(part, destination)
    finally:
        if os.path.exists(part):
            os.unlink(part)
    return sha, size


def _decode_to(handle: BinaryIO, part: str, max_bytes: int | None) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    pending = b""
    carry = b""
    with create_part(part) as out:
        done = False
        while not done:
            chunk = handle.read(CHUNK)
            if not chunk:
                break
            end = chunk.find(b'"')
            if end != -1:
                handle.seek(handle.tell() - (len(chunk) - end - 1))
                chunk = chunk[:end]
                done = True
            chunk, carry = carry + chunk, b""
            if chunk.endswith(b"\\") and not done:  # an escape split across two reads
                chunk, carry = chunk[:-1], b"\\"
            # JSON may escape "/" as "\/" and wrap lines with "\n": drop the escapes.
            chunk = chunk.replace(b"\\/", b"/").replace(b"\\n", b"").replace(b"\\r", b"")
            data = pending + chunk
            usable = len(data) - len(data) % 4
            decoded = base64.b64decode(data[:usable]) if usable else b""
            pending = data[usable:]
            out.write(decoded)
            digest.update(decoded)
            size += len(decoded)
            if max_bytes is not None and size > max_bytes:
                raise NotAVideo(f"the answer's video is larger than a video can be ({max_bytes:,} bytes)")
        if pending:
            decoded = base64.b64decode(pending + b"=" * (-len(pending) % 4))
            out.write(decoded)
            digest.update(decoded)
            size += len(decoded)
        out.flush()
        os.fsync(out.fileno())
    return "sha256:" + digest.hexdigest(), size


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()
