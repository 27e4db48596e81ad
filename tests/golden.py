"""Golden bundles: txtar-style files of named sections, read and written byte for byte.

A bundle is an optional leading comment, then sections. Each section starts with a
marker line `-- NAME --` and holds every line up to the next marker:

    comment: what this case is about
    -- main.kvs --
    shot 5s "a red balloon"
    -- exit --
    check: 0

Two flags in the marker keep odd contents exact (the writer picks them itself):
`-- NAME (noeol) --` drops the section's final newline, and `-- NAME (hex) --` holds
raw bytes as hex digits (whitespace ignored): a script that is not UTF-8, or text with a
control character (NUL, CR) or a line that looks like a marker. A hex section reads as
bytes, every other one as str; `text` turns either into str for comparing.
Reading then writing a bundle gives back the same bytes; section order is kept.
"""

from __future__ import annotations

import re
from pathlib import Path

_MARKER = re.compile(r"^-- (\S+?)(?: \((hex|noeol)\))? --$", re.M)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # CR, NUL, ...: invisible or mangled by tools


def parse(text: str) -> tuple[str, dict[str, str | bytes]]:
    """(comment, sections); a hex section's value is bytes, every other one str."""
    markers = list(_MARKER.finditer(text))
    comment = text[: markers[0].start()] if markers else text
    sections: dict[str, str | bytes] = {}
    for marker, following in zip(markers, [*markers[1:], None], strict=False):
        name, flag = marker.group(1), marker.group(2)
        body = text[marker.end() + 1 : following.start() if following else len(text)]
        if name in sections:
            raise ValueError(f"section {name!r} appears twice")
        sections[name] = (
            bytes.fromhex("".join(body.split()))
            if flag == "hex"
            else body.removesuffix("\n")
            if flag == "noeol"
            else body
        )
    return comment, sections


def format(comment: str, sections: dict[str, str | bytes]) -> str:
    """The inverse of `parse`: picks `(hex)` or `(noeol)` where plain text would be lossy."""
    out = [comment]
    for name, body in sections.items():
        if isinstance(body, str) and (_MARKER.search(body) or _CONTROL.search(body)):
            body = body.encode("utf-8")  # a marker-like line or a control character: only hex is safe
        if isinstance(body, bytes):
            hexed = body.hex()
            out.append(f"-- {name} (hex) --\n" + "".join(hexed[i : i + 64] + "\n" for i in range(0, len(hexed), 64)))
        elif body and not body.endswith("\n"):
            out.append(f"-- {name} (noeol) --\n{body}\n")
        else:
            out.append(f"-- {name} --\n{body}")
    return "".join(out)


def text(body: str | bytes | None) -> str | None:
    """A section as text, whichever way it was stored."""
    return body.decode("utf-8") if isinstance(body, bytes) else body


def read(path: Path) -> tuple[str, dict[str, str | bytes]]:
    return parse(path.read_bytes().decode("utf-8"))


def write(path: Path, comment: str, sections: dict[str, str | bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(format(comment, sections).encode("utf-8"))
