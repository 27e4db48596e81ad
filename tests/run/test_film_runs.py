"""`run FILM` (klingspec/cli/filmruns.py) against a real sandbox over HTTP, with a real
ledger: the scenes render in stages, a continued scene starts on the last frame of the one
before (the sandbox paints a start image's colour over the first 0.5 s, decoded here with
PyAV), the chosen takes are joined; a re-run sends nothing, an edit re-renders the edited
scene and the scenes chained after it, a failed scene holds back its chain only.
Enqueues are counted with `/_sandbox/stats`."""

from __future__ import annotations

import hashlib
import io
import json
import re
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

av = pytest.importorskip("av", reason="PyAV (the video extra) is not installed")

from run_helpers import new_key, stats  # noqa: E402
from test_processes import (  # noqa: E402
    _env,
    _klingspec,
    _ledger_rows,
    _wait_for,
    sandbox_process,  # noqa: F401  (the fixture: a sandbox in a process of its own)
)

from klingspec.cli import main  # noqa: E402
from klingspec.cli.report import Exit  # noqa: E402
from klingspec.run.ledger import Ledger  # noqa: E402
from klingspec.run.startframes import frame_path  # noqa: E402
from klingspec.run.video import probe  # noqa: E402
from klingspec.sandbox import FaultRule  # noqa: E402

ENQUEUE = "POST /api/ai/queue"
PUT = "PUT /api/repos/{namespace}/{repo}/file/{branch}/{path:path}"
RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)
TOLERANCE = 12  # per channel, after yuv420p and H.264

FILM = (
    'scene intro "scenes/intro.kvs"\n'
    'scene title "scenes/title.kvs"\n'
    'scene walk "scenes/walk.kvs" continues intro\n'
    "scene outro continues walk {\n"
    "  assets ada/film\n"
    '  shot 3s "a yellow logo on the wall"\n'
    "}\n"
)
SECONDS = {"intro": 3, "title": 5, "walk": 4, "outro": 3}


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OXEN_API_KEY", new_key())
    monkeypatch.setenv("KLINGSPEC_AUTHOR_NAME", "Ada")
    monkeypatch.setenv("KLINGSPEC_AUTHOR_EMAIL", "ada@example.com")


def film(tmp_path: Path, walk: str = "a blue walk through the town") -> str:
    scenes = tmp_path / "scenes"
    scenes.mkdir(exist_ok=True)
    (scenes / "intro.kvs").write_text('shot 3s "a red dawn over the hills"\n', encoding="utf-8")
    (scenes / "title.kvs").write_text('shot 5s "a white title card"\n', encoding="utf-8")
    (scenes / "walk.kvs").write_text(f'assets ada/film\nshot 4s "{walk}"\n', encoding="utf-8")
    path = tmp_path / "launch.kvs"
    path.write_text(FILM, encoding="utf-8")
    return str(path)


def enqueues(base: str) -> int:
    return int(stats(base)["requests"].get(ENQUEUE, 0))


