"""`watch --preview`: the storyboards of the watched scripts, served on loopback and
reloaded in the browser on every save.

The watcher already re-checks a script on each save; `Live.checked` is told each result,
keeps the newest per script and wakes the pages that show it. Each page holds one
server-sent-events stream (`/events?script=...`) and reloads itself, keeping its scroll
position, when its script was checked again or a render of it finished (`Live.changed`).
A page is built when it is asked for, from the newest result and the ledger's takes at
that moment, by the same `storyboard` function `klingspec preview` writes files with.

What it serves, and to whom, is narrow on purpose: it listens on 127.0.0.1 only; every
address is under a random secret path (`/SECRET/...`, in the URL `watch` prints), so
another user or program of the machine cannot read the pages by guessing the port; a
request whose `Host` is not this server's loopback address is refused (a web page
elsewhere cannot reach it through DNS rebinding); pages exist only for watched scripts;
and a video is served only under a random token a served page handed out, never by path.
The standard library's threading HTTP server is enough: one person's browser, a few tabs
(each holds one event stream open, and a browser opens about six connections to one host).
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import urllib.parse
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from klingspec.pipeline import Result

KEEPALIVE_S = 15.0  # a comment line on an idle event stream, so a dead tab is noticed
CHUNK = 256 * 1024  # bytes of a video written at a time
ANY = "*"  # the index page's event stream: any script checked, added or removed


@dataclass(frozen=True)
class Shown:
    """The newest check of one script: its result and how many times it changed."""

    result: Result
    version: int


class Live:
    """The state the server shows: the newest result per script, a version counter the
    event streams wait on, and the videos the pages link."""

    def __init__(self, ledger_path: str | None = None, render_takes: bool = True) -> None:
        self.ledger_path = ledger_path
        self.render_takes = render_takes
        self._shown: dict[str, Shown] = {}  # absolute script path -> newest check
        self._version = 0
        self._changed = threading.Condition()
        self._media: dict[str, str] = {}  # token -> absolute video path
        self._tokens: dict[str, str] = {}  # absolute video path -> token
        self.stopping = False

    # -- told by the watcher ---------------------------------------------------------------
    def checked(self, script: str, result: Result) -> None:
        with self._changed:
            self._version += 1
            self._shown[os.path.abspath(script)] = Shown(result, self._version)
            self._changed.notify_all()

    def changed(self, script: str) -> None:
        """Something else the page shows changed (a render finished): reload it."""
        with self._changed:
            path = os.path.abspath(script)
            shown = self._shown.get(path)
            if shown is not None:
                self._version += 1
                self._shown[path] = Shown(shown.result, self._version)
                self._changed.notify_all()

    def removed(self, script: str) -> None:
        with self._changed:
            self._version += 1
            self._shown.pop(os.path.abspath(script), None)
            self._changed.notify_all()

    def stop(self) -> None:
        with self._changed:
            self.stopping = True
            self._changed.notify_all()

    # -- read by the server ----------------------------------------------------------------
    def scripts(self) -> list[str]:
        with self._changed:
            return sorted(self._shown)

    def version_of(self, script: str | None) -> int | None:
        with self._changed:
            return self._version_locked(script)

    def wait(self, script: str | None, seen: int | None, timeout: float) -> int | None:
        """The script's version once it differs from `seen` (None: it is gone), or `seen`
        again after `timeout`. `script` None: any script (the index page)."""
        with self._changed:
            self._changed.wait_for(lambda: self.stopping or self._version_locked(script) != seen, timeout)
            return self._version_locked(script)

    def _version_locked(self, script: str | None) -> int | None:
        if script is None:
            return self._version
        shown = self._shown.get(script)
        return shown.version if shown is not None else None

    def page(self, script: str) -> str | None:
        """The storyboard of a watched script as served (with its reload snippet), or None."""
        from klingspec.preview import takes as sheet
        from klingspec.preview.storyboard import storyboard

        with self._changed:
            shown = self._shown.get(script)
        if shown is None:
            return None
        result = shown.result
        takes = None
        if self.render_takes:
            current = result.request.content_hash if result.request is not None and result.ok else None
            takes = sheet.read(result.path, current, self.ledger_path, None, link=self._link)
        events = "events?" + urllib.parse.urlencode({"script": _key(script), "version": shown.version})
        return storyboard(result, takes=takes, live=events)

    def _link(self, video: str) -> str:
        absolute = os.path.abspath(video)
        with self._changed:
            token = self._tokens.get(absolute)
            if token is None:
                token = secrets.token_urlsafe(12)
                self._tokens[absolute] = token
                self._media[token] = absolute
        return f"media/{token}/{urllib.parse.quote(os.path.basename(absolute))}"  # relative: under the secret

    def media(self, token: str) -> str | None:
        with self._changed:
            return self._media.get(token)


def _key(script: str) -> str:
    """How a URL names a watched script: its path relative to the working folder when it
    is under it (what `watch` prints), else absolute."""
    relative = os.path.relpath(script)
    return script if relative.startswith("..") else relative


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, live: Live, port: int = 0) -> None:
        self.live = live
        self.secret = secrets.token_urlsafe(16)
        super().__init__(("127.0.0.1", port), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{self.secret}/"

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="preview-server", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self.live.stop()
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"
    server_version = "klingspec-preview"

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the watcher's own lines are what the terminal shows."""

    def do_GET(self) -> None:
        if not self._host_allowed():
            self._send_text(HTTPStatus.MISDIRECTED_REQUEST, "this server answers to its loopback address only\n")
            return
        url = urllib.parse.urlsplit(self.path)
        prefix = f"/{self.server.secret}"
        if url.path != prefix and not url.path.startswith(prefix + "/"):
            self._send_text(HTTPStatus.NOT_FOUND, "not found\n")  # the same answer as any wrong path
            return
        if url.path == prefix:  # the relative links of the index need its trailing slash
            self.send_response(HTTPStatus.MOVED_PERMANENTLY)
            self.send_header("Location", prefix + "/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path = url.path[len(prefix) :]
        query = urllib.parse.parse_qs(url.query)
        live = self.server.live
        if path == "/":
            self._index()
        elif path == "/page":
            script = self._script(query)
            page = live.page(script) if script is not None else None
            if page is None:
                self._send_text(HTTPStatus.NOT_FOUND, "not a watched script\n")
            else:
                self._send(HTTPStatus.OK, page.encode("utf-8"), "text/html; charset=utf-8")
        elif path == "/events":
            every = query.get("script") == [ANY]
            script = None if every else self._script(query)
            if script is None and not every:
                self._send_text(HTTPStatus.NOT_FOUND, "not a watched script\n")
            else:
                self._events(script, _int(query.get("version", [""])[0]))
        elif path.startswith("/media/"):
            self._video(path.split("/")[2])
        else:
            self._send_text(HTTPStatus.NOT_FOUND, "not found\n")

    def _host_allowed(self) -> bool:
        port = self.server.server_address[1]
        return self.headers.get("Host", "") in {f"127.0.0.1:{port}", f"localhost:{port}"}

    def _script(self, query: dict[str, list[str]]) -> str | None:
        named = query.get("script", [""])[0]
        if not named:
            return None
        path = os.path.abspath(named)
        return path if path in self.server.live.scripts() else None

    def _index(self) -> None:
        scripts = self.server.live.scripts()
        if len(scripts) == 1:
            self.send_response(HTTPStatus.SEE_OTHER)
            where = f"/{self.server.secret}/page?" + urllib.parse.urlencode({"script": _key(scripts[0])})
            self.send_header("Location", where)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        from html import escape

        items = "".join(
            f'<li><a href="page?{escape(urllib.parse.urlencode({"script": _key(s)}))}">{escape(_key(s))}</a></li>'
            for s in scripts
        )
        body = (
            '<!doctype html><meta charset="utf-8"><title>klingspec watch: storyboards</title>'
            f"<h1>Storyboards</h1><ul>{items or '<li>no script yet</li>'}</ul>"
            '<script>new EventSource("events?script=%2A")'
            '.addEventListener("checked", () => location.reload())</script>'
        )
        self._send(HTTPStatus.OK, body.encode("utf-8"), "text/html; charset=utf-8")

    def _events(self, script: str | None, seen: int | None) -> None:
        """One event per change of the script (None: of any), as long as the page stays open."""
        live = self.server.live
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        current = live.version_of(script) if seen is None else seen
        try:
            self.wfile.write(b"retry: 500\n\n")
            self.wfile.flush()
            while not live.stopping:
                version = live.wait(script, current, KEEPALIVE_S)
                if live.stopping:
                    return
                if version == current:
                    self.wfile.write(b": still watching\n\n")
                else:
                    data = json.dumps({"script": _key(script) if script else ANY, "version": version})
                    self.wfile.write(f"event: checked\ndata: {data}\n\n".encode())
                    current = version
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return  # the tab was closed or reloaded

    def _video(self, token: str) -> None:
        path = self.server.live.media(token)
        if path is None or not os.path.isfile(path):
            self._send_text(HTTPStatus.NOT_FOUND, "not a video this server links\n")
            return
        size = os.path.getsize(path)
        start, end = 0, size - 1
        ranged = _byte_range(self.headers.get("Range"), size)
        if ranged is not None:
            start, end = ranged
        self.send_response(HTTPStatus.PARTIAL_CONTENT if ranged else HTTPStatus.OK)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if ranged:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        try:
            with open(path, "rb") as video:
                video.seek(start)
                left = end - start + 1
                while left > 0:
                    chunk = video.read(min(CHUNK, left))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    left -= len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            return

    def _send_text(self, status: HTTPStatus, text: str) -> None:
        self._send(status, text.encode("utf-8"), "text/plain; charset=utf-8")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One `bytes=START-END` range within the file (what a <video> asks for), else None."""
    if not header or not header.startswith("bytes=") or "," in header or size == 0:
        return None
    first, _, last = header[len("bytes=") :].partition("-")
    if first.isdigit():
        start = int(first)
        end = min(int(last), size - 1) if last.isdigit() else size - 1
    elif last.isdigit():  # the last N bytes
        start, end = max(0, size - int(last)), size - 1
    else:
        return None
    return (start, end) if start <= end else None
