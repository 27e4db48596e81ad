"""`plan FILM` (klingspec/cli/filmplans.py): every scene's seconds and cost, the stages in
which scenes render (a scene after the chain it continues), the total, and the new spend
by the real ledger after a scene was rendered in the sandbox."""

from __future__ import annotations

import json

import pytest
from helpers import write

from klingspec import pricing
from klingspec.cli import main
from klingspec.cli.report import Exit
from klingspec.pipeline import run_pipeline

FILM = (
    'scene intro "intro.kvs"\n'
    'scene title "title.kvs"\n'
    'scene walk "walk.kvs" continues intro\n'
    "scene outro continues walk {\n"
    '  shot logo 4s "the logo on black"\n'
    "}\n"
)


@pytest.fixture
def film(tmp_path) -> str:
    write(tmp_path, 'shot a 5s "a hero walks to a door"\n', "intro.kvs")
    write(tmp_path, 'shot t 3s "the title on red"\n', "title.kvs")
    write(tmp_path, 'shot b 6s "the hero walks in"\n', "walk.kvs")
    write(tmp_path, '[assets]\nrepo = "ada/film"\n', "klingspec.toml")  # where start frames are uploaded
    return write(tmp_path, FILM, "film.kvs")


def plan_json(capsys, *argv: str) -> dict:
    capsys.readouterr()
    code = main(["plan", *argv, "--format", "json"])
    out, err = capsys.readouterr()
    assert code == Exit.OK, err
    return json.loads(out)


def test_every_scene_its_stage_and_the_films_total(film, capsys):
    planned = plan_json(capsys, film)
    scenes = {s["name"]: s for s in planned["scenes"]}
    assert planned["stages"] == [["intro", "title"], ["walk"], ["outro"]]
    assert scenes["outro"]["waits_for"] == ["walk", "intro"] and scenes["walk"]["continues"] == "intro"
    assert planned["seconds"] == 5 + 3 + 6 + 4
    results = run_pipeline(film).film.scenes
    expected = pricing.add(s.result.estimate.quote for s in results)
    assert planned["total_usd"] == pricing.usd_number(expected.amount)
    assert planned["new_usd"] == planned["total_usd"]  # nothing rendered yet
    assert [scenes[n]["standing"] for n in ("intro", "title", "walk", "outro")] == ["new", "new", "after", "after"]
    assert scenes["outro"]["path"] == film and scenes["outro"]["line"] == 4  # written in place


def test_a_scene_rendered_before_is_reused_and_the_one_it_starts_is_planned_with_its_frame(film, tmp_path, capsys):
    intro = str(tmp_path / "intro.kvs")
    assert main(["run", "--sandbox", "--yes", intro]) == Exit.OK
    planned = plan_json(capsys, film, "--sandbox")
    scenes = {s["name"]: s for s in planned["scenes"]}
    assert scenes["intro"]["standing"] == "reuse" and scenes["intro"]["new_usd"] == 0
    # intro's video is on disk: walk's start frame is known, so walk is a request like any other
    assert scenes["walk"]["standing"] == "new" and scenes["walk"]["request_hash"] is not None
    assert scenes["walk"]["new_usd"] == scenes["walk"]["cost_usd"]
    # outro continues walk, which is not rendered yet: counted in full, its request unknown
    assert scenes["outro"]["standing"] == "after" and scenes["outro"]["request_hash"] is None
    assert planned["new_usd"] == pytest.approx(planned["total_usd"] - scenes["intro"]["cost_usd"])


def test_the_text_shows_the_stages_and_totals(film, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    capsys.readouterr()
    assert main(["plan", film]) == Exit.OK
    out = capsys.readouterr().out
    assert "a film of 4 scenes, running 18 s" in out
    assert "stage 1: intro, title (side by side)" in out and "stage 3: outro" in out
    assert "walk ← intro" in out
    total = pricing.add(s.result.estimate.quote for s in run_pipeline(film).film.scenes)
    assert f"total: {pricing.usd_quote(total)}" in out


def test_a_film_with_errors_is_not_planned(tmp_path, capsys):
    film = write(tmp_path, 'scene a "missing.kvs"\n', "film.kvs")
    assert main(["plan", film]) == Exit.SCRIPT_ERRORS
    assert "KVS-file-not-found" in capsys.readouterr().err


def test_a_film_is_planned_alone(film, tmp_path, capsys):
    other = write(tmp_path, 'shot z 5s "x"\n', "other.kvs")
    assert main(["plan", film, other]) == Exit.USAGE
    assert main(["plan", film, "-o", str(tmp_path / "p.json")]) == Exit.USAGE


@pytest.mark.parametrize("kind", ["example", "twice"])
def test_the_total_watch_says_is_the_plans(kind, film, tmp_path, capsys):
    """`filmplans.film_total` (no input file hashed) counts as `plan FILM` does: a scene
    listed twice once, a continued scene in full."""
    from pathlib import Path

    from klingspec.cli.filmplans import film_total

    if kind == "example":
        path = str(Path(__file__).parent.parent / "examples" / "launch.kvs")
    else:
        path = write(tmp_path, 'scene a "intro.kvs"\nscene b "intro.kvs"\nscene c "walk.kvs" continues b\n', "two.kvs")
    planned = plan_json(capsys, path)
    total = film_total(run_pipeline(path).film)
    assert total is not None and pricing.usd_number(total.amount) == planned["total_usd"]
    assert pricing.usd_number(total.ceiling) == planned["max_total_usd"]
