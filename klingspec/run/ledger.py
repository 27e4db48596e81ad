"""The job ledger: a SQLite file that makes sure nothing is paid for twice or lost.

Every render is recorded as an *intent* before its request is sent, then as *sent*
(outcome unknown until the API answers), then *submitted* with its generation ids, then
terminal. Downloads are recorded with their sha256 once they are in place. A render is
identified by the content hash of its request, so running the same script again
reattaches to the render already in flight or finished instead of paying again. A render
that kept only some of its videos (*partial*) is completed by a *top-up*: a render of
the missing generations only, recorded under the same request hash and linked to the
render it completes (`completes`), so the request's videos are those its renders kept.

Writes are single statements or short transactions in WAL mode, so a process killed at
any point leaves a consistent file that the next run picks up. The ledger is also the
lock between runs: finding a live render or recording a new intent (`claim`) and adopting
generation ids found in the queue (`adopt`) are each one `BEGIN IMMEDIATE` transaction,
so two processes never both record the same request or adopt the same generation, and
`sending` holds the right to send one render (an `flock` on a file beside the ledger,
which the kernel releases when its process dies: a render left in `intent` or `sent` by
a crashed run is sendable, or reconcilable, by the next one).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

from klingspec.resources import private_dir, private_file
from klingspec.run.states import ACTIVE_RENDER_STATES, GenerationStatus, RenderState, sql_list

if sys.platform != "win32":
    import fcntl

# 2: renders.completes (top-ups of partial renders); 3: uploads (local images); 4: start_frames (films)
SCHEMA_VERSION = 4
SANDBOX_PREFIX = "sandbox:"  # the ledger's name for an in-process sandbox (nothing is charged)
_ACTIVE = sql_list(ACTIVE_RENDER_STATES)
_NOT_REUSABLE = sql_list((RenderState.FAILED, RenderState.CANCELLED))
# Not yet settled at the API: recorded, or sent without an answer. Only a render in one of
# these states may be sent (or looked for in the queue), and only by the holder of `sending`.
UNSETTLED = (RenderState.INTENT, RenderState.SENT, RenderState.UNKNOWN)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS renders (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    request_hash  TEXT NOT NULL,
    api_url       TEXT NOT NULL,
    script        TEXT NOT NULL,
    model         TEXT NOT NULL,
    body          TEXT NOT NULL,
    generations   INTEGER NOT NULL,
    mode          TEXT NOT NULL,          -- queue | sync
    out_dir       TEXT NOT NULL,
    estimate_usd  TEXT,                   -- Decimal as text; NULL when the price is unknown
    state         TEXT NOT NULL,          -- intent | sent | submitted | done | partial | failed | cancelled | unknown
    error         TEXT,
    created_at    REAL NOT NULL,
    sent_at       REAL,
    updated_at    REAL NOT NULL,
    completes     INTEGER REFERENCES renders(id)  -- a top-up: the render of the whole request it completes
);
CREATE INDEX IF NOT EXISTS renders_by_hash ON renders (request_hash, api_url);
CREATE TABLE IF NOT EXISTS generations (
    generation_id TEXT PRIMARY KEY,
    render_id     INTEGER NOT NULL REFERENCES renders(id),
    position      INTEGER NOT NULL,
    status        TEXT NOT NULL,          -- queued | processing | succeeded | failed | cancelled
    result_url    TEXT,
    error         TEXT,
    updated_at    REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    generation_id TEXT PRIMARY KEY REFERENCES generations(generation_id),
    path          TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    bytes         INTEGER NOT NULL,
    created_at    REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS uploads (
    api_url       TEXT NOT NULL,          -- the ledger's name for the API (as renders.api_url)
    url           TEXT NOT NULL,          -- the hub URL the body sends: namespace, repo, branch, remote path
    sha256        TEXT NOT NULL,          -- hex digest of the bytes uploaded (also in the remote path)
    bytes         INTEGER NOT NULL,
    local_path    TEXT NOT NULL,          -- where the file was read from (for people; never re-read from here)
    state         TEXT NOT NULL,          -- intent | sent | done | failed
    commit_id     TEXT,                   -- the commit the PUT answered; NULL when found already there
    error         TEXT,
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL,
    PRIMARY KEY (api_url, url)
);
CREATE TABLE IF NOT EXISTS start_frames (
    video_sha256  TEXT PRIMARY KEY,       -- a video a continued scene of a film starts from
    png_sha256    TEXT NOT NULL,          -- the PNG of its last frame that was sent (its URL names it)
    created_at    REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Render:
    id: int
    request_hash: str
    api_url: str
    script: str
    model: str
    body: dict[str, Any]
    generations: int
    mode: str
    out_dir: str
    estimate_usd: str | None
    state: RenderState
    error: str | None
    created_at: float
    sent_at: float | None
    completes: int | None = None  # a top-up: the render of the whole request it completes

    @property
    def active(self) -> bool:
        return self.state.active

    @property
    def in_sandbox(self) -> bool:
        """Made by the built-in sandbox: nothing was charged."""
        return self.api_url.startswith(SANDBOX_PREFIX)

    @property
    def root(self) -> int:
        """The render of the whole request: this one, or the one this top-up completes."""
        return self.completes if self.completes is not None else self.id


@dataclass(frozen=True)
class Generation:
    generation_id: str
    render_id: int
    position: int
    status: str
    result_url: str | None
    error: str | None


@dataclass(frozen=True)
class File:
    generation_id: str
    path: str
    sha256: str
    bytes: int


@dataclass(frozen=True)
class UploadRecord:
    """What the ledger knows of one local image's upload to one API."""

    api_url: str
    url: str
    sha256: str
    bytes: int
    local_path: str
    state: str  # intent | sent | done | failed
    commit_id: str | None
    error: str | None

    @property
    def done(self) -> bool:
        return self.state == UPLOAD_DONE


