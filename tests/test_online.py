"""`check --online` against a real HTTP server on loopback.

The server serves an image, a 404, an HTML page, a redirect to a sign-in page, an endpoint
slower than the timeout, one that refuses HEAD, and a redirect loop; it records every
request (method, path, headers) so the tests can count them and read what was sent.
Loopback URLs also get the offline `KVS-url-private` (and `KVS-url-http`) warnings; the
tests look at the online codes.
"""

from __future__ import annotations

import json
import re
import shlex
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from klingspec import cli

SLOW_SECONDS = 3.0
TIMEOUT = "1.5"  # well under SLOW_SECONDS, well over a loaded loopback answer


class Server:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.lock = threading.Lock()
        self.active = 0
        self.peak = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self.answer(body=False)

            def do_GET(self) -> None:
                self.answer(body=True)

            def answer(self, body: bool) -> None:
                with server.lock:
                    server.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                    server.active += 1
                    server.peak = max(server.peak, server.active)
                try:
                    self.route(body)
                finally:
                    with server.lock:
                        server.active -= 1

            def send(self, status: int, kind: str | None = None, data: bytes = b"", body: bool = True, **headers):
                self.send_response(status)
                if kind:
                    self.send_header("Content-Type", kind)
                for name, value in headers.items():
                    self.send_header(name.replace("_", "-"), value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def route(self, body: bool) -> None:
                path = self.path.split("?")[0]
                if path.startswith("/img"):
                    self.send(200, "image/png", b"\x89PNG", body)
                elif path == "/missing.png":
                    self.send(404, "text/plain", b"not found", body)
                elif path == "/page":
                    self.send(200, "text/html; charset=utf-8", b"<html></html>", body)
                elif path == "/private.png":
                    self.send(302, Location="/accounts/login?next=/private.png")
                elif path == "/accounts/login":
                    self.send(200, "text/html", b"<form>", body)
                elif path == "/moved.png":
                    self.send(301, Location="/img-moved.png")
                elif path == "/slow.png":
                    time.sleep(SLOW_SECONDS)
                    self.send(200, "image/png", b"\x89PNG", body)
                elif path.startswith("/pause"):
                    time.sleep(0.3)
                    self.send(200, "image/png", b"\x89PNG", body)
                elif path == "/nohead.png":
                    if self.command == "HEAD":
                        self.send(405, body=False)
                    elif self.headers.get("Range") == "bytes=0-0":
                        self.send(206, "image/png", b"\x89", body, Content_Range="bytes 0-0/4")
                    else:
                        self.send(400, "text/plain", b"range please", body)
                elif path == "/loop":
                    self.send(302, Location="/loop")
                else:
                    self.send(500, "text/plain", b"?", body)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"

    def count(self, path: str) -> int:
        with self.lock:
            return sum(p.split("?")[0] == path for _, p, _ in self.requests)


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    thread = threading.Thread(target=running.http.serve_forever, daemon=True)
    thread.start()
    try:
        yield running
    finally:
        running.http.shutdown()
        running.http.server_close()


def klingspec(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def online_codes(out: str) -> dict[tuple[int, int], list[str]]:
    """(line, column) -> the online codes reported there, from `--format json`."""
    found: dict[tuple[int, int], list[str]] = {}
    for d in json.loads(out)["diagnostics"]:
        if d["code"] in ("KVS-url-status", "KVS-url-not-image", "KVS-url-login", "KVS-url-unreachable"):
            found.setdefault((d["line"], d["column"]), []).append(d["code"])
    return found


PATHS = ["/img.png", "/missing.png", "/page", "/private.png", "/slow.png", "/nohead.png", "/loop", "/moved.png"]


@pytest.fixture
def script(tmp_path: Path, server: Server, monkeypatch) -> str:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NO_COLOR", "1")
    lines = [f'image i{n} = "{server.url}{path}"' for n, path in enumerate(PATHS)]
    # a library (no shot), so eight images are not over the limit of what one request sends
    Path("scene.kvs").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return "scene.kvs"


def test_each_answer_is_reported_at_its_url(script, server, capsys):
    code, out, _ = klingspec(capsys, "check", "--online", "--online-timeout", TIMEOUT, "--format", "json", script)
    assert code == 0  # warnings only
    assert online_codes(out) == {
        (2, 12): ["KVS-url-status"],  # 404
        (3, 12): ["KVS-url-not-image"],  # text/html
        (4, 12): ["KVS-url-login"],  # a redirect to /accounts/login
        (5, 12): ["KVS-url-unreachable"],  # slower than the timeout
        (7, 12): ["KVS-url-unreachable"],  # a redirect loop
    }  # the image, the HEAD-refusing image (GET of one byte) and the moved image are fine
    details = {(d["line"], d["code"]): d for d in json.loads(out)["diagnostics"]}
    assert details[(2, "KVS-url-status")]["message"] == "the server answered 404 Not Found"
    assert "`text/html`" in details[(3, "KVS-url-not-image")]["message"]
    assert "(after 1 redirect)" in details[(4, "KVS-url-login")]["message"]
    assert f"no answer within {TIMEOUT} s" in details[(5, "KVS-url-unreachable")]["message"]
    assert "more than 5 redirects" in details[(7, "KVS-url-unreachable")]["message"]
    assert [m for m, p, _ in server.requests if p == "/nohead.png"] == ["HEAD", "GET"]
    assert server.count("/img-moved.png") == 1


def test_a_second_check_is_answered_from_the_url_cache(script, server, capsys):
    first = klingspec(capsys, "check", "--online", "--online-timeout", TIMEOUT, script)
    counts = {path: server.count(path) for path in PATHS}
    assert all(counts[path] >= 1 for path in PATHS)
    second = klingspec(capsys, "check", "--online", "--online-timeout", TIMEOUT, script)
    assert second[1] == first[1]  # the same diagnostics
    again = {path: server.count(path) - counts[path] for path in PATHS}
    # answers are kept; a timeout and a redirect loop are failures, asked again
    assert again == {path: 1 if path == "/slow.png" else 6 if path == "/loop" else 0 for path in PATHS}
    assert "(2 fetched, 6 from the cache)" in second[2]
    assert "(8 fetched, 0 from the cache)" in first[2]
    assert f"ends at {server.url}/accounts/login?next=/private.png" in first[1]  # the login's label


def test_no_cache_asks_again(script, server, capsys):
    klingspec(capsys, "check", "--online", "--online-timeout", TIMEOUT, script)
    klingspec(capsys, "check", "--online", "--no-cache", "--online-timeout", TIMEOUT, script)
    assert server.count("/img.png") == 2


def test_no_credentials_reach_the_image_hosts(tmp_path, server, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OXEN_API_KEY", "sk-secret-never-sent")
    (tmp_path / ".netrc").write_text("machine 127.0.0.1 login me password netrc-secret\n", encoding="utf-8")
    monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
    host = server.url.removeprefix("http://")
    Path("scene.kvs").write_text(
        f'image a = "{server.url}/img-a.png"\nimage b = "http://me:pw@{host}/img-b.png"\n'
        f'image c = "{server.url}/private.png"\nshot s 5s "@a @b @c"\n',
        encoding="utf-8",
    )
    klingspec(capsys, "check", "--online", "scene.kvs")
    assert {p for _, p, _ in server.requests} >= {
        "/img-a.png",
        "/img-b.png",
        "/private.png",
        "/accounts/login?next=/private.png",
    }
    for _, path, headers in server.requests:
        assert "authorization" not in headers, path
        assert "cookie" not in headers, path
        assert "sk-secret-never-sent" not in json.dumps(headers)


def test_urls_are_asked_in_parallel_and_once_each(tmp_path, server, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    urls = [f"{server.url}/pause{n}" for n in range(4)]
    Path("a.kvs").write_text(
        "\n".join(f'image p{n} = "{u}"' for n, u in enumerate(urls)) + '\nshot s 5s "@p0 @p1 @p2 @p3"\n',
        encoding="utf-8",
    )
    Path("b.kvs").write_text(f'start "{urls[0]}"\nshot s 5s "again"\n', encoding="utf-8")
    code, _, err = klingspec(capsys, "check", "--online", "--online-timeout", "5", "a.kvs", "b.kvs")
    assert code == 0
    assert "4 URLs checked (4 fetched, 0 from the cache)" in err
    assert sorted(p for _, p, _ in server.requests) == sorted(u.removeprefix(server.url) for u in urls)
    assert server.peak > 1


def test_the_check_cache_never_mixes_online_and_offline_results(script, server, capsys):
    offline = klingspec(capsys, "check", "--format", "json", script)
    assert online_codes(offline[1]) == {}
    online = klingspec(capsys, "check", "--online", "--online-timeout", TIMEOUT, "--format", "json", script)
    assert (2, 12) in online_codes(online[1])  # not the offline result from the cache
    requests = len(server.requests)
    again = klingspec(capsys, "check", "--format", "json", script)
    assert again[1] == offline[1]  # not the online result either
    assert len(server.requests) == requests  # and a plain check asks nothing


def test_without_online_nothing_is_asked(script, server, capsys):
    klingspec(capsys, "check", "--no-cache", script)
    assert server.requests == []


def test_a_failed_script_still_has_its_urls_checked(tmp_path, server, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("scene.kvs").write_text(f'image a = "{server.url}/missing.png"\nshot s 99s "@a"\n', encoding="utf-8")
    code, out, _ = klingspec(capsys, "check", "--online", "--format", "json", "scene.kvs")
    assert code == 1
    assert online_codes(out) == {(1, 11): ["KVS-url-status"]}


# -- the code pages of the online codes ---------------------------------------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs" / "codes"
ONLINE_CODES = ("KVS-url-status", "KVS-url-not-image", "KVS-url-login", "KVS-url-unreachable")
_ONLINE_MARK = re.compile(r"<!--\s*docs-test:\s*online\s+(\S+)\s*-->")


@pytest.mark.parametrize("code", ONLINE_CODES)
def test_each_online_page_shows_what_check_online_prints(code, tmp_path, server, capsys, monkeypatch):
    """The page's script, with its one URL served by the loopback server from the page's
    `docs-test: online PATH`, run with the page's command: the diagnostic's first line and
    its help are the page's (the snippet shows the page's own URL, so it is not compared)."""
    page = (DOCS / f"{code}.md").read_text(encoding="utf-8")
    served = _ONLINE_MARK.search(page)
    assert served, f"{code}.md has no `docs-test: online PATH` mark"
    script = re.search(r"^```kvs\n(.*?)^```$", page, re.S | re.M).group(1)
    console = re.search(r"^```console\n(.*?)^```$", page, re.S | re.M).group(1).splitlines()
    (url,) = re.findall(r'"(https://[^"]+)"', script)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NO_COLOR", "1")
    Path("scene.kvs").write_text(script.replace(url, server.url + served.group(1)), encoding="utf-8")
    argv = shlex.split(console[0].removeprefix("$ klingspec "))
    _, out, err = klingspec(capsys, *argv)
    printed = (err + out).splitlines()

    def shown(lines: list[str]) -> list[str]:
        header = next(i for i, line in enumerate(lines) if f"warning[{code}]" in line)
        help_line = next(line for line in lines[header:] if line.lstrip().startswith("= help:"))
        return [lines[header], help_line.strip()]

    assert shown(printed) == shown(console)
    assert console[1] in printed  # the `online: ...` line
