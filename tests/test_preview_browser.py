"""The storyboard and contact sheet as a reader sees them: in headless Chromium
(tests/browser.py), not parsed text.

What html.parser cannot tell: that the blocks are laid out as wide as their seconds, that a
prompt with markup runs no script, that the page loads nothing from the network, that a
take's `<video>` plays the downloaded file and lasts as long as its render, and what the
page looks like (screenshots of two examples against checked-in images; the teaser's is the
README's picture, `docs/images/storyboard.png`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from browser import assert_looks_like, launched, tab
from helpers import write
from test_preview import ROOT

from klingspec import pricing
from klingspec.cli import main
from klingspec.cli.report import Exit
from klingspec.pipeline import run_pipeline

EXAMPLES = sorted((ROOT / "examples").glob("*.kvs"))
SCREENSHOTS = {
    "teaser": ROOT / "docs" / "images" / "storyboard.png",
    "dialogue": ROOT / "tests" / "cases" / "preview" / "dialogue.png",
}


@pytest.fixture(scope="module")
def browser():
    with launched() as running:
        yield running


@pytest.fixture
def page(browser):
    with tab(browser) as opened:
        yield opened


def written(capsys, script: str | Path, output: Path, *argv: str) -> int:
    capsys.readouterr()
    code = main(["preview", str(script), "-o", str(output), *argv])
    capsys.readouterr()
    return code


SHOTS_JS = """() => [...document.querySelectorAll('#track > li.shot')].map(e => ({
    name: e.querySelector('h3.name').innerText,
    seconds: Number(e.dataset.seconds),
    cost: e.querySelector('.cost').innerText,
    width: e.getBoundingClientRect().width,
    top: e.getBoundingClientRect().top,
}))"""


SCENES_JS = """() => [...document.querySelectorAll('#scenes > li.scene')].map(e => ({
    name: e.querySelector('h3.name').innerText,
    seconds: Number(e.dataset.seconds),
    cost: e.querySelector('.cost').innerText,
    shots: [...e.querySelectorAll('.shots > li > strong')].map(s => s.innerText),
    width: e.getBoundingClientRect().width,
    top: e.getBoundingClientRect().top,
}))"""


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_laid_out_one_block_per_shot_as_wide_as_it_is_long(script, page, tmp_path, capsys):
    result = run_pipeline(str(script))
    out = tmp_path / "storyboard.html"
    assert written(capsys, script, out) == Exit.OK
    page.open(out)
    if result.film is not None:
        _film_is_laid_out_one_block_per_scene_as_wide_as_it_is_long(result, page)
        return
    blocks = page.js(SHOTS_JS)
    figures = result.estimate.shots
    assert [b["name"] for b in blocks] == [f.name for f in figures]
    assert [b["seconds"] for b in blocks] == [f.seconds for f in figures]
    assert [b["cost"] for b in blocks] == [pricing.usd(f.cost) for f in figures]
    assert len({round(b["top"]) for b in blocks}) <= 1, "the shots stand on one row"
    if blocks:
        total_width = sum(b["width"] for b in blocks)
        total_seconds = sum(b["seconds"] for b in blocks)
        for block in blocks:
            assert block["width"] / total_width == pytest.approx(block["seconds"] / total_seconds, abs=0.005)
    assert page.js("() => document.getElementById('total-cost').innerText") == pricing.usd_quote(result.estimate.quote)
    no_scroll = "() => [...document.querySelectorAll('.reference, .frame, .shot')].every(e => e.scrollWidth <= e.clientWidth + 1)"
    assert page.js(no_scroll), "no box's contents spill out of it"
    fits = "() => { const t = document.querySelector('.timeline'); return t.scrollWidth <= t.clientWidth + 1; }"
    assert page.js(fits), "a timeline of 15 s at most fits a 1280-pixel window without scrolling"
    assert all(url.startswith(("http://", "https://")) for url in page.refused), page.refused


def _film_is_laid_out_one_block_per_scene_as_wide_as_it_is_long(result, page) -> None:
    """A film's page (examples/launch.kvs): its scenes on one row, each as wide as it is
    long, with its cost and its shots; the total; nothing spilling, nothing scrolling."""
    scenes = result.film.scenes
    blocks = page.js(SCENES_JS)
    assert [b["name"] for b in blocks] == [s.name for s in scenes]
    assert [b["seconds"] for b in blocks] == [s.result.bound.total_seconds for s in scenes]
    assert [b["cost"] for b in blocks] == [pricing.usd_quote(s.result.estimate.quote) for s in scenes]
    assert [b["shots"] for b in blocks] == [[f.name for f in s.result.estimate.shots] for s in scenes]
    assert len({round(b["top"]) for b in blocks}) == 1, "the scenes stand on one row"
    total_width = sum(b["width"] for b in blocks)
    total_seconds = sum(b["seconds"] for b in blocks)
    for block in blocks:
        assert block["width"] / total_width == pytest.approx(block["seconds"] / total_seconds, abs=0.005)
    quotes = [s.result.estimate.quote for s in scenes]
    assert page.js("() => document.getElementById('total-cost').innerText") == pricing.usd_quote(pricing.add(quotes))
    no_spill = "() => [...document.querySelectorAll('.scene')].every(e => e.scrollWidth <= e.clientWidth + 1)"
    assert page.js(no_spill), "no scene's contents spill out of it"
    fits = "() => { const t = document.getElementById('scenes'); return t.scrollWidth <= t.clientWidth + 1; }"
    assert page.js(fits), "the film's timeline fits a 1280-pixel window without scrolling"
    # the only network a film's page asks for: the remote pictures its prompts' @names show
    chips = page.js("() => [...document.querySelectorAll('#scenes .mention img')].map(i => i.getAttribute('src'))")
    assert chips and all(src.startswith(("http://", "https://")) for src in chips)
    assert set(page.refused) <= set(chips), page.refused


def test_the_page_needs_no_network_but_the_remote_thumbnails(page, tmp_path, capsys):
    text = 'assets studio/assets\nimage cafe = "cafe.png"\nshot a 5s "@cafe at dawn"\n'
    script = write(tmp_path, text, "local.kvs")
    from PIL import Image

    Image.new("RGB", (640, 360), (200, 80, 40)).save(tmp_path / "cafe.png")
    out = tmp_path / "local.html"
    assert written(capsys, script, out) == Exit.OK
    page.open(out)
    assert page.refused == []
    loaded = "() => { const i = document.querySelector('.mention img'); return i.complete && i.naturalWidth > 0; }"
    page.page.wait_for_function(loaded, timeout=10_000)  # lazy: decoded when laid out
    size = page.js(
        "() => { const i = document.querySelector('.mention img'); return [i.complete, i.naturalWidth, i.naturalHeight]; }"
    )
    assert size[0] and size[1] > 0 and size[1] / size[2] == pytest.approx(640 / 360, rel=0.02), size


def test_a_prompt_with_markup_is_text_and_runs_nothing(page, tmp_path, capsys):
    hostile = "<script>window.ran = 1</script><img src=x onerror=window.ran=2> & <b>bold</b>"
    script = write(tmp_path, f'shot a 5s "{hostile}"\n')
    out = tmp_path / "hostile.html"
    assert written(capsys, script, out) == Exit.OK
    page.open(out)
    assert page.js("() => window.ran === undefined")
    assert page.js("() => document.querySelector('#track .prompt').innerText") == hostile
    assert page.js("() => document.querySelectorAll('#track .prompt *').length") == 0
    assert page.js("() => document.scripts.length") == 0


def test_a_take_plays_the_downloaded_video_for_as_long_as_it_was_rendered(page, tmp_path, capsys):
    script = write(tmp_path, 'generations 2\nshot a 2s "a door"\nshot b 3s "the door opens"\n', "scene.kvs")
    capsys.readouterr()
    assert main(["run", "--sandbox", "--yes", script]) == Exit.OK
    out = tmp_path / "pages" / "sheet.html"
    out.parent.mkdir()
    assert written(capsys, script, out) == Exit.OK
    page.open(out)
    page.page.wait_for_function(
        "() => [...document.querySelectorAll('video')].every(v => v.readyState >= 1 || v.error)", timeout=20_000
    )
    videos = page.js(
        """() => [...document.querySelectorAll('li.take')].map(t => {
            const v = t.querySelector('video');
            return {seconds: Number(t.dataset.seconds), ready: v.readyState, duration: v.duration,
                    error: v.error && v.error.message, width: v.videoWidth, src: v.currentSrc};
        })"""
    )
    assert len(videos) == 2
    for video in videos:
        assert video["error"] is None, video
        assert video["ready"] >= 1 and video["width"] > 0, video
        assert video["duration"] == pytest.approx(video["seconds"]) == 5, video
        assert video["src"].startswith("file:") and Path(video["src"][len("file://") :]).is_file()


@pytest.mark.parametrize("name", sorted(SCREENSHOTS))
def test_the_storyboard_looks_as_it_did(name, page, tmp_path, capsys, monkeypatch, update_golden):
    """Run from the repository's root, so the page names `examples/NAME.kvs` as the README does."""
    monkeypatch.chdir(ROOT)
    out = tmp_path / f"{name}.html"
    assert written(capsys, f"examples/{name}.kvs", out, "--no-renders") == Exit.OK
    page.open(out)
    assert_looks_like(page.screenshot(), SCREENSHOTS[name], update_golden, tmp_path / f"{name}.png")


