"""The storyboard's contact sheet: every take of a script the ledger holds, grouped by
version (the request's content hash), to be played side by side.

Read from the job ledger only, never created: a ledger that does not exist has no takes.
A render belongs to the script when the ledger's `script` is the same file (`run` records
the path as it was given: an absolute one is compared as is, a relative one where its
render's default folder, `renders/` beside the script, says it was, else from the current
folder). Sandbox renders are included and labelled as such ("sandbox: not charged"). A
video is linked, never inlined: by a path relative to the page's folder, or a `file:` URI
when the page has no folder (stdout) or the path cannot be made relative.
"""

from __future__ import annotations

import os
import pathlib
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from klingspec.run.ledger import Ledger, Render

NONE_YET = "no renders of this script in the ledger"


@dataclass(frozen=True)
class Take:
    """One generation of a render: its video when there is one (`src`), else why not."""

    generation_id: str
    position: int  # 1-based, in its render
    status: str
    seconds: int
    src: str | None = None  # a relative URL or a file: URI of the downloaded video
    path: str | None = None  # the video as the ledger recorded it
    note: str | None = None  # no video: why (`failed: ...`, `file missing`)


@dataclass(frozen=True)
class RenderTakes:
    id: int
    state: str
    model: str
    date: str  # local time, to the minute
    iso: str  # UTC, for <time datetime>
    bill: str  # `run.display.ledger_bill`: the ledger's figure, worded by `pricing`
    sandbox: bool
    top_up_of: int | None
    takes: tuple[Take, ...]


@dataclass(frozen=True)
class Version:
    """The renders of one request (one content hash), newest first."""

    request_hash: str
    short: str  # the first 8 hex digits, as the videos' names carry them
    current: bool
    date: str  # of its newest render
    iso: str
    renders: tuple[RenderTakes, ...]


@dataclass(frozen=True)
class Takes:
    ledger: str
    versions: tuple[Version, ...]  # the current version first, then the newest first
    note: str = ""  # when there are none, or which version is current cannot be told
    focus: bool = False  # `--renders`: shown even when empty, the page opens on it

    @property
    def count(self) -> int:
        return sum(len(r.takes) for v in self.versions for r in v.renders)


def same_script(recorded: str, out_dir: str, script: str) -> bool:
    """Whether a render recorded for `recorded` (as `run` was given it, with its videos'
    folder `out_dir`) is of the file `script`."""
    here = os.path.realpath(script)
    if os.path.isabs(recorded):
        return os.path.realpath(recorded) == here
    if os.path.isabs(out_dir) and os.path.basename(os.path.normpath(out_dir)) == "renders":
        # the default folder, renders/ beside the script as `run` resolved it: the script was there
        beside = os.path.join(os.path.dirname(os.path.normpath(out_dir)), os.path.basename(recorded))
        if os.path.realpath(beside) == here:
            return True
        if os.path.exists(beside):  # another script of that name, in that folder
            return False
    return os.path.realpath(recorded) == here  # relative to where we are, as `run` is usually started


def read(
    script: str,
    current_hash: str | None,
    ledger_path: str | None,
    page_dir: str | None,
    *,
    focus: bool = False,
    link: Callable[[str], str] | None = None,
) -> Takes | None:
    """The takes of `script` in the ledger at `ledger_path` (default: the default ledger);
    None when there are none and `focus` is off (the page then has no takes section).
    `current_hash`: the request hash the script compiles to now (None: it has errors).
    `page_dir`: the folder the page is written to (None: stdout). `link`: how a page
    served over HTTP addresses a video file (`watch --preview`), instead of by path."""
    from klingspec.resources import ledger_path as default_path

    path = ledger_path or default_path()
    if not os.path.exists(path):  # never created by a preview (nor the runner's modules loaded)
        return Takes(path, (), NONE_YET, focus) if focus else None
    from klingspec.run.ledger import Ledger

    with Ledger(path) as ledger:
        renders = [r for r in ledger.renders(limit=None) if same_script(r.script, r.out_dir, script)]
        by_hash: dict[str, list[Render]] = {}
        for render in renders:  # newest first
            by_hash.setdefault(render.request_hash, []).append(render)
        where = link or (lambda video: src_of(video, page_dir))
        versions = [_version(h, rs, h == current_hash, ledger, where) for h, rs in by_hash.items()]
    versions.sort(key=lambda v: (not v.current, -max(r.id for r in v.renders)))
    if not versions:
        return Takes(path, (), NONE_YET, focus) if focus else None
    note = ""
    if current_hash is None:
        note = "the script has errors: which of these versions is the current one cannot be told"
    elif not versions[0].current:
        note = "the current version of the script has not been rendered: these takes are of older versions"
    return Takes(path, tuple(versions), note, focus)


def _version(
    request_hash: str, renders: list[Render], current: bool, ledger: Ledger, link: Callable[[str], str]
) -> Version:
    newest = renders[0]
    return Version(
        request_hash,
        request_hash.removeprefix("sha256:")[:8],
        current,
        _local(newest.created_at),
        _iso(newest.created_at),
        tuple(_render(r, ledger, link) for r in renders),
    )


def _render(render: Render, ledger: Ledger, link: Callable[[str], str]) -> RenderTakes:
    from klingspec import pricing
    from klingspec.run.display import ledger_bill

    seconds = pricing.seconds_of(render.body)
    files = {f.generation_id: f.path for f in ledger.all_files(render.id)}
    takes = []
    for g in ledger.generations(render.id):
        recorded = files.get(g.generation_id)
        if recorded is not None and os.path.isfile(recorded):
            take = Take(g.generation_id, g.position + 1, g.status, seconds, link(recorded), recorded)
        elif recorded is not None:
            take = Take(g.generation_id, g.position + 1, g.status, seconds, path=recorded, note="file missing")
        else:
            why = f"{g.status}: {g.error}" if g.error else f"{g.status}: not downloaded"
            take = Take(g.generation_id, g.position + 1, g.status, seconds, note=why)
        takes.append(take)
    return RenderTakes(
        render.id,
        str(render.state),
        render.model,
        _local(render.created_at),
        _iso(render.created_at),
        ledger_bill(render),
        render.in_sandbox,
        render.completes,
        tuple(takes),
    )


def src_of(video: str, page_dir: str | None) -> str:
    """A URL for the video from a page in `page_dir`: relative when it can be, else a
    `file:` URI (the page works opened from disk, wherever it is)."""
    absolute = os.path.abspath(video)
    if page_dir is not None:
        try:
            relative = os.path.relpath(absolute, os.path.abspath(page_dir))
        except ValueError:  # another drive (Windows)
            pass
        else:
            return urllib.parse.quote(pathlib.Path(relative).as_posix())
    return pathlib.Path(absolute).as_uri()


def _local(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp))


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
