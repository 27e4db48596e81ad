"""Local images: reading each file a script names, knowing what it holds, and the upload
it becomes.

Loaded only when a script names a local path (`assets.is_local_path`), so a URL-only
`check` never imports Pillow. A path is resolved, after templating, against the folder of
the file that names it (as `use` is); the file is read through the pipeline's reader (so
the check cache sees it) and identified by its content with Pillow, never by its name:
format, pixel size, and a full decode so a truncated file is caught. Model-dependent
rules (which formats, the limits other hosts publish) are checking rules that read the
`ImageFile`s this module attaches to the bound script.

Which repository they go to is the `assets` target: `--assets`, else the script's
`assets` setting, else the nearest `klingspec.toml` walking up from the script's folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, replace

from klingspec import ast
from klingspec.assets import AssetsTarget, is_local_path, parse_target, remote_path
from klingspec.binding import BoundScript
from klingspec.diagnostics import Diagnostic, Related
from klingspec.loading import Reader
from klingspec.project import Project
from klingspec.source import Source, Span

MAX_IMAGE_BYTES = 64 * 1024 * 1024  # klingspec's own bound on what it reads: far above any host's limit
# Pillow's format name -> (klingspec's name, MIME type, extension of the uploaded file).
# These four are decoded in full; any other format is reported by name, never decoded.
_DECODED = {
    "PNG": ("png", "image/png", "png"),
    "JPEG": ("jpeg", "image/jpeg", "jpg"),
    "MPO": ("jpeg", "image/jpeg", "jpg"),  # a camera JPEG with extra pictures: a JPEG first
    "WEBP": ("webp", "image/webp", "webp"),
    "GIF": ("gif", "image/gif", "gif"),
}


@dataclass(frozen=True)
class ImageFile:
    """What a local image file holds, by its content: the same for every model."""

    path: str  # absolute
    name: str  # as messages show it: relative to the working folder when the script was named so
    sha256: str  # hex digest of the file's bytes
    size: int  # bytes
    width: int
    height: int
    format: str  # "png", "jpeg", "webp", "gif", or Pillow's name in lower case ("bmp", "tiff")
    mime_type: str
    extension: str  # of the uploaded file: "png", "jpg", "webp", "gif"; "" when never uploaded


@dataclass(frozen=True)
class LocalImage:
    """One local image to upload and the URL the request body sends for it.

    `url` is `https://hub.oxen.ai/api/repos/{namespace}/{repo}/file/{branch}/{remote_path}`
    and `remote_path` is `klingspec/{sha256}.{extension}`: both follow from the content
    and the target alone, so they are known offline and equal on every machine. `path`
    and `span` are where the script first names the image.
    """

    path: str
    span: Span
    sha256: str
    size: int
    width: int
    height: int
    format: str
    mime_type: str
    namespace: str
    repo: str
    branch: str
    remote_path: str
    url: str


@dataclass(frozen=True)
class _Problem:
    code: str
    message: str
    help: str | None = None


def resolve(text: ast.Text, uri: str) -> tuple[str, str]:
    """(absolute path, path as shown) of a local image named by `text`: relative to the
    folder of the file that names it, shown as `use`d files are (relative to the
    working folder when the script was given so)."""
    shown = os.path.normpath(os.path.join(os.path.dirname(text.span.source.name), uri))
    return os.path.abspath(shown), shown


def local_texts(script: BoundScript) -> Iterator[ast.Text]:
    """The URIs of what the script sends that name local files."""
    for text in script.uri_texts():
        if is_local_path(script.expansion[text]):
            yield text


def attach(
    script: BoundScript, assets_option: str | None, reader: Reader, project: Project | None = None
) -> tuple[BoundScript, list[Diagnostic]]:
    """Read every local image the script sends, and give each a URL when an assets target
    is known. Returns the script with `local_files` and `uploads` filled in, and the
    problems with the files and the target."""
    diagnostics: list[Diagnostic] = []
    files: dict[int, ImageFile] = {}
    seen: dict[str, ImageFile | _Problem] = {}
    texts = list(local_texts(script))
    for text in texts:
        path, shown = resolve(text, script.expansion[text])
        found = seen.get(path)
        if found is None:
            found = seen[path] = inspect_file(path, shown, reader)
        if isinstance(found, ImageFile):
            files[id(text)] = found
        else:
            diagnostics.append(Diagnostic.of(found.code, text.span, found.message, found.help))
    target, problems = _target(script, assets_option, project or Project())
    diagnostics += problems
    uploads: dict[int, LocalImage] = {}
    if target is not None:
        for text in texts:
            file = files.get(id(text))
            if file is not None and file.extension:
                remote = remote_path(file.sha256, file.extension)
                uploads[id(text)] = LocalImage(
                    file.path,
                    text.span,
                    file.sha256,
                    file.size,
                    file.width,
                    file.height,
                    file.format,
                    file.mime_type,
                    target.namespace,
                    target.repo,
                    target.branch,
                    remote,
                    target.url(remote),
                )
    elif texts and not problems and not _invalid_setting(script) and not (project and project.problems):
        # (a broken project file is reported already: its [assets] may be what is meant)
        first, *others = texts
        diagnostics.append(
            Diagnostic.of(
                "KVS-assets-missing",
                first.span,
                "local images are uploaded to an Oxen repository, and none is given",
                'add `assets NAMESPACE/REPO` to the script (or `[assets] repo = "NAMESPACE/REPO"` to a '
                "klingspec.toml beside it, or pass --assets NAMESPACE/REPO); the image is stored there "
                "by its content and sent as that file's URL",
                related=[Related(t.span, "another local image") for t in others[:3]],
            )
        )
    return replace(script, local_files=files, uploads=uploads), diagnostics


def _invalid_setting(script: BoundScript) -> bool:
    """The script's own `assets` is malformed: KVS-assets says so already."""
    setting = script.settings.get("assets")
    return setting is not None and isinstance(parse_target(setting.raw, "the script"), str)