UPLOAD_INTENT, UPLOAD_SENT, UPLOAD_DONE, UPLOAD_FAILED = "intent", "sent", "done", "failed"


def default_path() -> str:
    from klingspec.resources import ledger_path

    return ledger_path()


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _locked(method: Callable[Concatenate[Ledger, _P], _R]) -> Callable[Concatenate[Ledger, _P], _R]:
    """One connection is shared by the runner's threads: every method holds the lock for
    its whole statement or transaction (and for reading all of its rows)."""

    @functools.wraps(method)
    def wrapper(self: Ledger, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self.lock:
            return method(self, *args, **kwargs)

    return wrapper


class LedgerError(Exception):
    """The ledger cannot be trusted or used: nothing may be sent (the CLI exits 2)."""


class Ledger:
    """The ledger file; safe to share between threads (each method holds `lock`)."""

    def __init__(self, path: str | None = None):
        self.path = path or default_path()
        self.lock = threading.RLock()
        try:
            self._open()
        except (OSError, sqlite3.Error) as error:
            raise LedgerError(_why(self.path, error)) from None

    def _open(self) -> None:
        private_dir(os.path.dirname(os.path.abspath(self.path)))
        if not os.path.exists(self.path):
            _create(self.path)
        existing = os.stat(self.path)
        if existing.st_size == 0 and not os.path.exists(self.path + "-wal"):
            # A ledger is never empty once made: an empty file was truncated, and treating it
            # as new would pay again for every render it recorded and overwrite their videos.
            raise LedgerError(
                f"the ledger {self.path} is empty (0 bytes): it may have been truncated, so what it "
                "recorded is unknown and nothing is sent; move it aside to start a new ledger, or "
                "restore it from a backup"
            )
        private_file(self.path)  # an older klingspec made it 0644; its -wal and -shm take its rights
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        _switch_to_wal(self.db)
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript(_SCHEMA)
        self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        self._migrate()

    def _migrate(self) -> None:
        """Bring a ledger written by an older klingspec up to SCHEMA_VERSION, in place and
        in one transaction (another process may be opening the same file right now)."""
        if self.schema_version() >= SCHEMA_VERSION:
            return
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            if self.schema_version() >= SCHEMA_VERSION:  # another process was first
                return
            columns = {r["name"] for r in self.db.execute("PRAGMA table_info(renders)")}
            if "completes" not in columns:  # 1 -> 2
                self.db.execute("ALTER TABLE renders ADD COLUMN completes INTEGER REFERENCES renders(id)")
            # 2 -> 3 and 3 -> 4: `uploads` and `start_frames`, made by `_SCHEMA`'s CREATE TABLE IF NOT EXISTS
            self.db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))

    @_locked
    def schema_version(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row[0])

    @_locked
    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- renders ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _immediate(self) -> Iterator[None]:
        """One write transaction that takes the database's write lock up front, so what it
        reads cannot change before it writes (another process waits, up to `timeout`)."""
        with self.db:  # commits on success, rolls back on an exception
            self.db.execute("BEGIN IMMEDIATE")
            yield

    @_locked
    def record_intent(
        self,
        *,
        request_hash: str,
        api_url: str,
        script: str,
        model: str,
        body: dict[str, Any],
        generations: int,
        mode: str,
        out_dir: str,
        estimate_usd: str | None,
        completes: int | None = None,
    ) -> Render:
        """Record a new render of this request in `intent`, whatever else exists.
        `completes`: for a top-up (`generations` is then the shortfall), the render of the
        whole request whose missing videos this one renders."""
        render, _ = self.claim(
            request_hash=request_hash,
            api_url=api_url,
            script=script,
            model=model,
            body=body,
            generations=generations,
            mode=mode,
            out_dir=out_dir,
            estimate_usd=estimate_usd,
            again=True,
            completes=completes,
        )
        return render

    @_locked
    def claim(
        self,
        *,
        request_hash: str,
        api_url: str,
        script: str,
        model: str,
        body: dict[str, Any],
        generations: int,
        mode: str,
        out_dir: str,
        estimate_usd: str | None,
        again: bool = False,
        replacing: int | None = None,
        replaced_because: str = "",
        topping_up: int | None = None,
        completes: int | None = None,
    ) -> tuple[Render, bool]:
        """The live render of this request at `api_url`, or a new one recorded in `intent`,
        decided in one transaction: of two processes claiming at the same instant, one
        records the intent and the other gets that render. Returns (render, created).

        `again`: always record a new one. `replacing`: the id of a render the caller found
        unusable (see `Submitting._gone`); if it is still the live one it is marked failed
        with `replaced_because` and a new one is recorded, else the live one is returned.
        `topping_up`: the id of a partial render the caller completes with a top-up (whose
        row `completes` names the request's first render); recorded only if that partial
        render is still the live one, else the live one (another run's top-up) is returned.
        """
        with self._immediate():
            if not again:
                row = self.db.execute(
                    f"SELECT * FROM renders WHERE request_hash=? AND api_url=? AND state NOT IN {_NOT_REUSABLE}"
                    " ORDER BY id DESC LIMIT 1",
                    (request_hash, api_url),
                ).fetchone()
                if row is not None and row["id"] not in (replacing, topping_up):
                    return _render(row), False
                if row is not None and row["id"] == replacing:
                    self.db.execute(
                        "UPDATE renders SET state=?, error=?, updated_at=? WHERE id=?",
                        (RenderState.FAILED, replaced_because or None, time.time(), row["id"]),
                    )
            now = time.time()
            cursor = self.db.execute(
                "INSERT INTO renders (request_hash, api_url, script, model, body, generations, mode, out_dir,"
                " estimate_usd, state, created_at, updated_at, completes) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    request_hash,
                    api_url,
                    script,
                    model,
                    json.dumps(body, sort_keys=True),
                    generations,
                    mode,
                    out_dir,
                    estimate_usd,
                    RenderState.INTENT,
                    now,
                    now,
                    completes,
                ),
            )
            assert cursor.lastrowid is not None  # set by the INSERT
            render = self.render(cursor.lastrowid)
        assert render is not None  # the row was just inserted
        return render, True

    @contextlib.contextmanager
    def sending(self, render_id: int, stop: threading.Event, wait: float) -> Iterator[bool]:
        """Hold the right to send render `render_id`, waiting up to `wait` seconds (or until
        `stop` is set) while another thread or process holds it. Yields whether it is held.

        The holder re-reads the render and acts on its state: another holder may have
        submitted it meanwhile. The right is an exclusive `flock` on a file in
        `<ledger>.locks/`: the kernel drops it when its holder dies, so a render left in
        `intent` or `sent` by a crashed run is never stuck, and no clock, pid or lease is
        stored (the schema is unchanged). Once the render is settled (no longer intent,
        sent or unknown: nobody will ever send it again) the file is removed; a waiter that
        then gets the old file's lock re-reads the settled state and sends nothing. Where
        `flock` does not exist (Windows) the right is held within this process only.
        """
        folder = private_dir(self.path + ".locks")
        path = os.path.join(folder, f"render-{render_id}.lock")
        handle = _wait_flock(path, stop, wait)
        if handle is None:
            yield False
            return
        try:
            yield True
        finally:
            render = self.render(render_id)
            if render is not None and render.state not in UNSETTLED:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            _unflock(path, handle)

    @_locked
    def mark_sent(self, render_id: int) -> None:
        now = time.time()
        self.db.execute(
            "UPDATE renders SET state=?, sent_at=?, updated_at=? WHERE id=?", (RenderState.SENT, now, now, render_id)
        )

    @_locked
    def mark_submitted(self, render_id: int, generation_ids: list[str]) -> None:
        now = time.time()
        with self.db:  # one transaction: ids and state together
            self.db.execute("BEGIN IMMEDIATE")
            for position, generation_id in enumerate(generation_ids):
                self.db.execute(
                    "INSERT OR IGNORE INTO generations VALUES (?,?,?,?,?,?,?)",
                    (generation_id, render_id, position, GenerationStatus.QUEUED, None, None, now),
                )
            self.db.execute(
                "UPDATE renders SET state=?, updated_at=? WHERE id=?", (RenderState.SUBMITTED, now, render_id)
            )

    @_locked
    def mark_answered(self, render_id: int, videos: list[tuple[str, str | None, str | None]]) -> None:
        """A sync render's answer, before anything is downloaded: each video as (generation
        id, its URL or None when the answer file holds it, the error when the answer had no
        usable video), and the render submitted. One transaction."""
        now = time.time()
        with self._immediate():
            for position, (generation_id, url, error) in enumerate(videos):
                status = GenerationStatus.FAILED if error else GenerationStatus.SUCCEEDED
                self.db.execute(
                    "INSERT OR REPLACE INTO generations VALUES (?,?,?,?,?,?,?)",
                    (generation_id, render_id, position, status, url, error, now),
                )
            self.db.execute(
                "UPDATE renders SET state=?, updated_at=? WHERE id=?", (RenderState.SUBMITTED, now, render_id)
            )

    @_locked
    def set_state(self, render_id: int, state: RenderState, error: str | None = None) -> None:
        self.db.execute(
            "UPDATE renders SET state=?, error=?, updated_at=? WHERE id=?", (state, error, time.time(), render_id)
        )

    @_locked
    def render(self, render_id: int) -> Render | None:
        row = self.db.execute("SELECT * FROM renders WHERE id=?", (render_id,)).fetchone()
        return _render(row) if row else None

    @_locked
    def latest_for(self, request_hash: str, api_url: str) -> Render | None:
        """The newest render of this exact request that is not failed or cancelled (a
        partial one is: its videos are kept, and a top-up completes it)."""
        row = self.db.execute(
            f"SELECT * FROM renders WHERE request_hash=? AND api_url=? AND state NOT IN {_NOT_REUSABLE}"
            " ORDER BY id DESC LIMIT 1",
            (request_hash, api_url),
        ).fetchone()
        return _render(row) if row else None

    @_locked
    def renders(self, *, active_only: bool = False, limit: int | None = 50) -> list[Render]:
        """The newest renders first (`limit=None`: all of them)."""
        query = "SELECT * FROM renders"
        if active_only:
            query += f" WHERE state IN {_ACTIVE}"
        rows = self.db.execute(query + " ORDER BY id DESC LIMIT ?", (-1 if limit is None else limit,)).fetchall()
        return [_render(r) for r in rows]

    @_locked
    def generation_counts(self) -> dict[int, int]:
        """Render id -> how many generation ids the API gave it."""
        rows = self.db.execute("SELECT render_id, COUNT(*) FROM generations GROUP BY render_id").fetchall()
        return {r[0]: r[1] for r in rows}

    @_locked
    def in_flight(self, api_url: str) -> list[Render]:
        """Renders sent (or about to be) at `api_url` and not finished: what `--budget`
        counts as already committed."""
        rows = self.db.execute(f"SELECT * FROM renders WHERE api_url=? AND state IN {_ACTIVE}", (api_url,)).fetchall()
        return [_render(r) for r in rows]

    # -- generations and files -----------------------------------------------------------------
    @_locked
    def generations(self, render_id: int) -> list[Generation]:
        rows = self.db.execute("SELECT * FROM generations WHERE render_id=? ORDER BY position", (render_id,)).fetchall()
        return [
            Generation(r["generation_id"], r["render_id"], r["position"], r["status"], r["result_url"], r["error"])
            for r in rows
        ]

    @_locked
    def find_generation(self, generation_id: str) -> Generation | None:
        r = self.db.execute("SELECT * FROM generations WHERE generation_id=?", (generation_id,)).fetchone()
        return (
            Generation(r["generation_id"], r["render_id"], r["position"], r["status"], r["result_url"], r["error"])
            if r
            else None
        )

    @_locked
    def known_generation_ids(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT generation_id FROM generations")}

    @_locked
    def adopt(self, render_id: int, candidates: list[str], count: int) -> list[str]:
        """Give render `render_id` up to `count` of `candidates` (generation ids found in the
        queue, best first) that no render in the ledger holds yet, and mark it submitted;
        the ids it got. One transaction: two threads or processes reconciling identical
        requests at the same instant never adopt the same generation. A render that has
        its ids already (another run reconciled or submitted it) keeps them: those are
        returned and nothing is adopted."""
        now = time.time()
        with self._immediate():
            held = [
                r[0]
                for r in self.db.execute(
                    "SELECT generation_id FROM generations WHERE render_id=? ORDER BY position", (render_id,)
                )
            ]
            if held:
                return held
            ids: list[str] = []
            for generation_id in candidates:
                if len(ids) >= count:
                    break
                taken = self.db.execute("SELECT 1 FROM generations WHERE generation_id=?", (generation_id,)).fetchone()
                if taken is None and generation_id not in ids:
                    ids.append(generation_id)
            for position, generation_id in enumerate(ids):
                self.db.execute(
                    "INSERT INTO generations VALUES (?,?,?,?,?,?,?)",
                    (generation_id, render_id, position, GenerationStatus.QUEUED, None, None, now),
                )
            if ids:
                self.db.execute(
                    "UPDATE renders SET state=?, updated_at=? WHERE id=?", (RenderState.SUBMITTED, now, render_id)
                )
        return ids

    @_locked
    def update_generation(
        self, generation_id: str, status: str, result_url: str | None = None, error: str | None = None
    ) -> None:
        self.db.execute(
            "UPDATE generations SET status=?, result_url=COALESCE(?, result_url), error=?, updated_at=?"
            " WHERE generation_id=?",
            (status, result_url, error, time.time(), generation_id),
        )

    @_locked
    def record_file(self, generation_id: str, path: str, sha256: str, size: int) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO files VALUES (?,?,?,?,?)", (generation_id, path, sha256, size, time.time())
        )

    @_locked
    def file(self, generation_id: str) -> File | None:
        r = self.db.execute("SELECT * FROM files WHERE generation_id=?", (generation_id,)).fetchone()
        return File(r["generation_id"], r["path"], r["sha256"], r["bytes"]) if r else None

    @_locked
    def render_of_file(self, path: str) -> int | None:
        """The render whose video is recorded at `path`, if any."""
        r = self.db.execute(
            "SELECT g.render_id FROM files f JOIN generations g USING (generation_id)"
            " WHERE f.path=? ORDER BY f.created_at DESC LIMIT 1",
            (path,),
        ).fetchone()
        return r[0] if r else None

    @_locked
    def all_files(self, render_id: int) -> list[File]:
        rows = self.db.execute(
            "SELECT f.* FROM files f JOIN generations g USING (generation_id) WHERE g.render_id=? ORDER BY g.position",
            (render_id,),
        ).fetchall()
        return [File(r["generation_id"], r["path"], r["sha256"], r["bytes"]) for r in rows]

    @_locked
    def kept_files(self, root_id: int) -> list[File]:
        """The videos a request has: those of its succeeded generations in the render of the
        whole request (`root_id`) and in every top-up that completes it, oldest first."""
        rows = self.db.execute(
            "SELECT f.* FROM files f JOIN generations g USING (generation_id) JOIN renders r ON r.id = g.render_id"
            " WHERE (r.id=? OR r.completes=?) AND g.status=? ORDER BY r.id, g.position",
            (root_id, root_id, GenerationStatus.SUCCEEDED),
        ).fetchall()
        return [File(r["generation_id"], r["path"], r["sha256"], r["bytes"]) for r in rows]

    # -- uploads of local images ---------------------------------------------------------------
    @_locked
    def upload(self, api_url: str, url: str) -> UploadRecord | None:
        r = self.db.execute("SELECT * FROM uploads WHERE api_url=? AND url=?", (api_url, url)).fetchone()
        return _upload(r) if r else None

    @_locked
    def uploaded_urls(self, api_url: str) -> set[str]:
        """The URLs recorded as uploaded (done) at this API."""
        rows = self.db.execute("SELECT url FROM uploads WHERE api_url=? AND state=?", (api_url, UPLOAD_DONE))
        return {r[0] for r in rows}

    @_locked
    def record_upload(
        self,
        api_url: str,
        url: str,
        *,
        sha256: str,
        size: int,
        local_path: str,
        state: str,
        commit_id: str | None = None,
        error: str | None = None,
    ) -> None:
        """Record where one upload stands (intent before the PUT, sent, then done with its
        commit, or failed); one row per API and URL, created or updated."""
        now = time.time()
        self.db.execute(
            "INSERT INTO uploads (api_url, url, sha256, bytes, local_path, state, commit_id, error, created_at,"
            " updated_at) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT (api_url, url) DO UPDATE SET"
            " sha256=excluded.sha256, bytes=excluded.bytes, local_path=excluded.local_path, state=excluded.state,"
            " commit_id=excluded.commit_id, error=excluded.error, updated_at=excluded.updated_at",
            (api_url, url, sha256, size, local_path, state, commit_id, error, now, now),
        )

    # -- start frames of films' continued scenes ----------------------------------------------
    @_locked
    def start_frame(self, video_sha256: str) -> str | None:
        """The SHA-256 of the PNG last made of this video's last frame, if any."""
        row = self.db.execute("SELECT png_sha256 FROM start_frames WHERE video_sha256=?", (video_sha256,)).fetchone()
        return str(row[0]) if row else None

    @_locked
    def record_start_frame(self, video_sha256: str, png_sha256: str) -> None:
        """The PNG made of this video's last frame (replacing an older one: the newest is
        the one on disk)."""
        self.db.execute(
            "INSERT INTO start_frames VALUES (?,?,?) ON CONFLICT (video_sha256) DO UPDATE SET"
            " png_sha256=excluded.png_sha256, created_at=excluded.created_at",
            (video_sha256, png_sha256, time.time()),
        )

    @contextlib.contextmanager
    def uploading(self, sha256: str, stop: threading.Event, wait: float) -> Iterator[bool]:
        """Hold the right to upload the content `sha256` (an `flock`, as `sending` holds a
        render's): two runs that need the same image at once upload it once, the second
        re-reading the ledger after the first is done. Yields whether it is held."""
        folder = private_dir(self.path + ".locks")
        path = os.path.join(folder, f"upload-{sha256}.lock")
        handle = _wait_flock(path, stop, wait)
        if handle is None:
            yield False
            return
        try:
            yield True
        finally:
            _unflock(path, handle)


