"""Local images end to end: `run` uploads each image once per API before anything is
submitted, against a real sandbox over HTTP (which fetches every input URL, so a render
whose image was not uploaded fails), with real ledger files; requests are counted with
`/_sandbox/stats`."""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image
from run_helpers import new_key, stats

from klingspec.cli import main
from klingspec.cli.report import Exit
from klingspec.run.ledger import SCHEMA_VERSION, Ledger
from klingspec.run.uploading import DEFAULT_AUTHOR, author
from klingspec.sandbox import FaultRule

PUT = "PUT /api/repos/{namespace}/{repo}/file/{branch}/{path:path}"
HEAD = "HEAD /api/repos/{namespace}/{repo}/file/{branch}/{path:path}"
ENQUEUE = "POST /api/ai/queue"
SCRIPT = 'assets ada/refs\nimage hero = "hero.png"\nshot 5s "@hero opens the door"\n'


def picture(path: Path, color: str = "red") -> Path:
    out = io.BytesIO()
    Image.new("RGB", (320, 320), color).save(out, "PNG")
    path.write_bytes(out.getvalue())
    return path


def scene(tmp_path: Path, color: str = "red") -> str:
    picture(tmp_path / "hero.png", color)
    path = tmp_path / "scene.kvs"
    path.write_text(SCRIPT, encoding="utf-8")
    return str(path)


