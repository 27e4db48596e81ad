"""Watch mode driven for real: a watcher process on a temporary folder, files edited by
the test, diagnostics read from the watcher's output; `--run` against the sandbox."""

from __future__ import annotations

import os
import time

import httpx
import pytest

from klingspec.sandbox import SandboxConfig, running_sandbox
from tests.watch.watchproc import WatchProcess

SCRIPT = """aspect 16:9
image cafe = "https://assets.example.com/cafe.jpg"
shot opening 5s "a quiet morning in @cafe"
"""


def write(path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def replace_atomically(path, text: str) -> None:
    """How many editors save: write a temporary file, rename it over the original."""
    tmp = path.with_name(f".{path.name}.swp-tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


@pytest.fixture
def watched(tmp_path):
    processes = []

    def start(*args: str, env: dict | None = None) -> WatchProcess:
        process = WatchProcess(list(args), tmp_path, {"KLINGSPEC_HOME": str(tmp_path / "home"), **(env or {})})
        processes.append(process)
        process.wait_for(r"^watch: watching \d+ script")
        return process

    yield start
    for process in processes:
        process.stop()


def test_save_shows_fresh_diagnostics_and_cost(tmp_path, watched):
    script = tmp_path / "scene.kvs"
    write(script, SCRIPT)
    watch = watched(".")
    assert any("scene.kvs: ok" in line and "$1.12" in line for line in watch.lines)
    write(script, SCRIPT.replace("5s", "17s"))
    watch.wait_for(r"scene\.kvs:3:14: error\[KVS-shot-duration\]")
    watch.wait_for(r"^watch: scene\.kvs: 1 error")
    write(script, SCRIPT.replace("5s", "6s"))
    assert "$1.34" in watch.wait_for(r"^watch: scene\.kvs: ok")


def test_json_lines_carry_every_event_as_an_object(tmp_path):
    import json

    script = tmp_path / "scene.kvs"
    write(script, SCRIPT)
    watch = WatchProcess(["--format", "json", "."], tmp_path, {"KLINGSPEC_HOME": str(tmp_path / "home")})
    try:
        watch.wait_for(r'"event": "watching"')
        events = [json.loads(line) for line in watch.lines]  # every line is one JSON object
        checked = next(e for e in events if e["event"] == "checked")
        assert checked["path"] == "scene.kvs" and checked["ok"] is True and checked["cost_usd"] == 1.12
        assert checked["request_hash"].startswith("sha256:") and checked["seconds"] == 5
        assert events[-1] == {"event": "watching", "scripts": 1, "message": "watch: watching 1 script; Ctrl-C stops"}
        write(script, SCRIPT.replace("5s", "17s"))
        found = json.loads(watch.wait_for(r'"event": "diagnostics"'))
        assert [d["code"] for d in found["diagnostics"]] == ["KVS-shot-duration"] and "message" not in found
        failed = json.loads(watch.wait_for(r'"event": "checked"'))
        assert failed["ok"] is False and failed["errors"] == 1 and "cost_usd" not in failed
    finally:
        watch.stop()
    assert all(json.loads(line)["event"] for line in watch.lines if line.strip())


def test_editor_rename_save_is_seen(tmp_path, watched):
    script = tmp_path / "scene.kvs"
    write(script, SCRIPT)
    watch = watched("scene.kvs")
    replace_atomically(script, SCRIPT.replace("5s", "7s"))
    assert "7 s" in watch.wait_for(r"^watch: scene\.kvs: ok")


def test_used_file_and_vars_file_changes_recheck_the_script(tmp_path, watched):
    write(tmp_path / "lib" / "chars.kvs", 'element hero {\n  front "https://assets.example.com/hero.png"\n}\n')
    write(tmp_path / "vars.toml", 'mood = "dusk"\n')
    write(tmp_path / "scenes" / "scene.kvs", 'use "../lib/chars.kvs"\nshot 5s "@hero walks at {{ mood }}"\n')
    watch = watched("scenes", "--vars", "vars.toml")
    replace_atomically(tmp_path / "lib" / "chars.kvs", 'element hero {\n  front "ftp://nope"\n}\n')
    watch.wait_for(r"lib/chars\.kvs:2:9: error\[KVS-uri-scheme\]")
    write(tmp_path / "lib" / "chars.kvs", 'element hero {\n  front "https://assets.example.com/hero.png"\n}\n')
    watch.wait_for(r"^watch: scenes/scene\.kvs: ok")
    write(tmp_path / "vars.toml", 'mood = "' + "x" * 600 + '"\n')
    watch.wait_for(r"error\[KVS-prompt-length\]")


def test_new_deleted_and_renamed_scripts_in_a_folder(tmp_path, watched):
    write(tmp_path / "shots" / "a.kvs", SCRIPT)
    watch = watched("shots")
    write(tmp_path / "shots" / "b.kvs", SCRIPT.replace("5s", "4s"))
    watch.wait_for(r"^watch: shots/b\.kvs: ok")
    os.rename(tmp_path / "shots" / "b.kvs", tmp_path / "shots" / "c.kvs")
    watch.wait_for(r"^watch: shots/c\.kvs: ok")
    (tmp_path / "shots" / "a.kvs").unlink()
    watch.wait_for(r"^watch: shots/a\.kvs: removed")


def test_a_burst_of_saves_is_one_recheck(tmp_path, watched):
    script = tmp_path / "scene.kvs"
    write(script, SCRIPT)
    watch = watched(".")
    for seconds in range(3, 9):  # six saves in a row, as an editor's auto-save might
        write(script, SCRIPT.replace("5s", f"{seconds}s"))
    watch.wait_for(r"^watch: scene\.kvs: ok .* 8 s")
    rechecks = [line for line in watch.drain() + watch.lines[-1:] if line.startswith("watch: scene.kvs")]
    assert len(rechecks) == 1, watch.lines


def test_ctrl_c_exits_zero(tmp_path, watched):
    write(tmp_path / "scene.kvs", SCRIPT)
    watch = watched(".")
    assert watch.stop() == 0
    assert watch.lines[-1].startswith("watch: stopped")


def _jobs(base_url: str) -> int:
    stats = httpx.get(base_url + "/_sandbox/stats", timeout=5).json()
    return sum(stats["jobs"].values())


def test_run_renders_only_when_the_request_changes(tmp_path, watched):
    script = tmp_path / "scene.kvs"
    write(script, SCRIPT)
    config = SandboxConfig(queue_seconds=0.05, processing_seconds=0.1)
    with running_sandbox(config) as base_url:
        watch = watched(".", "--run", "--yes", "--api-url", base_url, env={"OXEN_API_KEY": "test-key"})
        watch.seen_or_wait(r"render done: renders/scene-", timeout=20)
        assert _jobs(base_url) == 1
        write(script, "# a comment changes nothing\n" + SCRIPT + "\n\n")
        watch.wait_for(r"scene\.kvs: request unchanged, not re-rendering")
        write(script, SCRIPT.replace("quiet", "busy"))
        watch.wait_for(r"render done: renders/scene-", timeout=20)
        assert _jobs(base_url) == 2
        write(script, SCRIPT.replace("5s", "50s"))
        watch.wait_for(r"scene\.kvs: 1 error.*not rendered")
        time.sleep(0.5)
        assert _jobs(base_url) == 2
        assert len(list((tmp_path / "renders").glob("*.mp4"))) == 2  # the last good renders stay
        assert watch.stop() == 0


def test_run_without_a_terminal_or_consent_refuses_before_watching(tmp_path):
    """No terminal to ask, no --yes, no --budget: exit 4 before watching, nothing sent."""
    write(tmp_path / "scene.kvs", SCRIPT)  # $1.12 a render
    config = SandboxConfig(queue_seconds=0.05, processing_seconds=0.1)
    with running_sandbox(config) as base_url:
        watch = WatchProcess(
            [".", "--run", "--api-url", base_url],
            tmp_path,
            {"KLINGSPEC_HOME": str(tmp_path / "home"), "OXEN_API_KEY": "k"},
        )
        try:
            code = watch.proc.wait(timeout=30)
        finally:
            watch.stop()
        assert code == 4, watch.lines
        assert watch.lines == [
            "klingspec: nothing was sent: this watch would render at the API on each save that changes a "
            "request (the first renders: 1 script, $1.12), and there is no terminal to confirm it; pass --yes "
            "to allow it, or --budget USD to cap the session"
        ]
        assert httpx.get(base_url + "/_sandbox/stats", timeout=5).json()["total"] == 0


def test_run_with_the_sandbox_never_asks(tmp_path, watched):
    write(tmp_path / "scene.kvs", SCRIPT)
    watch = watched(".", "--run", "--sandbox")
    watch.seen_or_wait(r"render done: renders/scene-", timeout=20)
    assert not any("nothing was sent" in line or "[y/N]" in line for line in watch.lines)
    assert watch.stop() == 0


def test_run_honours_the_session_budget(tmp_path, watched):
    """--budget is the session's consent: no --yes needed, and no terminal."""
    script = tmp_path / "scene.kvs"
    write(script, SCRIPT)  # $1.12 a render
    config = SandboxConfig(queue_seconds=0.05, processing_seconds=0.1)
    with running_sandbox(config) as base_url:
        watch = watched(".", "--run", "--budget", "2.00", "--api-url", base_url, env={"OXEN_API_KEY": "k"})
        watch.seen_or_wait(r"render done", timeout=20)
        write(script, SCRIPT.replace("quiet", "rainy"))
        line = watch.wait_for(r"budget refused")
        assert "$1.12" in line and "$2.00" in line
        assert _jobs(base_url) == 1


def test_cancel_stale_cancels_the_superseded_render(tmp_path, watched):
    script = tmp_path / "scene.kvs"
    write(script, SCRIPT)
    config = SandboxConfig(queue_seconds=0.05, processing_seconds=30)  # long renders
    with running_sandbox(config) as base_url:
        watch = watched(".", "--run", "--yes", "--cancel-stale", "--api-url", base_url, env={"OXEN_API_KEY": "k"})
        watch.seen_or_wait(r"rendering sha256:")
        time.sleep(0.5)
        write(script, SCRIPT.replace("quiet", "stormy"))
        watch.wait_for(r"cancelling the stale render")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            stats = httpx.get(base_url + "/_sandbox/stats", timeout=5).json()["jobs"]
            if stats.get("cancelled") == 1 and sum(stats.values()) == 2:
                break  # the stale render cancelled, the new one enqueued
            time.sleep(0.1)
        assert stats.get("cancelled") == 1 and sum(stats.values()) == 2, watch.lines + watch.drain()
        assert watch.stop() == 0


def test_ctrl_c_leaves_renders_in_flight_for_status_and_a_later_run(tmp_path, watched):
    """Ctrl-C stops the watcher (exit 0) without cancelling the render; the ledger keeps
    it, `klingspec status` shows it, and a later `klingspec run` finishes it unpaid."""
    import subprocess
    import sys

    script = tmp_path / "scene.kvs"
    write(script, SCRIPT)
    config = SandboxConfig(queue_seconds=0.05, processing_seconds=2.0)
    env = dict(os.environ, KLINGSPEC_HOME=str(tmp_path / "home"), OXEN_API_KEY="k", NO_COLOR="1")
    with running_sandbox(config) as base_url:
        watch = watched(".", "--run", "--yes", "--api-url", base_url, env={"OXEN_API_KEY": "k"})
        watch.seen_or_wait(r"rendering sha256:")
        time.sleep(0.3)
        assert watch.stop() == 0
        assert "still in flight" in watch.lines[-1]
        status = subprocess.run(
            [sys.executable, "-m", "klingspec", "status"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert status.returncode == 0 and "scene.kvs" in status.stdout and "submitted" in status.stdout
        rerun = subprocess.run(
            [sys.executable, "-m", "klingspec", "run", "--yes", "--api-url", base_url, "scene.kvs"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert rerun.returncode == 0, rerun.stderr
        assert "reattach" in rerun.stdout + rerun.stderr
        assert _jobs(base_url) == 1
        assert len(list((tmp_path / "renders").glob("*.mp4"))) == 1


def test_run_uploads_a_local_image_before_it_renders(tmp_path, watched):
    """A watched script naming a local image renders only once its image is in the
    repository: the sandbox fetches every input, so a missing upload would fail the job."""
    from PIL import Image

    Image.new("RGB", (320, 320), (200, 120, 40)).save(tmp_path / "hero.png")
    write(tmp_path / "scene.kvs", 'assets aurora/refs\nimage hero = "hero.png"\nshot a 5s "@hero waves"\n')
    config = SandboxConfig(queue_seconds=0.05, processing_seconds=0.1)
    with running_sandbox(config) as base_url:
        watch = watched(".", "--run", "--yes", "--api-url", base_url, env={"OXEN_API_KEY": "test-key"})
        watch.seen_or_wait(r"render done: renders/scene-", timeout=30)
        requests = httpx.get(base_url + "/_sandbox/stats", timeout=5).json()["requests"]
        assert sum(n for route, n in requests.items() if route.startswith("PUT /api/repos/")) == 1
        assert watch.stop() == 0


def _png(path, size=(320, 320)) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (30, 90, 160)).save(path)


def test_a_missing_image_that_appears_rechecks_the_script(tmp_path, watched):
    """A script naming an image that is not there yet is re-checked when the image is
    created, and again when it is deleted or replaced."""
    write(tmp_path / "scene.kvs", 'assets aurora/refs\nimage hero = "refs/hero.png"\nshot 5s "@hero waves"\n')
    watch = watched(".")
    assert any("error[KVS-image-not-found]" in line for line in watch.lines), watch.lines
    _png(tmp_path / "refs" / "hero.png")  # the folder did not exist either
    watch.wait_for(r"^watch: scene\.kvs: ok \(0 errors, 0 warnings\)")
    (tmp_path / "refs" / "hero.png").unlink()
    watch.wait_for(r"scene\.kvs:2:14: error\[KVS-image-not-found\]")
    watch.wait_for(r"^watch: scene\.kvs: 1 error")
    _png(tmp_path / "refs" / "hero.png", (200, 320))
    watch.wait_for(r"warning\[KVS-image-small\]")
    watch.wait_for(r"^watch: scene\.kvs: ok \(0 errors, 1 warning\)")


def test_a_new_folder_rechecks_the_scripts_whose_missing_files_it_holds(tmp_path, monkeypatch):
    """The OS may report a new folder but not a file written into it before it was watched:
    the folder's own event re-checks the scripts that wait for a file inside it."""
    from klingspec.cli.watching import Say, Watcher
    from klingspec.pipeline import Options

    monkeypatch.chdir(tmp_path)
    write(tmp_path / "scene.kvs", 'assets aurora/refs\nimage hero = "refs/hero.png"\nshot 5s "@hero waves"\n')
    write(tmp_path / "other.kvs", 'shot 5s "no images"\n')
    said: list[str] = []
    watcher = Watcher(["."], Options(), out=Say(said.append))
    watcher.start()
    assert watcher.relevant(str(tmp_path / "refs")) and not watcher.relevant(str(tmp_path / "elsewhere"))
    _png(tmp_path / "refs" / "hero.png")
    said.clear()
    watcher.changed([str(tmp_path / "refs")])  # the folder's event alone
    assert (
        [line for line in said if line.startswith("watch:")]
        == [line for line in said if line.startswith("watch: scene.kvs: ok")]
        != []
    )


def test_a_missing_image_beside_a_used_library_rechecks_the_script(tmp_path, watched):
    """The path resolves against the library that names it, outside the watched folder."""
    write(tmp_path / "lib" / "cast.kvs", 'image hero = "faces/hero.png"\n')
    (tmp_path / "lib" / "faces").mkdir()
    write(tmp_path / "scenes" / "scene.kvs", 'assets aurora/refs\nuse "../lib/cast.kvs"\nshot 5s "@hero waves"\n')
    watch = watched("scenes")
    assert any("error[KVS-image-not-found]" in line for line in watch.lines), watch.lines
    _png(tmp_path / "lib" / "faces" / "hero.png")
    watch.wait_for(r"^watch: scenes/scene\.kvs: ok")


def test_a_film_checks_ok_with_its_running_time_and_cost_and_watch_run_says_run_renders_it(tmp_path, monkeypatch):
    from klingspec import pricing
    from klingspec.cli.watching import Say, Watcher
    from klingspec.pipeline import Options, run_pipeline

    monkeypatch.chdir(tmp_path)
    write(tmp_path / "scenes" / "intro.kvs", 'shot 5s "a red dawn"\n')
    write(tmp_path / "scenes" / "walk.kvs", 'assets ada/film\nshot 4s "a blue walk"\n')
    write(tmp_path / "launch.kvs", 'scene intro "scenes/intro.kvs"\nscene walk "scenes/walk.kvs" continues intro\n')
    said: list[str] = []
    rendered: list[str] = []
    watcher = Watcher(["launch.kvs"], Options(), out=Say(said.append), render=lambda t, r: rendered.append(t.path))
    watcher.start()
    film = run_pipeline("launch.kvs").film
    cost = pricing.usd_quote(pricing.add(s.result.estimate.quote for s in film.scenes))
    checked = [line for line in said if line.startswith("watch: launch.kvs: ok")]
    assert len(checked) == 1 and "a film of 2 scenes, 9 s" in checked[0] and cost in checked[0]
    assert any("a film is not rendered by watch: `klingspec run launch.kvs`" in line for line in said)
    assert rendered == []
    said.clear()
    write(tmp_path / "scenes" / "walk.kvs", 'assets ada/film\nshot 6s "a blue walk"\n')
    watcher.changed([str(tmp_path / "scenes" / "walk.kvs")])  # a scene's script: the film is checked again
    assert any(line.startswith("watch: launch.kvs: ok") and "11 s" in line for line in said), said


def test_a_folder_with_a_film_never_renders_its_scene_scripts_on_their_own(tmp_path, monkeypatch):
    """`watch --run FOLDER`: walk.kvs alone (no start frame) is a request no film sends."""
    from klingspec.cli.watching import Say, Watcher
    from klingspec.pipeline import Options

    monkeypatch.chdir(tmp_path)
    write(tmp_path / "scenes" / "intro.kvs", 'shot 5s "a red dawn"\n')
    write(tmp_path / "scenes" / "walk.kvs", 'assets ada/film\nshot 4s "a blue walk"\n')
    write(tmp_path / "launch.kvs", 'scene intro "scenes/intro.kvs"\nscene walk "scenes/walk.kvs" continues intro\n')
    write(tmp_path / "other.kvs", 'shot 5s "a script of its own"\n')
    said: list[str] = []
    rendered: list[str] = []
    watcher = Watcher(["."], Options(), out=Say(said.append), render=lambda t, r: rendered.append(t.path))
    assert watcher.startup_spend()[0] == 1  # other.kvs alone
    watcher.start()
    assert [os.path.basename(p) for p in rendered] == ["other.kvs"]
    assert sorted(os.path.basename(p) for p in watcher.scripts) == ["launch.kvs", "other.kvs"]
    said.clear()
    write(tmp_path / "scenes" / "walk.kvs", 'assets ada/film\nshot 6s "a blue walk"\n')
    watcher.changed([str(tmp_path / "scenes" / "walk.kvs")])
    assert [os.path.basename(p) for p in rendered] == ["other.kvs"]
    assert any(line.startswith("watch: launch.kvs: ok") for line in said) and not any("walk.kvs: ok" in x for x in said)
