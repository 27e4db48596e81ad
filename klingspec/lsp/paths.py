"""Local paths in the editor: which URI literal names a local file, where that file is,
and a short description of an image file read from its header only; and which script a
`use` or a film's `scene NAME "FILE"` names, for "go to definition".

A URI without a scheme names a file relative to the file that names it (`images.resolve`,
as the checker resolves it). The editor completes such paths from the filesystem, opens
the file on "go to definition" and describes it on hover; completion runs on every
keystroke, so it never decodes an image: Pillow's `Image.open` reads the header (format
and pixel size) and nothing more, and descriptions are cached by size and mtime.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from klingspec import ast
from klingspec.assets import is_local_path
from klingspec.lsp import scenes
from klingspec.pipeline import Result

IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "webp")  # taken by every model; `gif` where the model lists it


@dataclass(frozen=True)
class LocalPath:
    """A URI literal naming a local file: the literal, the file's absolute path and the
    path as the script writes it (expanded)."""

    text: ast.Text
    path: str
    written: str


def uri_texts(statement: ast.Statement) -> Iterator[ast.Text]:
    """The URI literals of a statement: an image's, an element's views, a frame's."""
    if isinstance(statement, (ast.Image, ast.Frame)):
        yield statement.uri
    elif isinstance(statement, ast.Element):
        for field in statement.fields:
            yield from field.uris


def local_path_at(result: Result, path: str, offset: int) -> LocalPath | None:
    """The local path whose string literal (quotes included) holds `offset` of `path`."""
    if result.program is None:
        return None
    for script in result.program.files:
        if script.source.name != path:
            continue
        for statement in script.statements:
            for text in uri_texts(statement):
                if text.span.start <= offset <= text.span.end:
                    written = result.bound.expansion[text] if result.bound else text.literal
                    if not is_local_path(written):
                        return None
                    from klingspec.images import resolve

                    return LocalPath(text, resolve(text, written)[0], written)
    return None


def script_at(result: Result, offset: int) -> str | None:
    """The script file named at `offset` of the main file: by a `use` (the main script's,
    or one in a film's scene written in place) or by a film's `scene NAME "FILE"` (on
    its path). Absolute, as the loader resolves it: relative to the file that names it."""
    if result.film is not None:
        for scene in result.film.scenes:
            written = scene.scene.path
            if written is not None and written.span.start <= offset <= written.span.end:
                return os.path.abspath(scene.path)
        result = scenes.within(result, offset)
    if result.program is None:
        return None
    main = result.program.main
    for use in main.of(ast.Use):
        if use.span.start <= offset <= use.span.end:
            return os.path.abspath(os.path.join(os.path.dirname(main.source.name), use.path.value))
    return None


def describe(path: str) -> str | None:
    """`PNG 320x320, 4,213 bytes` from the file's header; None when it is not a file."""
    try:
        stat = os.stat(path)
    except (OSError, ValueError):
        return None
    return _describe(path, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=1024)
def _describe(path: str, mtime_ns: int, size: int) -> str:
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's size warnings: the checker reports sizes
            with Image.open(path) as image:  # lazy: reads the header, decodes no pixel
                kind = (image.format or "").upper()
                width, height = image.size
    except Exception:  # not an image, or one Pillow refuses to open: the checker says which
        return f"not an image Pillow can read, {size:,} bytes"
    return f"{kind} {width}x{height}, {size:,} bytes"