def counts(base: str) -> tuple[int, int, int]:
    """(PUTs, HEADs, enqueues) the sandbox has answered."""
    requests = stats(base)["requests"]
    return requests.get(PUT, 0), requests.get(HEAD, 0), requests.get(ENQUEUE, 0)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["run", "--yes", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def upload_rows(ledger: str) -> list[tuple[str, str, str | None]]:
    with sqlite3.connect(ledger) as db:
        return db.execute("SELECT url, state, commit_id FROM uploads ORDER BY created_at").fetchall()


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # paths are shown relative to the working folder


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    value = new_key()
    monkeypatch.setenv("OXEN_API_KEY", value)
    monkeypatch.setenv("KLINGSPEC_AUTHOR_NAME", "Ada")
    monkeypatch.setenv("KLINGSPEC_AUTHOR_EMAIL", "ada@example.com")
    return value


def test_upload_render_then_rerun_uploads_nothing_and_an_edit_uploads_once(tmp_path, capsys, key, sandbox_with):
    path = scene(tmp_path)
    ledger = str(tmp_path / "ledger.sqlite")
    with sandbox_with() as base:
        code, out, err = run(capsys, "--api-url", base, "--ledger", ledger, path)
        assert code == Exit.OK, err
        assert "1 local image to upload" in out and "uploaded hero.png" in err
        assert counts(base) == (1, 1, 1)  # looked, uploaded, then submitted: the sandbox fetched it to render
        [(url, state, commit)] = upload_rows(ledger)
        assert url.startswith("https://hub.oxen.ai/api/repos/ada/refs/file/main/klingspec/") and state == "done"
        assert commit and len(commit) == 32

        code, out, err = run(capsys, "--api-url", base, "--ledger", ledger, path)
        assert code == Exit.OK, err
        assert counts(base) == (1, 1, 1)  # the ledger says done, and the render is reused: no request at all
        assert "uploaded already" in out

        scene(tmp_path, color="blue")  # the same name, new content: a new request and a new upload
        code, out, err = run(capsys, "--api-url", base, "--ledger", ledger, path)
        assert code == Exit.OK, err
        assert counts(base) == (2, 2, 2)
        assert [row[1] for row in upload_rows(ledger)] == ["done", "done"]


def test_a_render_again_with_the_image_uploaded_sends_no_upload_request(tmp_path, capsys, key, sandbox_with):
    path = scene(tmp_path)
    ledger = str(tmp_path / "ledger.sqlite")
    with sandbox_with() as base:
        assert run(capsys, "--api-url", base, "--ledger", ledger, path)[0] == Exit.OK
        code, _, err = run(capsys, "--api-url", base, "--ledger", ledger, "--again", path)
        assert code == Exit.OK, err
        assert counts(base) == (1, 1, 2)  # a second render, no second look or upload


def test_another_machine_finds_the_file_in_the_repository_and_does_not_upload_it(tmp_path, capsys, key, sandbox_with):
    path = scene(tmp_path)
    with sandbox_with() as base:
        assert run(capsys, "--api-url", base, "--ledger", str(tmp_path / "one.sqlite"), path)[0] == Exit.OK
        other = str(tmp_path / "two.sqlite")  # a fresh ledger: another machine sharing the repository
        code, _, err = run(capsys, "--api-url", base, "--ledger", other, path)
        assert code == Exit.OK, err
        assert "already in ada/refs; not uploaded again" in err
        assert counts(base) == (1, 2, 2)
        assert [(state, commit) for _, state, commit in upload_rows(other)] == [("done", None)]


def test_an_upload_failure_submits_nothing_and_exits_3(tmp_path, capsys, key, sandbox_with):
    path = scene(tmp_path)
    ledger = str(tmp_path / "ledger.sqlite")
    fault = FaultRule("status=500, retry-after=0", path="/api/repos/*", method="PUT")  # every attempt
    with sandbox_with(faults=(fault,)) as base:
        code, _, err = run(capsys, "--api-url", base, "--ledger", ledger, path)
        assert code == Exit.API_FAILURE
        assert "cannot upload hero.png" in err and "(500)" in err and "nothing was submitted" in err
        puts, heads, enqueues = counts(base)
        assert (heads, enqueues) == (1, 0) and puts == 6  # retried (idempotent by content), then given up
        assert [row[1] for row in upload_rows(ledger)] == ["failed"]
        with Ledger(ledger) as book:
            assert book.renders() == []  # not even an intent: nothing was to be paid for


def test_an_image_edited_after_the_check_is_not_uploaded_under_the_old_name(tmp_path, capsys, key, sandbox_with):
    path = scene(tmp_path)
    plan = str(tmp_path / "plan.json")
    assert main(["plan", "-o", plan, path]) == Exit.OK
    capsys.readouterr()
    with sandbox_with() as base:
        code, _, err = run(capsys, "--api-url", base, "--ledger", str(tmp_path / "l.sqlite"), plan)
        assert code == Exit.OK, err
        assert counts(base) == (1, 1, 1)  # a saved plan carries its uploads
        scene(tmp_path, color="green")
        code, _, err = run(capsys, "--api-url", base, "--ledger", str(tmp_path / "l.sqlite"), plan)
        assert code != Exit.OK and "hero.png changed since" in err  # the plan is stale
        assert counts(base) == (1, 1, 1)


def test_plan_lists_what_is_still_to_upload_from_the_ledger(tmp_path, capsys, key, sandbox_with):
    path = scene(tmp_path)
    ledger = str(tmp_path / "ledger.sqlite")
    with sandbox_with() as base:
        assert main(["plan", "--format", "json", "--api-url", base, "--ledger", ledger, path]) == Exit.OK
        [entry] = json.loads(capsys.readouterr().out)["uploads"]
        assert entry["uploaded"] is False and entry["bytes"] == (tmp_path / "hero.png").stat().st_size
        assert not os.path.exists(ledger)  # plan creates no ledger
        main(["run", "--dry-run", "--api-url", base, "--ledger", ledger, path])
        out = capsys.readouterr().out
        assert "# upload hero.png" in out and "PUT /repos/ada/refs/file/main/klingspec/" in out
        assert counts(base) == (0, 0, 0)  # a dry run sends nothing
        assert run(capsys, "--api-url", base, "--ledger", ledger, path)[0] == Exit.OK
        assert main(["plan", "--format", "json", "--api-url", base, "--ledger", ledger, path]) == Exit.OK
        assert json.loads(capsys.readouterr().out)["uploads"][0]["uploaded"] is True
        assert main(["plan", "--api-url", base, "--ledger", ledger, path]) == Exit.OK
        assert "1 local image uploaded already" in capsys.readouterr().out
        # another API has not got it
        assert (
            main(["plan", "--format", "json", "--api-url", "https://other.example/api", "--ledger", ledger, path]) == 0
        )
        assert json.loads(capsys.readouterr().out)["uploads"][0]["uploaded"] is False


def test_the_sandbox_forgets_its_files_so_every_sandbox_run_uploads(tmp_path, capsys):
    path = scene(tmp_path)
    for _ in range(2):
        code, _, err = run(capsys, "--sandbox", "--again", path)
        assert code == Exit.OK, err
        assert "uploaded hero.png" in err


# -- a crash between upload and submit ------------------------------------------------------


def test_a_crash_after_the_upload_resumes_without_a_second_upload(tmp_path, key, sandbox_with):
    path = scene(tmp_path)
    ledger = str(tmp_path / "ledger.sqlite")
    env = dict(os.environ, OXEN_API_KEY=key, COLUMNS="200")
    # The run opens the event stream after uploading and before it submits: held there.
    hold = FaultRule("latency=8", path="/api/events", method="GET", times=1)
    with sandbox_with(faults=(hold,)) as base:
        argv = [sys.executable, "-m", "klingspec", "run", "--yes", "--api-url", base, "--ledger", ledger, path]
        first = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if os.path.exists(ledger) and _done_uploads(ledger):
                break
            time.sleep(0.02)
        else:
            first.kill()
            pytest.fail("the first run never recorded its upload")
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=10)
        assert counts(base) == (1, 1, 0)  # uploaded, nothing submitted

        second = subprocess.run(argv, env=env, capture_output=True, timeout=60)
        assert second.returncode == Exit.OK, second.stderr.decode()
        assert counts(base) == (1, 1, 1)  # no second upload (not even a look), one enqueue