# -- the file ------------------------------------------------------------------------


def inspect_file(path: str, shown: str, reader: Reader) -> ImageFile | _Problem:
    """Read `path` and identify it by content with Pillow: format, size, a full decode."""
    try:
        data = reader(path, MAX_IMAGE_BYTES)
    except FileNotFoundError:
        return _Problem(
            "KVS-image-not-found",
            f"no such file: {shown}",
            _not_found_help(shown),
        )
    except IsADirectoryError:
        return _Problem("KVS-image-unreadable", f"cannot read {shown}: it is a folder", "name an image file in it")
    except OSError as error:
        return _Problem("KVS-image-unreadable", f"cannot read {shown}: {error.strerror or error}")
    except ValueError:  # the operating system takes no path with a NUL character in it
        return _Problem("KVS-image-unreadable", f"cannot read {shown!r}: a path cannot contain a NUL character")
    if not data:
        return _Problem("KVS-image-invalid", f"{shown} is empty (0 bytes)", "an unfinished download or copy?")
    if len(data) > MAX_IMAGE_BYTES:
        return _Problem(
            "KVS-image-too-large",
            f"{shown} is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MiB",
            "klingspec reads images up to that size; Kling's own API takes at most 10 MB: "
            "export it smaller (JPEG or WebP)",
        )
    return _identify(path, shown, data)


def _not_found_help(shown: str) -> str:
    first, slash, _ = shown.replace("\\", "/").partition("/")
    if slash and "." in first.strip(".") and not os.path.isabs(shown):  # `cdn.example.com/x.png`
        return f"a path without a scheme is a local file; if this is a web address, write https://{shown}"
    return "a path without a scheme is a local file, relative to the script that names it"


def _identify(path: str, shown: str, data: bytes) -> ImageFile | _Problem:
    import hashlib
    import io
    import warnings

    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's own size and truncation warnings: reported below instead
        try:
            with Image.open(io.BytesIO(data)) as image:
                kind = image.format or ""
                width, height = image.size
        except Image.DecompressionBombError:
            return _Problem(
                "KVS-image-too-large",
                f"{shown} has more pixels than klingspec decodes",
                "no host of the Kling models takes an image that large: export it smaller",
            )
        except UnidentifiedImageError:
            looks = "it holds text" if _text_like(data) else "its content is not in any image format klingspec reads"
            return _Problem(
                "KVS-image-invalid",
                f"{shown} is not an image: {looks}",
                "give a PNG, JPEG or WebP file; the name's extension does not make it one",
            )
        except Exception as error:  # Pillow raises many kinds for a damaged header
            return _damaged(shown, error)
        known = _DECODED.get(kind)
        if known is None:
            mime = Image.MIME.get(kind, "application/octet-stream")
            return ImageFile(
                path, shown, hashlib.sha256(data).hexdigest(), len(data), width, height, kind.lower(), mime, ""
            )
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.verify()  # checksums, where the format has them
            with Image.open(io.BytesIO(data)) as image:
                if kind in ("JPEG", "MPO"):
                    image.draft("RGB", (max(1, width // 8), max(1, height // 8)))  # every scan, an eighth the pixels
                image.load()  # reads to the end: a truncated file fails here
        except Exception as error:
            return _damaged(shown, error)
    name, mime, extension = known
    return ImageFile(path, shown, hashlib.sha256(data).hexdigest(), len(data), width, height, name, mime, extension)


def _damaged(shown: str, error: Exception) -> _Problem:
    reason = str(error) or type(error).__name__
    return _Problem(
        "KVS-image-invalid",
        f"{shown} is damaged or truncated: {reason}",
        "the API would fail to read it too; export or download the image again",
    )


def _text_like(data: bytes) -> bool:
    head = data[:512]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\n\r\t" for c in text)


# -- the assets target -----------------------------------------------------------------


def _target(
    script: BoundScript, assets_option: str | None, project: Project
) -> tuple[AssetsTarget | None, list[Diagnostic]]:
    """--assets, else the script's `assets`, else the project file's `[assets]` (whose
    mistakes the pipeline reports with the rest of the project file's)."""
    if assets_option:
        found = parse_target(assets_option, "--assets")
        if isinstance(found, str):
            source = Source("<--assets>", assets_option)
            return None, [Diagnostic.of("KVS-assets", source.whole(), found)]
        return found, []
    setting = script.settings.get("assets")
    if setting is not None:
        found = parse_target(setting.raw, "the script")
        return (None, []) if isinstance(found, str) else (found, [])
    return project.assets, []
