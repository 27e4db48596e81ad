"""`preview FILM` (klingspec/preview/filmboard.py): one timeline of scenes, each as wide as
it is long, with its cost and the scene it continues, its shots' prompts as sent
(escaped); after `run FILM` in the sandbox, the joined film and each scene's takes."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from helpers import write
from test_preview import parse

from klingspec import pricing
from klingspec.cli import main
from klingspec.cli.report import Exit
from klingspec.pipeline import run_pipeline

FILM = (
    'scene intro "intro.kvs"\n'
    'scene walk "walk.kvs" continues intro\n'
    "scene outro continues walk {\n"
    '  shot logo 4s "the <b>logo</b> on black"\n'
    "}\n"
)


@pytest.fixture
def film(tmp_path: Path) -> str:
    write(tmp_path, '[assets]\nrepo = "ada/film"\n', "klingspec.toml")
    write(tmp_path, 'shot a 3s "a red dawn over the hills"\n', "intro.kvs")
    write(tmp_path, 'shot b 5s "a blue walk through the town"\n', "walk.kvs")
    return write(tmp_path, FILM, "launch.kvs")


def page(capsys, film: str, out: Path):
    capsys.readouterr()
    code = main(["preview", film, "-o", str(out)])
    capsys.readouterr()
    return code, parse(out.read_text(encoding="utf-8"))


def test_a_film_is_one_timeline_of_scenes_as_wide_as_they_are_long(film, tmp_path, capsys):
    code, html = page(capsys, film, tmp_path / "film.html")
    assert code == Exit.OK
    blocks = html.by_id("scenes").all("li", "scene")
    assert [b.attrs["data-name"] for b in blocks] == ["intro", "walk", "outro"]
    assert [b.attrs["data-seconds"] for b in blocks] == ["3", "5", "4"]
    widths = [Decimal(b.attrs["style"].split("width:")[1].strip().rstrip("%")) for b in blocks]
    assert [round(w, 2) for w in widths] == [round(Decimal(s) * 100 / 12, 2) for s in (3, 5, 4)]
    assert [b.attrs.get("data-continues") for b in blocks] == [None, "intro", "walk"]
    scenes = run_pipeline(film).film.scenes
    assert [b.one("strong", "cost").text() for b in blocks] == [
        pricing.usd_quote(s.result.estimate.quote) for s in scenes
    ]
    assert html.by_id("total-seconds").text() == "12 s"
    assert html.by_id("total-cost").text() == pricing.usd_quote(pricing.add(s.result.estimate.quote for s in scenes))
    prompt = blocks[2].one("span", "prompt")
    assert prompt.text() == "the <b>logo</b> on black" and not prompt.all("b")  # text, not markup
    assert not html.all(id="film")  # not run yet


def test_after_a_run_the_joined_film_and_each_scenes_takes_play(film, tmp_path, capsys, monkeypatch):
    pytest.importorskip("av", reason="joining needs PyAV (the video extra)")
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["run", "--sandbox", "--yes", film]) == Exit.OK, capsys.readouterr().err
    out = tmp_path / "pages" / "film.html"
    out.parent.mkdir()
    code, html = page(capsys, film, out)
    assert code == Exit.OK
    video = html.by_id("film").one("video")
    joined = (out.parent / video.attrs["src"]).resolve()
    assert joined == (tmp_path / "renders" / "launch.mp4").resolve() and joined.is_file()
    blocks = html.by_id("scenes").all("li", "scene")
    for block in blocks[:2]:  # the scene scripts' takes (a scene written in place is the film's)
        [take] = block.all("li", "take")
        assert (out.parent / take.one("video").attrs["src"]).resolve().is_file()
