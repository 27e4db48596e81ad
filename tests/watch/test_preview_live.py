"""`watch --preview`: a real watcher process serving the storyboards on loopback
(klingspec/preview/live.py), read over real HTTP while the test edits the script.

The browser side (the page reloading itself) is in tests/test_preview_browser.py.
"""

from __future__ import annotations

import json
import os
import re
import threading
import urllib.parse

import httpx
import pytest

from klingspec.cli import main
from klingspec.cli.report import Exit
from tests.watch.test_watching import replace_atomically, write
from tests.watch.watchproc import WatchProcess

SCRIPT = 'shot arrival 3s "a red door"\nshot inside 5s "a quiet hall"\n'


@pytest.fixture
def served(tmp_path, monkeypatch):
    """Start `watch --preview --format json` in tmp_path; returns (process, base URL)."""
    processes = []

    def start(*args: str) -> tuple[WatchProcess, str]:
        home = str(tmp_path / "home")
        process = WatchProcess(["--preview", "--format", "json", *args], tmp_path, {"KLINGSPEC_HOME": home})
        processes.append(process)
        serving = json.loads(process.wait_for(r'"event": "serving"'))
        process.wait_for(r'"event": "watching"')
        return process, serving["url"]

    yield start
    for process in processes:
        process.stop()


def page_url(base: str, script: str) -> str:
    return base + "page?" + urllib.parse.urlencode({"script": script})


def shot_names(html: str) -> list[str]:
    return re.findall(r'<li class="shot" id="shot-\d+" data-name="([^"]+)"', html)


class Events:
    """An event stream read in a thread: each `event: checked` data object, in order."""

    def __init__(self, url: str):
        self.got: list[dict] = []
        self.ready = threading.Event()
        self.arrived = threading.Condition()
        self.client = httpx.Client(timeout=httpx.Timeout(5.0, read=30.0))
        self.thread = threading.Thread(target=self._read, args=(url,), daemon=True)
        self.thread.start()
        assert self.ready.wait(10), "the event stream did not open"

    def _read(self, url: str) -> None:
        try:
            with self.client.stream("GET", url) as response:
                assert response.headers["content-type"] == "text/event-stream"
                self.ready.set()
                event = None
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        event = line[len("event: ") :]
                    elif line.startswith("data: ") and event == "checked":
                        with self.arrived:
                            self.got.append(json.loads(line[len("data: ") :]))
                            self.arrived.notify_all()
        except httpx.HTTPError:
            return

    def wait_for(self, count: int, timeout: float = 15.0) -> list[dict]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.got) >= count, timeout), f"events so far: {self.got}"
            return list(self.got)

    def close(self) -> None:
        self.client.close()


def test_the_page_is_served_and_each_save_reloads_it_with_the_new_script(tmp_path, served):
    script = tmp_path / "scene.kvs"
    write(script, SCRIPT)
    watch, base = served("scene.kvs")
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/[\w-]{20,}/", base)  # under a random secret

    index = httpx.get(base)  # one watched script: the index sends the reader to its page
    secret = urllib.parse.urlsplit(base).path
    assert index.status_code == 303 and index.headers["location"] == secret + "page?script=scene.kvs"
    assert httpx.get(base.rstrip("/")).headers["location"] == secret
    page = httpx.get(page_url(base, "scene.kvs"))
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert shot_names(page.text) == ["arrival", "inside"]
    assert "new EventSource(" in page.text and "location.reload()" in page.text
    version = int(re.search(r"version=(\d+)", page.text).group(1))

    events = Events(base + f"events?script=scene.kvs&version={version}")
    try:
        replace_atomically(script, SCRIPT.replace("arrival", "departure"))
        [first] = events.wait_for(1)
        assert first["script"] == "scene.kvs" and first["version"] > version
        assert shot_names(httpx.get(page_url(base, "scene.kvs")).text) == ["departure", "inside"]
        replace_atomically(script, SCRIPT.replace("3s", "30s"))  # an error: the page still reloads, showing it
        second = events.wait_for(2)[1]
        assert second["version"] > first["version"]
        broken = httpx.get(page_url(base, "scene.kvs")).text
        assert 'data-code="KVS-shot-duration"' in broken
    finally:
        events.close()
    assert watch.proc.poll() is None


def test_a_page_opened_late_catches_up_at_once(tmp_path, served):
    """A page built at version N that connects after a save is told straight away."""
    script = tmp_path / "scene.kvs"
    write(script, SCRIPT)
    watch, base = served("scene.kvs")
    version = int(re.search(r"version=(\d+)", httpx.get(page_url(base, "scene.kvs")).text).group(1))
    replace_atomically(script, SCRIPT.replace("a red door", "a blue door"))
    watch.wait_for(r'"event": "checked"')
    events = Events(base + f"events?script=scene.kvs&version={version}")
    try:
        assert events.wait_for(1)[0]["version"] > version
    finally:
        events.close()


def test_it_serves_only_watched_scripts_only_to_loopback_names_and_videos_only_by_token(
    tmp_path, served, capsys, klingspec_home
):
    script = tmp_path / "scene.kvs"
    write(script, SCRIPT)
    write(tmp_path / "other.kvs", SCRIPT)
    capsys.readouterr()
    out = str(tmp_path / "renders")
    assert main(["run", "--sandbox", "--yes", "--out", out, str(script)]) == Exit.OK  # the test's own ledger
    _, base = served("scene.kvs", "--ledger", os.path.join(klingspec_home, "ledger.sqlite"))

    assert httpx.get(page_url(base, "other.kvs")).status_code == 404  # in the folder, not watched
    root = base[: base.index("/", len("http://"))] + "/"
    assert httpx.get(page_url(root, "scene.kvs")).status_code == 404  # the port alone reads nothing
    assert httpx.get(root + "wrong-secret/page?script=scene.kvs").status_code == 404
    assert httpx.get(page_url(base, "/etc/passwd")).status_code == 404
    assert httpx.get(base + "events?script=other.kvs").status_code == 404
    port = urllib.parse.urlsplit(base).port
    rebound = httpx.get(page_url(base, "scene.kvs"), headers={"Host": f"attacker.example:{port}"})
    assert rebound.status_code == 421  # a DNS-rebound page elsewhere cannot read it
    assert httpx.get(page_url(base, "scene.kvs"), headers={"Host": f"localhost:{port}"}).status_code == 200

    page = httpx.get(page_url(base, "scene.kvs")).text
    links = re.findall(r'<video[^>]* src="(media/[^"]+)"', page)
    assert len(links) == 1, page
    video = httpx.get(base + links[0])
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    [downloaded] = (tmp_path / "renders").glob("*.mp4")
    assert video.content == downloaded.read_bytes()
    part = httpx.get(base + links[0], headers={"Range": "bytes=4-11"})
    assert part.status_code == 206 and part.content == downloaded.read_bytes()[4:12]
    assert part.headers["content-range"] == f"bytes 4-11/{downloaded.stat().st_size}"
    assert httpx.get(base + "media/not-a-token/x.mp4").status_code == 404
    assert httpx.get(base + "media/" + urllib.parse.quote(str(downloaded), safe="")).status_code == 404


@pytest.mark.parametrize("argv", [["--port", "8123"], ["--open"]])
def test_port_and_open_go_with_preview(argv, tmp_path, capsys):
    script = tmp_path / "scene.kvs"
    write(script, SCRIPT)
    assert main(["watch", str(script), *argv]) == Exit.USAGE
    assert "--preview" in capsys.readouterr().err
