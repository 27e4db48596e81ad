"""The synced model catalogue: what the API last said about its models, kept on disk.

`klingspec models sync` (run/syncing.py) fetches `GET /ai/models` and each Kling video
model's `GET /ai/models/{id}` and saves them here, in the klingspec home, with the fetch
time and the listing's ETag or hash. Everything else only reads the file: `check` and
`plan` never touch the network. `targets.model` lays these facts over the built-in
capability matrices (`overlay`), so a price or an enum the API changed is what the checker
and the pricer use, and a model the catalogue dropped is reported as retired.

Only facts the published objects carry are taken: the `pricing` fields, and from the
`request_schema` the enums, defaults and limits of the fields it lists. The schemas leave
out `prompt`, `multi_prompt` and `duration` for some models (fact sheet 5.2), so a field's
absence never removes a feature from a matrix; it shows up in the sync's report instead.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from klingspec.resources import home_dir, private_dir

FORMAT = "klingspec-catalogue/1"
FILE_NAME = "catalogue.json"
VIDEO_ENDPOINT = "/videos/generate"


@dataclass(frozen=True, eq=False)  # compared by identity: one object per read of the file
class Listed:
    """One model's object as `GET /ai/models/{id}` answered it (kept whole for `models ID`)."""

    id: str
    detail: Mapping[str, Any]

    @property
    def deprecated(self) -> bool:
        """The hub's catalogue marks retired models `deprecated` (fact sheet 0.3); a model
        that is listed but not runnable counts as retired too."""
        return bool(self.detail.get("deprecated")) or self.detail.get("can_run_inference") is False

    @property
    def summary(self) -> str:
        return str(self.detail.get("summary") or self.detail.get("display_name") or "")

    @property
    def pricing(self) -> Mapping[str, Any]:
        pricing = self.detail.get("pricing")
        return pricing if isinstance(pricing, dict) else {}

    @property
    def schema(self) -> Mapping[str, Any] | None:
        schema = self.detail.get("request_schema")
        return schema if isinstance(schema, dict) else None

    def properties(self) -> Mapping[str, Mapping[str, Any]]:
        props = (self.schema or {}).get("properties")
        return {k: v for k, v in props.items() if isinstance(v, dict)} if isinstance(props, dict) else {}


@dataclass(frozen=True, eq=False)
class Catalogue:
    """A sync's result: every id the listing named, and the Kling video models' details."""

    api_url: str
    fetched_at: float  # Unix seconds
    etag: str | None
    sha256: str  # of the listing's bytes: what changed, where the API sends no ETag
    listed: frozenset[str]  # every model id the listing named (any kind)
    models: Mapping[str, Listed]  # the Kling video models, by id

    def get(self, model_id: str) -> Listed | None:
        return self.models.get(model_id)

    def when(self) -> str:
        return when(self.fetched_at)

    def age(self, now: float | None = None) -> str:
        return age(self.fetched_at, now)

    def as_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "api_url": self.api_url,
            "fetched_at": self.fetched_at,
            "etag": self.etag,
            "sha256": self.sha256,
            "listed": sorted(self.listed),
            "models": {k: dict(v.detail) for k, v in sorted(self.models.items())},
        }

    @classmethod
    def from_json(cls, data: Any) -> Catalogue | None:
        """The catalogue a file holds, or None when it is not one klingspec wrote."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return None
        models, listed = data.get("models"), data.get("listed")
        if not isinstance(models, dict) or not isinstance(listed, list):
            return None
        fetched_at = data.get("fetched_at")
        if not isinstance(fetched_at, int | float) or isinstance(fetched_at, bool) or not 0 < fetched_at < 1e11:
            return None  # no fetch time people could read (NaN, infinite, or a wild number)
        try:
            return cls(
                api_url=str(data["api_url"]),
                fetched_at=float(fetched_at),
                etag=data.get("etag") if isinstance(data.get("etag"), str) else None,
                sha256=str(data["sha256"]),
                listed=frozenset(str(i) for i in listed),
                models={str(k): Listed(str(k), v) for k, v in models.items() if isinstance(v, dict)},
            )
        except (KeyError, TypeError, ValueError):
            return None


def when(fetched_at: float) -> str:
    """A fetch time as people read it: `2026-12-01 06:10 UTC`."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(fetched_at))


def age(fetched_at: float, now: float | None = None) -> str:
    """How old facts fetched at `fetched_at` are: `3 hours old`, `12 days old`."""
    seconds = max(0.0, (time.time() if now is None else now) - fetched_at)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''} old"
    return "just fetched"


def is_kling_video(model: Mapping[str, Any]) -> bool:
    """A model object klingspec can target: a Kling video model (the listing holds chat
    and image models too). The endpoint is read loosely: clients have seen it spelled
    several ways (fact sheet 5.1), and a Kling video id says enough."""
    model_id = model.get("id")
    endpoint = model.get("endpoint")
    return (
        isinstance(model_id, str)
        and model_id.startswith("kling-video")
        and (endpoint is None or (isinstance(endpoint, str) and "video" in endpoint))
    )


def path() -> str:
    """Where the synced catalogue lives: `<klingspec home>/catalogue.json`."""
    return os.path.join(home_dir(), FILE_NAME)


_loaded: dict[str, tuple[tuple[int, ...], Catalogue | None]] = {}


MAX_BYTES = 64 * 1024 * 1024  # a catalogue is kilobytes; a file this big is not one


def _key(stat: os.stat_result) -> tuple[int, ...]:
    """What identifies one version of the file: `save` replaces it, so a new sync is a new
    inode even within one tick of a coarse mtime."""
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def stamp(where: str | None = None) -> str:
    """A cheap fingerprint of the file, for caches keyed on the facts."""
    try:
        stat = os.stat(where or path())
    except OSError:
        return "none"
    return ":".join(str(n) for n in _key(stat))


def load(where: str | None = None) -> Catalogue | None:
    """The synced catalogue, or None when there is none (or it cannot be read: the
    built-in matrices stand then, as before any sync). Read once per change of the file,
    so the editor and the watcher see a new sync without a restart."""
    where = where or path()
    try:
        stat = os.stat(where)
    except OSError:
        return None
    key = _key(stat)
    seen = _loaded.get(where)
    if seen is not None and seen[0] == key:
        return seen[1]
    import json  # only once there is a catalogue to read: `check` starts cold without it

    catalogue = None
    if stat.st_size <= MAX_BYTES:
        try:
            with open(where, encoding="utf-8") as file:
                catalogue = Catalogue.from_json(json.load(file))
        except (OSError, ValueError, RecursionError):  # unreadable, not JSON, nested past reason
            catalogue = None
    _loaded[where] = (key, catalogue)
    return catalogue


def save(catalogue: Catalogue, where: str | None = None) -> str:
    """Write the catalogue atomically: a reader (or a sync that fails half-way) sees the
    old file or the new one, never a torn one."""
    import json

    where = where or path()
    private_dir(os.path.dirname(where))
    temporary = f"{where}.{os.getpid()}.tmp"
    try:
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump(catalogue.as_json(), file, indent=1, sort_keys=True)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, where)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return where