def run(capsys: pytest.CaptureFixture[str], base: str, ledger: str, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["run", "--yes", "--api-url", base, "--ledger", ledger, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def colours(path: str) -> list[tuple[int, int, int]]:
    """The centre pixel of every frame, in order."""
    with av.open(path) as container:
        out = []
        for frame in container.decode(container.streams.video[0]):
            image = frame.to_image()
            out.append(image.getpixel((image.width // 2, image.height // 2)))
        return out


def near(pixel: tuple[int, ...], colour: tuple[int, ...]) -> bool:
    return all(abs(a - b) <= TOLERANCE for a, b in zip(pixel, colour, strict=True))


def clips(ledger: str) -> dict[str, str]:
    """Each scene's newest video, by the ledger (a scene's render is `launch.kvs [scene NAME]`
    on screen; the ledger keeps the script, so the scene is told by its request's prompt)."""
    words = {"dawn": "intro", "title": "title", "walk": "walk", "logo": "outro"}
    found: dict[str, str] = {}
    with Ledger(ledger) as book:
        for render in sorted(book.renders(), key=lambda r: r.id):  # oldest first: the newest wins
            prompt = str(render.body.get("prompt", ""))
            files = book.all_files(render.id)
            for word, name in words.items():
                if word in prompt and files:
                    found[name] = files[0].path
    return found


def test_a_film_renders_in_stages_chained_and_joined_and_a_rerun_pays_for_nothing(tmp_path, capsys, sandbox_with):
    path = film(tmp_path)
    ledger = str(tmp_path / "ledger.sqlite")
    joined = tmp_path / "renders" / "launch.mp4"
    with sandbox_with() as base:
        code, out, err = run(capsys, base, ledger, "--no-join", path)
        assert code == Exit.OK, err
        assert enqueues(base) == 4
        assert "stage 1: intro, title (side by side)" in out and "new spend: $" in out
        assert not joined.exists() and "not joined (--no-join)" in out

        shown = {name: colours(p) for name, p in clips(ledger).items()}
        assert set(shown) == {"intro", "title", "walk", "outro"}
        assert near(shown["intro"][-1], RED) and near(shown["walk"][-1], BLUE) and near(shown["outro"][-1], YELLOW)
        assert near(shown["walk"][0], RED), shown["walk"][:6]  # walk starts on intro's last frame
        assert near(shown["outro"][0], BLUE), shown["outro"][:6]  # outro on walk's
        assert not near(shown["title"][0], RED) and not near(shown["title"][0], BLUE)  # title starts on nothing
        start = Path(frame_path(clips(ledger)["intro"]))  # walk's start frame, kept beside intro's video
        first_png = start.read_bytes()

        code, out, err = run(capsys, base, ledger, path)  # again, joined this time
        assert code == Exit.OK, err
        assert enqueues(base) == 4  # every scene reused, the continued ones too
        assert start.read_bytes() == first_png  # the same video, the same frame, the same bytes
        assert probe(str(joined)).seconds == sum(SECONDS.values())
        assert f"renders/launch.mp4 ({sum(SECONDS.values())} s, remuxed" in out

        film(tmp_path, walk="a green walk through the town")  # the second scene of the chain
        code, out, err = run(capsys, base, ledger, path)
        assert code == Exit.OK, err
        assert enqueues(base) == 4 + 2  # walk, and outro (its start frame changed); intro and title reused
        shown = {name: colours(p) for name, p in clips(ledger).items()}
        assert near(shown["walk"][0], RED) and near(shown["walk"][-1], GREEN)
        assert near(shown["outro"][0], GREEN), shown["outro"][:6]
        assert probe(str(joined)).seconds == sum(SECONDS.values())


def test_a_failed_scene_holds_back_its_chain_and_a_rerun_finishes_the_film(tmp_path, capsys, sandbox_with):
    path = film(tmp_path)
    ledger = str(tmp_path / "ledger.sqlite")
    # one worker: intro (the film's first scene) is the first enqueue, and the only one to fail
    fault = FaultRule("fail=Injected fault: no credits", path="/api/ai/queue", method="POST", times=1)
    with sandbox_with(faults=(fault,)) as base:
        code, out, err = run(capsys, base, ledger, "--concurrency", "1", path)
        assert code == Exit.API_FAILURE, err
        assert enqueues(base) == 2  # intro (failed) and title; walk and outro never sent
        assert "scene walk: not sent: it continues `intro`, which failed" in out
        assert "scene outro: not sent: it continues `walk`, which was not rendered" in out
        assert re.search(r"3 of 4 scenes missing; spend so far \(new spend this run: \$\d+\.\d\d\)", out), out
        assert not (tmp_path / "renders" / "launch.mp4").exists()
        assert set(clips(ledger)) == {"title"}

        code, out, err = run(capsys, base, ledger, path)
        assert code == Exit.OK, err
        assert enqueues(base) == 2 + 3  # intro again, then walk and outro; title reused
        assert probe(str(tmp_path / "renders" / "launch.mp4")).seconds == sum(SECONDS.values())


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_film_killed_mid_chain_resumes_and_pays_for_no_scene_twice(tmp_path, request):
    """`klingspec run FILM` in a process of its own, SIGKILLed while the chain's second
    scene is at the API; the same command again reattaches to it and finishes the film."""
    base = request.getfixturevalue("sandbox_process")
    path = film(tmp_path)
    env = _env(tmp_path, new_key())
    ledger = tmp_path / "home" / "ledger.sqlite"

    def walk_state() -> str | None:
        rows = _ledger_rows(ledger, "SELECT state, body FROM renders") or []
        return next((state for state, body in rows if "walk" in body), None)

    first = _klingspec("run", "--api-url", base, "--yes", path, env=env)
    _wait_for(lambda: walk_state() == "submitted", timeout=30, what="the walk scene to be submitted")
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=10)
    assert first.returncode == -signal.SIGKILL
    assert enqueues(base) == 3  # intro, title, walk
    assert not (tmp_path / "renders" / "launch.mp4").exists()

    second = _klingspec("run", "--api-url", base, "--yes", path, env=env)
    out, err = second.communicate(timeout=60)
    assert second.returncode == Exit.OK, err.decode()
    assert enqueues(base) == 4  # only outro is new: walk was reattached to, not sent again
    assert probe(str(tmp_path / "renders" / "launch.mp4")).seconds == sum(SECONDS.values())


def test_consent_is_asked_once_for_the_whole_film_and_the_budget_caps_it(tmp_path, capsys, sandbox_with):
    path = film(tmp_path)
    ledger = str(tmp_path / "ledger.sqlite")
    with sandbox_with() as base:
        capsys.readouterr()
        code = main(["run", "--api-url", base, "--ledger", ledger, path])  # no terminal to ask, no --yes
        out, err = capsys.readouterr()
        assert code == Exit.BUDGET_REFUSED
        assert "nothing was sent: this film would spend up to $" in err and "new spend: $" in out
        code, _, err = run(capsys, base, ledger, "--budget", "1", path)  # the film costs more: refused
        assert code == Exit.BUDGET_REFUSED and "budget refused" in err
        assert enqueues(base) == 0 and stats(base)["requests"].get(PUT, 0) == 0


def test_without_pyav_a_chain_is_refused_before_anything_is_sent_and_nothing_is_joined(
    tmp_path, capsys, sandbox_with, monkeypatch
):
    path = film(tmp_path)
    alone = tmp_path / "alone.kvs"  # no chain: its scenes render without PyAV, and are not joined
    alone.write_text('scene intro "scenes/intro.kvs"\nscene title "scenes/title.kvs"\n', encoding="utf-8")
    ledger = str(tmp_path / "ledger.sqlite")
    with sandbox_with() as base:
        assert run(capsys, base, ledger, "--no-join", str(alone))[0] == Exit.OK
        monkeypatch.setitem(sys.modules, "av", None)  # `import av` fails, as without the video extra
        code, _, err = run(capsys, base, ledger, path)
        assert code == Exit.USAGE and "pip install 'klingspec[video]'" in err
        assert enqueues(base) == 2
        code, out, err = run(capsys, base, ledger, str(alone))
        assert code == Exit.OK, err
        assert "the film was not joined" in err and "pip install 'klingspec[video]'" in err
        assert "the clips are in renders" in err
        assert not (tmp_path / "renders" / "alone.mp4").exists() and enqueues(base) == 2


def test_a_continued_scene_whose_model_needs_a_start_frame_is_planned_and_run(tmp_path, capsys):
    """kling-video-v2-6-pro-image-to-video refuses a request without a start frame: the scene
    is priced with a stand-in frame, then sent with the real one."""
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    (scenes / "intro.kvs").write_text('shot 5s "a red dawn over the hills"\n', encoding="utf-8")
    (scenes / "walk.kvs").write_text(
        'model kling-video-v2-6-pro-image-to-video\nassets ada/film\nshot 5s "a blue walk"\n', encoding="utf-8"
    )
    path = tmp_path / "film.kvs"
    path.write_text('scene intro "scenes/intro.kvs"\nscene walk "scenes/walk.kvs" continues intro\n', encoding="utf-8")
    capsys.readouterr()
    assert main(["plan", str(path)]) == Exit.OK, capsys.readouterr().err
    assert main(["run", "--sandbox", "--yes", "--no-join", str(path)]) == Exit.OK, capsys.readouterr().err
    with Ledger() as ledger:
        models = sorted(r.model for r in ledger.renders())
    assert models == ["kling-video-o3-pro-reference-to-video", "kling-video-v2-6-pro-image-to-video"]


def test_the_budget_counts_a_continued_scene_in_full_even_when_its_script_was_rendered(tmp_path, capsys):
    """The continued scene shares its script with the scene it continues: looked up in the
    ledger before its frame is added, it would count for nothing against the budget."""
    (tmp_path / "walk.kvs").write_text('assets ada/film\nshot 5s "a blue walk"\n', encoding="utf-8")
    path = tmp_path / "film.kvs"
    path.write_text('scene one "walk.kvs"\nscene two "walk.kvs" continues one\n', encoding="utf-8")
    capsys.readouterr()
    assert main(["run", "--sandbox", "--budget", "1.5", str(path)]) == Exit.BUDGET_REFUSED
    assert "budget refused" in capsys.readouterr().err
    with Ledger() as ledger:
        assert ledger.renders() == []  # nothing sent


def plan_of_film(capsys: pytest.CaptureFixture[str], base: str, ledger: str, path: str) -> dict[str, dict[str, Any]]:
    capsys.readouterr()
    code = main(["plan", "--api-url", base, "--ledger", ledger, "--format", "json", path])
    out, err = capsys.readouterr()
    assert code == Exit.OK, err
    planned = json.loads(out)
    return {s["name"]: s for s in planned["scenes"]} | {"": planned}


def test_plan_says_before_a_run_which_scenes_an_edit_renders_again(tmp_path, capsys, sandbox_with):
    path = film(tmp_path)
    ledger = str(tmp_path / "ledger.sqlite")
    with sandbox_with() as base:
        assert run(capsys, base, ledger, "--no-join", path)[0] == Exit.OK
        planned = plan_of_film(capsys, base, ledger, path)  # every start frame is known now
        assert {n: planned[n]["standing"] for n in SECONDS} == dict.fromkeys(SECONDS, "reuse")
        assert planned[""]["new_usd"] == 0 == planned[""]["max_new_usd"]

        (tmp_path / "scenes" / "title.kvs").write_text('shot 5s "a black title card"\n', encoding="utf-8")
        planned = plan_of_film(capsys, base, ledger, path)  # title is in no chain: only it is new
        assert {n: planned[n]["standing"] for n in SECONDS} == {
            "intro": "reuse",
            "title": "new",
            "walk": "reuse",
            "outro": "reuse",
        }
        assert planned[""]["new_usd"] == planned["title"]["cost_usd"]
        code, _, _ = run(capsys, base, ledger, "--no-join", path)
        assert code == Exit.OK and enqueues(base) == 4 + 1  # as planned

        film(tmp_path, walk="a green walk through the town")  # walk, and outro after it
        planned = plan_of_film(capsys, base, ledger, path)
        stands = {n: planned[n]["standing"] for n in SECONDS}
        # film() wrote title's first text back: rendered in the first run, so reused
        assert stands == {"intro": "reuse", "title": "reuse", "walk": "new", "outro": "after"}, stands
        assert planned[""]["new_usd"] == planned["walk"]["cost_usd"] + planned["outro"]["cost_usd"]


def test_a_finished_film_run_again_asks_for_nothing_and_sends_nothing(tmp_path, capsys, sandbox_with):
    path = film(tmp_path)
    ledger = str(tmp_path / "ledger.sqlite")
    with sandbox_with() as base:
        assert run(capsys, base, ledger, path)[0] == Exit.OK
        capsys.readouterr()
        code = main(["run", "--api-url", base, "--ledger", ledger, path])  # no terminal, no --yes: nothing to pay
        out, err = capsys.readouterr()
        assert code == Exit.OK, err
        assert "new spend: $0.00" in out and enqueues(base) == 4
        assert probe(str(tmp_path / "renders" / "launch.mp4")).seconds == sum(SECONDS.values())


def test_a_start_frame_is_made_once_per_video_so_a_new_decoder_pays_for_nothing(
    tmp_path, capsys, sandbox_with, monkeypatch
):
    """An upgrade of FFmpeg, zlib or Pillow may turn the same video into other PNG bytes, so
    another upload URL and another request for every scene chained after it. The PNG the
    ledger recorded is used while a copy of it is on disk; only a lost one is made anew."""
    from klingspec.run import startframes

    path = film(tmp_path)
    ledger = str(tmp_path / "ledger.sqlite")
    with sandbox_with() as base:
        assert run(capsys, base, ledger, "--no-join", path)[0] == Exit.OK
        made = startframes.last_frame_png

        def upgraded(video: str) -> bytes:  # the same picture, other bytes: as another zlib writes it
            from PIL import Image

            image = Image.open(io.BytesIO(made(video)))
            data = io.BytesIO()
            image.save(data, "PNG", compress_level=1)
            return data.getvalue()

        monkeypatch.setattr(startframes, "last_frame_png", upgraded)
        assert run(capsys, base, ledger, "--no-join", path)[0] == Exit.OK
        assert enqueues(base) == 4  # every scene reused: the recorded frames were used as they are

        lost = Path(frame_path(clips(ledger)["walk"]))  # outro's start frame is lost, both copies of it
        (Path(ledger + ".frames") / f"{hashlib.sha256(lost.read_bytes()).hexdigest()}.png").unlink()
        lost.unlink()
        planned = plan_of_film(capsys, base, ledger, path)
        assert planned["outro"]["standing"] == "new"  # made anew by the new decoder: another request
        assert planned["walk"]["standing"] == "reuse"
        assert run(capsys, base, ledger, "--no-join", path)[0] == Exit.OK
        assert enqueues(base) == 5
        assert run(capsys, base, ledger, "--no-join", path)[0] == Exit.OK
        assert enqueues(base) == 5  # and the new frame is the one kept from now on


def test_a_dry_run_shows_the_film_and_every_request_known_now_and_sends_nothing(tmp_path, capsys, sandbox_with):
    path = film(tmp_path)
    ledger = str(tmp_path / "ledger.sqlite")
    with sandbox_with() as base:
        code, out, err = run(capsys, base, ledger, "--dry-run", path)
        assert code == Exit.OK and "dry run: nothing was sent" in err
        assert "stage 1: intro, title (side by side)" in out
        assert re.search(r"^# \S*scenes/intro\.kvs \[scene intro\]  sha256:\w+\nPOST /ai/queue$", out, re.M), out
        assert "# scene walk: starts on the last frame of `intro`" in out
        assert "# scene outro: starts on the last frame of `walk`" in out

        code, out, _ = run(capsys, base, ledger, "--dry-run", "--format", "json", path)
        planned = json.loads(out)
        assert code == Exit.OK and planned["dry_run"] is True
        assert [r["scene"] for r in planned["requests"]] == ["intro", "title"]
        assert planned["requests"][0]["body"]["prompt"] == "a red dawn over the hills"
        assert planned["new_usd"] == planned["total_usd"]  # walk and outro counted in full
        assert enqueues(base) == 0 and stats(base)["requests"].get(PUT, 0) == 0

        assert run(capsys, base, ledger, "--no-join", path)[0] == Exit.OK
        code, out, _ = run(capsys, base, ledger, "--dry-run", "--format", "json", path)
        planned = json.loads(out)
        assert [(r["scene"], r["standing"]) for r in planned["requests"]] == [
            (name, "reuse") for name in ("intro", "title", "walk", "outro")
        ]
        walk = planned["requests"][2]["body"]
        assert re.search(r"/ada/film/file/main/klingspec/[0-9a-f]{64}\.png\"", json.dumps(walk)), walk  # its frame
        assert planned["new_usd"] == 0 and enqueues(base) == 4


def test_format_json_prints_one_object_with_every_scene_and_the_joined_film(tmp_path, capsys, sandbox_with):
    path = film(tmp_path)
    ledger = str(tmp_path / "ledger.sqlite")
    fault = FaultRule("fail=Injected fault: no credits", path="/api/ai/queue", method="POST", times=1)
    with sandbox_with(faults=(fault,)) as base:
        code, out, _ = run(capsys, base, ledger, "--concurrency", "1", "--format", "json", path)
        result = json.loads(out)  # nothing else on stdout
        assert code == Exit.API_FAILURE
        states = {s["scene"]: s["state"] for s in result["scenes"]}
        assert states == {"intro": "failed", "title": "done", "walk": "not sent", "outro": "not sent"}
        assert result["scenes"][2]["why"] == "it continues `intro`, which failed"
        assert result["joined"] is None and result["not_joined"] == "3 of 4 scenes missing"

        code, out, _ = run(capsys, base, ledger, "--format", "json", path)
        result = json.loads(out)
        assert code == Exit.OK
        assert [s["state"] for s in result["scenes"]] == ["done"] * 4
        assert [s["reused"] for s in result["scenes"]] == [False, True, False, False]
        assert result["joined"]["seconds"] == sum(SECONDS.values()) and result["not_joined"] is None
        assert Path(result["joined"]["path"]) == tmp_path / "renders" / "launch.mp4"
        assert all(Path(s["files"][0]["path"]).is_file() for s in result["scenes"])


def test_take_n_starts_the_next_scene_on_that_take_and_puts_that_take_in_the_film(tmp_path, capsys, sandbox_with):
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    (scenes / "intro.kvs").write_text('generations 2\nshot 3s "a red dawn over the hills"\n', encoding="utf-8")
    (scenes / "walk.kvs").write_text('assets ada/film\nshot 4s "a blue walk"\n', encoding="utf-8")
    path = tmp_path / "two.kvs"
    path.write_text('scene intro "scenes/intro.kvs"\nscene walk "scenes/walk.kvs" continues intro take 2\n', "utf-8")
    ledger = str(tmp_path / "ledger.sqlite")
    with sandbox_with() as base:
        code, out, err = run(capsys, base, ledger, "--format", "json", str(path))
        assert code == Exit.OK, err
        result = json.loads(out)
        intro, walk = result["scenes"]
        assert intro["take"] == 2 and len(intro["files"]) == 2 and walk["take"] == 1
        first, second = (f["path"] for f in intro["files"])
        assert Path(frame_path(second)).is_file() and not Path(frame_path(first)).exists()  # take 2's frame
        assert result["joined"]["seconds"] == 3 + 4
        planned = plan_of_film(capsys, base, ledger, str(path))
        assert planned["walk"]["standing"] == "reuse"  # the plan reads take 2 as the run did


def test_a_chain_goes_on_while_an_unrelated_longer_scene_still_renders(tmp_path, capsys, sandbox_with):
    """No stages: walk starts the moment intro is done, not when title (a longer video,
    which the sandbox renders for longer) is done too; outro as soon as walk is."""
    path = film(tmp_path)
    (tmp_path / "scenes" / "title.kvs").write_text('shot 15s "a white title card"\n', encoding="utf-8")
    ledger = str(tmp_path / "ledger.sqlite")
    # title: 0.1 + 15 x 0.4 = 6.1 s at the sandbox; intro, walk, outro: 1.3 to 1.7 s each
    with sandbox_with(processing_seconds=0.1, processing_per_second=0.4) as base:
        code, _, err = run(capsys, base, ledger, "--no-join", "--concurrency", "4", path)
        assert code == Exit.OK, err
    with sqlite3.connect(ledger) as db:
        rows = db.execute("SELECT body, created_at, updated_at FROM renders").fetchall()
    made = {name: (created, done) for body, created, done in rows for name in SECONDS if _word(name) in body}
    assert made["walk"][0] < made["title"][1] and made["outro"][0] < made["title"][1], made
    assert made["intro"][1] <= made["walk"][0] and made["walk"][1] <= made["outro"][0]  # each after its own


def _word(scene: str) -> str:
    return {"intro": "dawn", "title": "title card", "walk": "walk", "outro": "logo"}[scene]


def test_a_scene_continuing_a_scene_listed_twice_is_planned_with_its_frame(tmp_path, capsys, sandbox_with):
    """`a` and `b` are the same request, rendered once; `c` continues `b`: once the film is
    done, a run again has nothing to ask for."""
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    (scenes / "x.kvs").write_text('shot 3s "a red dawn over the hills"\n', encoding="utf-8")
    (scenes / "y.kvs").write_text('assets ada/film\nshot 3s "a blue walk"\n', encoding="utf-8")
    path = tmp_path / "twice.kvs"
    path.write_text(
        'scene a "scenes/x.kvs"\nscene b "scenes/x.kvs"\nscene c "scenes/y.kvs" continues b\n', encoding="utf-8"
    )
    ledger = str(tmp_path / "ledger.sqlite")
    with sandbox_with() as base:
        assert run(capsys, base, ledger, str(path))[0] == Exit.OK
        assert enqueues(base) == 2  # x once, and c
        planned = plan_of_film(capsys, base, ledger, str(path))
        assert [planned[n]["standing"] for n in "abc"] == ["reuse", "duplicate", "reuse"]
        capsys.readouterr()
        assert main(["run", "--api-url", base, "--ledger", ledger, str(path)]) == Exit.OK  # no --yes: nothing to pay
        assert enqueues(base) == 2


def test_a_start_frame_that_cannot_be_kept_holds_its_scene_back_and_says_why(
    tmp_path, capsys, sandbox_with, monkeypatch
):
    from klingspec.run import startframes

    path = film(tmp_path)
    ledger = str(tmp_path / "ledger.sqlite")

    def full(out: str, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    with sandbox_with() as base:
        with monkeypatch.context() as disk:
            disk.setattr(startframes, "_write", full)
            code, out, err = run(capsys, base, ledger, "--no-join", path)
            assert code == Exit.API_FAILURE, err
            assert "internal error" not in err and "Traceback" not in err
            assert "scene walk: not sent: the last frame of `intro` could not be read: the last frame of" in out
            assert "No space left on device" in out
            assert "scene outro: not sent: it continues `walk`, which was not rendered" in out
            assert enqueues(base) == 2  # intro and title: spend so far reported, nothing after
            planned = plan_of_film(capsys, base, ledger, path)  # plan: counted in full, with why
            assert planned["walk"]["standing"] == "after" and "No space left" in planned["walk"]["unresolved"]
        assert run(capsys, base, ledger, path)[0] == Exit.OK
        assert enqueues(base) == 4


def test_a_lost_frame_is_taken_back_from_the_ledgers_copy_not_decoded_again(
    tmp_path, capsys, sandbox_with, monkeypatch
):
    from klingspec.run import startframes

    path = film(tmp_path)
    ledger = str(tmp_path / "ledger.sqlite")
    with sandbox_with() as base:
        assert run(capsys, base, ledger, "--no-join", path)[0] == Exit.OK
        lost = [Path(frame_path(clips(ledger)[name])) for name in ("intro", "walk")]
        kept = [p.read_bytes() for p in lost]
        for p in lost:
            p.unlink()

        def never(video: str) -> bytes:
            raise AssertionError("decoded again")

        monkeypatch.setattr(startframes, "last_frame_png", never)
        assert run(capsys, base, ledger, "--no-join", path)[0] == Exit.OK
        assert enqueues(base) == 4 and [p.read_bytes() for p in lost] == kept


def test_a_scene_that_does_not_compile_with_its_frame_stops_the_film_before_anything_is_paid(
    tmp_path, capsys, sandbox_with
):
    """The sandbox's frames are 96x54 px; a project that makes small images an error makes
    walk fail to compile with intro's frame: found before paying for title."""
    path = film(tmp_path)
    ledger = str(tmp_path / "ledger.sqlite")
    with sandbox_with() as base:
        assert run(capsys, base, ledger, "--no-join", str(tmp_path / "scenes" / "intro.kvs"))[0] == Exit.OK
        (tmp_path / "klingspec.toml").write_text('[severity]\nKVS-image-small = "error"\n', encoding="utf-8")
        planned = plan_of_film(capsys, base, ledger, path)
        assert planned["walk"]["standing"] == "after"
        assert "does not compile with its start frame" in planned["walk"]["unresolved"]
        for extra in ((), ("--dry-run",)):
            code, out, err = run(capsys, base, ledger, *extra, path)
            assert code == Exit.SCRIPT_ERRORS and "KVS-image-small" in err, (extra, out, err)
            assert "scene walk: it does not compile with its start frame" in err and "nothing was sent" in err
        assert enqueues(base) == 1  # intro alone, before; title was not sent


def test_a_dry_run_refuses_what_the_run_refuses(tmp_path, capsys, sandbox_with, monkeypatch):
    path = film(tmp_path)
    monkeypatch.setitem(sys.modules, "av", None)
    with sandbox_with() as base:
        code, _, err = run(capsys, base, str(tmp_path / "ledger.sqlite"), "--dry-run", path)
        assert code == Exit.USAGE and "pip install 'klingspec[video]'" in err
