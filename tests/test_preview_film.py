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
    prompt = blocks[2].one("p", "prompt")
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
    srcs = []
    for block in blocks:  # every scene's take, the scene written in place too
        [take] = block.all("li", "take")
        srcs.append((out.parent / take.one("video").attrs["src"]).resolve())
        assert srcs[-1].is_file()
    assert len(set(srcs)) == 3


def test_a_scene_shows_the_takes_of_the_request_the_film_sends_not_its_scripts_newest(
    film, tmp_path, capsys, monkeypatch
):
    """walk.kvs rendered on its own (no start frame) is another request than the film's
    walk: the film's page shows the film's take of it, and none before the film is run."""
    pytest.importorskip("av", reason="reading start frames needs PyAV (the video extra)")
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["run", "--sandbox", "--yes", str(tmp_path / "walk.kvs")]) == Exit.OK
    assert main(["run", "--sandbox", "--yes", str(tmp_path / "intro.kvs")]) == Exit.OK
    out = tmp_path / "film.html"

    def takes_of(html) -> dict[str, list[str]]:
        blocks = html.by_id("scenes").all("li", "scene")
        return {b.attrs["data-name"]: [t.one("video").attrs["src"] for t in b.all("li", "take")] for b in blocks}

    shown = takes_of(page(capsys, film, out)[1])
    assert len(shown["intro"]) == 1 and shown["walk"] == [] and shown["outro"] == []
    alone = shown["intro"]
    [walk_alone] = (tmp_path / "renders").glob("walk-*.mp4")
    assert main(["run", "--sandbox", "--yes", film]) == Exit.OK, capsys.readouterr().err
    shown = takes_of(page(capsys, film, out)[1])
    assert shown["intro"] == alone and len(shown["walk"]) == 1 and len(shown["outro"]) == 1
    [walk_in_film] = set((tmp_path / "renders").glob("walk-*.mp4")) - {walk_alone}
    assert (tmp_path / shown["walk"][0]).resolve() == walk_in_film.resolve()


def test_a_scenes_prompt_shows_each_mention_with_its_picture_and_what_it_is_sent_as(tmp_path, capsys):
    write(tmp_path, 'image cafe = "https://assets.example.com/cafe.jpg"\nshot a 5s "morning in @cafe"\n', "cafe.kvs")
    film = write(tmp_path, 'scene open "cafe.kvs"\nscene close {\n  shot z 3s "@nobody waves"\n}\n', "film.kvs")
    code, html = page(capsys, film, tmp_path / "film.html")
    blocks = html.by_id("scenes").all("li", "scene")
    [mention] = blocks[0].one("p", "prompt").all("span", "mention")
    assert mention.attrs["data-ref"] == "@Image1" and mention.one("span", "written").text() == "@cafe"
    assert mention.one("img").attrs["src"] == "https://assets.example.com/cafe.jpg"
    assert blocks[0].one("p", "prompt").text().startswith("morning in ")
    [unbound] = blocks[1].one("p", "prompt").all("span", "mention")  # checked: an error, still shown
    assert "unbound" in unbound.attrs["class"] and unbound.one("span", "ref").text() == "not bound"