def test_a_changed_page_is_told_apart_from_a_reflowed_one(page, tmp_path, capsys, monkeypatch):
    """The comparison can fail: the teaser with one word of a prompt changed is not 'close'."""
    from browser import difference

    monkeypatch.chdir(ROOT)
    text = (ROOT / "examples" / "teaser.kvs").read_text(encoding="utf-8")
    changed = tmp_path / "examples" / "teaser.kvs"
    changed.parent.mkdir()
    changed.write_text(text.replace("soft morning", "harsh evening"), encoding="utf-8")
    for ref in (ROOT / "examples").iterdir():
        if ref.is_dir():
            (changed.parent / ref.name).symlink_to(ref)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "changed.html"
    assert written(capsys, "examples/teaser.kvs", out, "--no-renders") == Exit.OK
    page.open(out)
    golden = SCREENSHOTS["teaser"]
    if not golden.is_file():
        pytest.skip("no checked-in image yet (--update-golden writes it)")
    found = difference(page.screenshot(), golden.read_bytes())
    assert not found.close, found


def test_without_a_browser_the_tests_skip_with_the_reason_unless_ci_requires_them(monkeypatch):
    from browser import REQUIRED, launched

    monkeypatch.setenv("KLINGSPEC_CHROMIUM", "/nonexistent/chromium")
    monkeypatch.delenv(REQUIRED, raising=False)
    with pytest.raises(pytest.skip.Exception, match="no Chromium"), launched():
        pass
    monkeypatch.setenv(REQUIRED, "required")
    with pytest.raises(pytest.fail.Exception, match="required"), launched():
        pass