def _upload(r: sqlite3.Row) -> UploadRecord:
    return UploadRecord(
        r["api_url"], r["url"], r["sha256"], r["bytes"], r["local_path"], r["state"], r["commit_id"], r["error"]
    )


def _create(path: str) -> None:
    """A new ledger, whole or not at all: built in a private temporary file beside it, then
    linked into place (which fails if another process was first; its ledger stands). So a
    ledger file is never empty, and an empty one is a truncated one (`Ledger` refuses it)."""
    import tempfile

    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".ledger-", suffix=".tmp")
    os.close(handle)  # mkstemp made it 0600
    try:
        db = sqlite3.connect(temporary, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        finally:
            db.close()  # the last connection: the WAL is checkpointed into the file and removed
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        for leftover in (temporary, temporary + "-wal", temporary + "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(leftover)


def _why(path: str, error: OSError | sqlite3.Error) -> str:
    """What is wrong with the ledger, in words that say what to do; nothing is sent."""
    text = str(error)
    if isinstance(error, sqlite3.DatabaseError) and "not a database" in text:
        return f"the ledger {path} is not a klingspec ledger (damaged?): nothing is sent; move it aside or restore it"
    if "readonly" in text or isinstance(error, PermissionError):
        return f"the ledger {path} cannot be written ({text}): nothing is sent; check its folder's and its own rights"
    if "locked" in text:
        return f"the ledger {path} is locked by another program for over 30 s: nothing is sent; try again"
    return f"the ledger {path} cannot be opened ({text}): nothing is sent"


def _switch_to_wal(db: sqlite3.Connection) -> None:
    """`PRAGMA journal_mode=WAL` on a new file needs the database to itself, and SQLite
    answers "database is locked" at once instead of waiting the busy timeout, so two runs
    opening a fresh ledger at the same instant would crash. Retried, briefly, until the
    connection's own timeout (30 s)."""
    from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

    def locked(error: BaseException) -> bool:
        return isinstance(error, sqlite3.OperationalError) and "locked" in str(error)

    for attempt in Retrying(
        retry=retry_if_exception(locked),
        stop=stop_after_delay(30),
        wait=wait_random_exponential(multiplier=0.005, max=0.2),
        reraise=True,
    ):
        with attempt:
            db.execute("PRAGMA journal_mode=WAL")


def _render(row: sqlite3.Row) -> Render:
    return Render(
        row["id"],
        row["request_hash"],
        row["api_url"],
        row["script"],
        row["model"],
        json.loads(row["body"]),
        row["generations"],
        row["mode"],
        row["out_dir"],
        row["estimate_usd"],
        RenderState(row["state"]),
        row["error"],
        row["created_at"],
        row["sent_at"],
        row["completes"],
    )


def _wait_flock(path: str, stop: threading.Event, wait: float) -> int | None:
    """The lock on `path` (see `_try_flock`), waiting up to `wait` seconds for another
    holder; None when the wait ran out or `stop` was set (checked before every try)."""
    deadline = time.monotonic() + wait
    handle = _try_flock(path)
    while handle is None:
        if stop.is_set() or time.monotonic() >= deadline:
            return None
        stop.wait(0.05)
        handle = _try_flock(path)
    return handle


def _try_flock(path: str) -> int | None:
    """An open descriptor of `path` holding its exclusive lock, or None if another holds it."""
    if sys.platform == "win32":
        lock = _PROCESS_LOCKS.setdefault(path, threading.Lock())
        return 0 if lock.acquire(blocking=False) else None
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _unflock(path: str, handle: int) -> None:
    if sys.platform == "win32":
        _PROCESS_LOCKS[path].release()
        return
    os.close(handle)  # closing the only descriptor releases the lock


_PROCESS_LOCKS: dict[str, threading.Lock] = {}
