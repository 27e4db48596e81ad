"""A content-hash cache of `check` results, as ruff and mypy keep one, so that a
pre-commit hook checking unchanged scripts answers without loading the parser.

An entry is keyed by everything a check's result depends on: klingspec's own build (its
version, and the size and mtime of every file it ships: code, grammar, schemas, model
matrices), the script's path as given and as an absolute path, and the command's
options (`--var`, `--vars`, `--assets`); it records the content hash of every file the pipeline read or found missing
(the script, each `use`d file, each `--vars` file, each local image, and each
`klingspec.toml` looked for). A lookup is a hit only when all of
those files still hash the same. Entries live under `cache/` in the klingspec home;
`check --no-cache` or KLINGSPEC_NO_CACHE=1 bypass it, and a cache that cannot be read
or written is ignored: it is a shortcut, never a source of truth.

Entries are pickles of the diagnostics exactly as the pipeline built them (spans,
sources, suggestions): written and read only by this module, in the user's own home,
and never read by a klingspec build other than the one that wrote them.
"""

from __future__ import annotations

import contextlib
import functools
import os
import stat
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from klingspec import __version__, catalogue
from klingspec.diagnostics import Diagnostic
from klingspec.loading import MAX_FILE_BYTES, Reader, read_bytes
from klingspec.resources import private_dir

if TYPE_CHECKING:
    from hashlib import _Hash

FORMAT = 1
UNCACHEABLE = frozenset({"KVS-internal", "KVS-template-limit"})  # a bug, or a time bound: not repeatable


@functools.cache
def build_fingerprint() -> str:
    """Changes whenever klingspec's code or data changes, even without a new version."""
    from klingspec.resources import data_dirs

    digest = _sha256(f"{__version__}\0{FORMAT}".encode())
    for root in data_dirs():
        for folder, dirs, names in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(names):
                if name.endswith((".py", ".lark", ".json", ".toml")):
                    stat = os.stat(os.path.join(folder, name))
                    digest.update(f"{folder}/{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _sha256(data: bytes) -> _Hash:
    import hashlib  # only a cache in use hashes: `check --no-cache` never loads OpenSSL

    return hashlib.sha256(data)


def _content_hash(data: bytes | None) -> str | None:
    return None if data is None else _sha256(data).hexdigest()


@dataclass
class RecordingReader:
    """The pipeline's file reader, noting the hash of every file read (None: missing).
    Any other failure to read (a folder, no permission) makes the result uncacheable.
    Without `hashing` (no cache to fill) it notes which files were read, not their hashes."""

    read: Reader = read_bytes
    reads: dict[str, str | None] = field(default_factory=dict)
    cacheable: bool = True
    hashing: bool = True

    def __call__(self, path: str, limit: int = MAX_FILE_BYTES) -> bytes:
        key = os.path.abspath(path)
        if not _regular(path):  # a pipe or /dev/stdin cannot be read twice: never cached
            self.cacheable = False
        try:
            data = self.read(path, limit)
        except FileNotFoundError:
            self.reads[key] = None
            raise
        except OSError:
            self.cacheable = False
            raise
        self.reads[key] = _content_hash(data) if self.hashing else None
        return data


def _regular(path: str) -> bool:
    """A regular file (or one that does not exist yet): safe to hash again."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return True


def _current_hash(path: str) -> str | None:
    """The hash of the whole file. A file read only in part (past the reader's limit: an
    error already) then never matches its recorded hash: a miss, never a wrong hit."""
    import hashlib

    from klingspec.images import MAX_IMAGE_BYTES  # the largest file the pipeline reads

    try:
        return hashlib.sha256(read_bytes(path, MAX_IMAGE_BYTES)).hexdigest()  # regular, bounded
    except FileNotFoundError:
        return None
    except OSError:
        return "unreadable"  # never equal to a recorded hash: a miss


class CheckCache:
    """Check results by content; see the module docstring."""

    def __init__(self, folder: str | None):
        self.folder = folder  # None: disabled

    @property
    def enabled(self) -> bool:
        return self.folder is not None

    def reader(self) -> RecordingReader:
        """The reader for one check: it hashes what it reads only for a cache in use."""
        return RecordingReader(hashing=self.enabled)

    @classmethod
    def open(cls, enabled: bool = True) -> CheckCache:
        from klingspec.resources import home_dir

        if not enabled or os.environ.get("KLINGSPEC_NO_CACHE", "") not in ("", "0"):
            return cls(None)
        return cls(os.path.join(home_dir(), "cache", f"check-{FORMAT}"))

    def _entry(self, path: str, var_options: Sequence[str], var_files: Sequence[str], assets: str | None) -> str | None:
        if self.folder is None:
            return None
        key: list[Any] = [
            build_fingerprint(),
            catalogue.stamp(),  # a sync changes the facts the checker uses
            sys.version,
            sys.prefix,
            os.getcwd(),
            path,
            os.path.abspath(path),
            list(var_options),
            [[f, os.path.abspath(f)] for f in var_files],
            assets,
        ]
        digest = _sha256(repr(key).encode()).hexdigest()  # str and list reprs are stable
        return os.path.join(self.folder, digest[:2], digest[2:] + ".pickle")

    def get(
        self, path: str, var_options: Sequence[str], var_files: Sequence[str], *, assets: str | None = None
    ) -> tuple[Diagnostic, ...] | None:
        """The stored diagnostics, if every file they came from is unchanged."""
        entry = self._entry(path, var_options, var_files, assets)
        if entry is None or not _regular(path):
            return None
        import pickle

        try:
            with open(entry, "rb") as handle:
                reads, diagnostics = pickle.load(handle)
        except Exception:  # missing, truncated or from another klingspec: a miss
            return None
        if any(_current_hash(p) != digest for p, digest in reads.items()):
            return None
        return tuple(diagnostics)

    def put(
        self,
        path: str,
        var_options: Sequence[str],
        var_files: Sequence[str],
        reader: RecordingReader,
        diagnostics: Iterable[Diagnostic],
        *,
        assets: str | None = None,
    ) -> None:
        """Store a result, unless it depends on something the hashes cannot see."""
        entry = self._entry(path, var_options, var_files, assets)
        diagnostics = tuple(diagnostics)
        if entry is None or not reader.cacheable or any(d.code in UNCACHEABLE for d in diagnostics):
            return
        import pickle
        import tempfile  # only a miss writes

        with contextlib.suppress(Exception):  # a read-only home, a full disk: just no cache
            private_dir(os.path.dirname(entry))
            handle, tmp = tempfile.mkstemp(dir=os.path.dirname(entry), suffix=".tmp")
            try:
                with os.fdopen(handle, "wb") as out:
                    pickle.dump((reader.reads, diagnostics), out, protocol=pickle.HIGHEST_PROTOCOL)
                os.replace(tmp, entry)
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