def test_a_served_page_reloads_itself_on_save_where_the_reader_was(page, tmp_path):
    """`watch --preview` in a real process; the edit is made on disk, the browser does the rest."""
    import json

    from tests.watch.test_watching import replace_atomically
    from tests.watch.watchproc import WatchProcess

    script = tmp_path / "scene.kvs"
    long_prompt = " ".join(["a long corridor of doors"] * 120)
    script.write_text(f'shot arrival 3s "a red door"\nshot inside 5s "{long_prompt}"\n', encoding="utf-8")
    watch = WatchProcess(["--preview", "--format", "json", "scene.kvs"], tmp_path, {"KLINGSPEC_HOME": str(tmp_path)})
    try:
        url = json.loads(watch.wait_for(r'"event": "serving"'))["url"]
        watch.wait_for(r'"event": "watching"')
        page.page.goto(url)  # the index sends the one script's page
        assert page.js("() => document.querySelector('#shot-1 .name').innerText") == "arrival"
        page.js("() => { history.scrollRestoration = 'manual'; window.scrollTo(0, 300); }")  # the page's own doing
        page.js("() => { window.notReloaded = true; }")
        replace_atomically(script, script.read_text(encoding="utf-8").replace("arrival", "departure"))
        page.page.wait_for_function(
            "() => !window.notReloaded && document.querySelector('#shot-1 .name')?.innerText === 'departure'",
            timeout=20_000,
        )
        assert page.js("() => window.scrollY") == 300
        assert page.refused == []
    finally:
        watch.stop()