def _done_uploads(ledger: str) -> int:
    try:
        with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=1) as db:
            return int(db.execute("SELECT COUNT(*) FROM uploads WHERE state='done'").fetchone()[0])
    except sqlite3.Error:
        return 0


# -- the key stays on the API's host --------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, str | None]]
    redirect_to: str | None = None

    def _answer(self) -> None:
        self.seen.append((self.command, self.path, self.headers.get("Authorization")))
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.redirect_to is not None:
            self.send_response(307)
            self.send_header("Location", self.redirect_to + self.path)
            self.send_header("Content-Length", "0")
        else:
            self.send_response(404 if self.command == "HEAD" else 200)
            self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_PUT = do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def servers() -> Iterator[tuple[ThreadingHTTPServer, ThreadingHTTPServer]]:
    """An "API" that redirects every request to another loopback port, and that other port."""
    elsewhere_handler = type("Elsewhere", (_Recorder,), {"seen": []})
    elsewhere = ThreadingHTTPServer(("127.0.0.1", 0), elsewhere_handler)
    target = f"http://127.0.0.1:{elsewhere.server_address[1]}"
    api_handler = type("Api", (_Recorder,), {"seen": [], "redirect_to": target})
    api = ThreadingHTTPServer(("127.0.0.1", 0), api_handler)
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (api, elsewhere)]
    for thread in threads:
        thread.start()
    try:
        yield api, elsewhere
    finally:
        for server in (api, elsewhere):
            server.shutdown()
            server.server_close()


def test_the_key_never_follows_a_redirect_to_another_host(tmp_path, capsys, key, servers):
    api, elsewhere = servers
    path = scene(tmp_path)
    base = f"http://127.0.0.1:{api.server_address[1]}/api"
    code, _, err = run(capsys, "--api-url", base, "--ledger", str(tmp_path / "l.sqlite"), path)
    assert code == Exit.API_FAILURE
    assert "redirected" in err and "nothing was submitted" in err and key not in err
    seen_api = api.RequestHandlerClass.seen  # type: ignore[attr-defined]
    assert [(method, auth) for method, _, auth in seen_api] == [("HEAD", f"Bearer {key}")]
    assert elsewhere.RequestHandlerClass.seen == []  # type: ignore[attr-defined]


# -- the ledger ----------------------------------------------------------------------------


def test_a_schema_2_ledger_is_migrated_in_place_and_keeps_its_renders(tmp_path):
    path = str(tmp_path / "old.sqlite")
    with Ledger(path) as ledger:
        ledger.record_intent(
            request_hash="sha256:x",
            api_url="https://api",
            script="s.kvs",
            model="m",
            body={"a": 1},
            generations=1,
            mode="queue",
            out_dir="out",
            estimate_usd="1.12",
        )
    with sqlite3.connect(path) as db:  # as klingspec with schema 2 left it
        db.execute("DROP TABLE uploads")
        db.execute("DROP TABLE start_frames")
        db.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
    db.close()
    with Ledger(path) as ledger:
        assert ledger.schema_version() == SCHEMA_VERSION == 4
        assert [r.request_hash for r in ledger.renders()] == ["sha256:x"]
        assert ledger.uploaded_urls("https://api") == set()
        ledger.record_upload("https://api", "u", sha256="ab", size=3, local_path="p", state="done", commit_id="c")
        assert ledger.uploaded_urls("https://api") == {"u"} and ledger.uploaded_urls("https://other") == set()
        assert ledger.start_frame("sha256:v") is None  # schema 4: start frames, made by the migration
        ledger.record_start_frame("sha256:v", "p1")
        ledger.record_start_frame("sha256:v", "p2")  # made anew: the newest is the one kept
        assert ledger.start_frame("sha256:v") == "p2"


def test_the_commit_author_comes_from_the_environment_then_git_then_klingspec(monkeypatch, tmp_path):
    assert author({"KLINGSPEC_AUTHOR_NAME": "Ada", "KLINGSPEC_AUTHOR_EMAIL": "a@b.c"}) == ("Ada", "a@b.c")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "none"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.chdir(tmp_path)
    assert author({}) == DEFAULT_AUTHOR
