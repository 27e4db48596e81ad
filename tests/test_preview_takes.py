"""`klingspec preview`'s contact sheet: the takes the ledger holds for a script, rendered
for real in the built-in sandbox (`run --sandbox`), then read back from the page as a
browser would (tests/test_preview.py's tree): one `<video>` per take whose src reaches the
downloaded file from the page's folder, the generation ids, the ledger's bill worded by
`pricing`, and the versions of the script grouped by request hash, the current one first.

KLINGSPEC_HOME is a fresh folder per test (tests/conftest.py), so the default ledger is
this test's own.
"""

from __future__ import annotations

import os
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from helpers import write
from test_preview import Node, page_of, parse, preview

from klingspec import pricing
from klingspec.cli import main
from klingspec.cli.report import Exit
from klingspec.pipeline import run_pipeline
from klingspec.preview.takes import NONE_YET, same_script
from klingspec.run.ledger import Ledger, default_path

MODEL = "kling-video-o3-pro-reference-to-video"
SCENE = f'model {MODEL}\ngenerations 2\nshot a 2s "a door"\nshot b 3s "the door opens"\n'


def render(capsys, path: str) -> None:
    code = main(["run", "--sandbox", "--yes", path])
    out, err = capsys.readouterr()
    assert code == Exit.OK, out + err


def sheet(capsys, path: str, output: Path, *argv: str) -> Node:
    """The page written to `output` (a file, so its videos are linked relative to it)."""
    code, _, err = preview(capsys, path, "-o", str(output), *argv)
    assert code == Exit.OK, err
    return parse(output.read_text(encoding="utf-8"))


def versions(page: Node) -> list[Node]:
    return page.by_id("takes").all("section", "takes-version")


def video_file(page_file: Path, video: Node) -> Path:
    src = video.attrs["src"]
    assert src and not src.startswith(("data:", "file:", "http")), src
    return (page_file.parent / urllib.parse.unquote(src)).resolve()


def test_each_take_is_a_video_linked_from_the_page_with_its_generation_id_seconds_and_bill(tmp_path, capsys):
    path = write(tmp_path, SCENE, "scene.kvs")
    render(capsys, path)
    page_file = tmp_path / "pages" / "sheet.html"
    page_file.parent.mkdir()
    page = sheet(capsys, path, page_file)

    [version] = versions(page)
    [shown] = version.all("div", "take-render")
    with Ledger() as ledger:
        [made] = ledger.renders()
        generations = ledger.generations(made.id)
        files = {f.generation_id: Path(f.path) for f in ledger.all_files(made.id)}
    assert len(generations) == 2 and len(files) == 2
    takes = shown.all("li", "take")
    assert [t.attrs["data-generation"] for t in takes] == [g.generation_id for g in generations]
    for take in takes:
        video = take.one("video")
        assert "controls" in video.attrs and video.attrs["preload"] == "metadata"
        linked = video_file(page_file, video)
        assert linked.is_file() and linked.suffix == ".mp4"
        assert linked.samefile(files[take.attrs["data-generation"]])
        assert take.one("code", "generation").text() == take.attrs["data-generation"]
        assert take.one("span", "seconds").text() == "5 s"  # 2 s + 3 s, one generation's video
    assert len({video_file(page_file, t.one("video")) for t in takes}) == 2

    estimate = run_pipeline(path).estimate
    assert estimate is not None
    bill = shown.one("span", "bill").text()
    assert bill == f"{pricing.usd_quote(estimate.quote)} (sandbox: not charged)"
    assert pricing.usd_quote(estimate.quote) == pricing.usd(pricing.quote_body(made.body, 2).amount)
    assert "data-sandbox" in shown.attrs
    assert "data:video" not in page_file.read_text(encoding="utf-8")  # linked, never inlined


def test_an_edited_script_shows_its_versions_the_current_one_first_and_marked(tmp_path, capsys):
    path = write(tmp_path, SCENE, "scene.kvs")
    render(capsys, path)
    write(tmp_path, SCENE.replace('"the door opens"', '"the door swings open"'), "scene.kvs")
    render(capsys, path)
    page = sheet(capsys, path, tmp_path / "sheet.html")

    current, older = versions(page)
    now = run_pipeline(path).request
    assert now is not None
    with Ledger() as ledger:
        second, first = ledger.renders()
    assert (first.request_hash, second.request_hash) != (now.content_hash, now.content_hash)
    assert current.attrs["data-request-hash"] == now.content_hash == second.request_hash
    assert older.attrs["data-request-hash"] == first.request_hash
    assert "current" in current.classes and "current" not in older.classes
    assert current.one("span", "badge").text() == "current version"
    assert older.one("span", "badge").text() == "older version"
    dated = older.one("h3").one("time").attrs["datetime"]
    assert dated == datetime.fromtimestamp(first.created_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert [r.attrs["data-render"] for r in older.all("div", "take-render")] == [str(first.id)]
    assert [r.attrs["data-render"] for r in current.all("div", "take-render")] == [str(second.id)]
    ids = [t.attrs["data-generation"] for v in (current, older) for t in v.all("li", "take")]
    assert len(ids) == len(set(ids)) == 4
    assert not page.by_id("takes").all("p", "takes-note")  # the current version is there


def test_a_script_never_rendered_has_no_takes_and_no_ledger_is_made(tmp_path, capsys):
    path = write(tmp_path, SCENE, "scene.kvs")
    code, page, _ = page_of(capsys, path)
    assert code == Exit.OK
    assert not page.all(id="takes")
    assert not os.path.exists(default_path())

    code, page, _ = page_of(capsys, path, "--renders")
    assert code == Exit.OK
    section = page.by_id("takes")
    assert section.one("p", "takes-note").text() == NONE_YET
    assert not section.all("video")
    assert not os.path.exists(default_path())


def test_renders_of_another_script_are_not_its_takes(tmp_path, capsys):
    other = write(tmp_path, SCENE, "other.kvs")
    render(capsys, other)
    path = write(tmp_path, SCENE.replace("a door", "a window"), "scene.kvs")
    code, page, _ = page_of(capsys, path)
    assert code == Exit.OK and not page.all(id="takes")
    code, page, _ = page_of(capsys, path, "--renders")
    assert page.by_id("takes").one("p", "takes-note").text() == NONE_YET
    code, page, _ = page_of(capsys, other, "--no-renders")
    assert code == Exit.OK and not page.all(id="takes")


def test_a_page_on_stdout_links_its_videos_by_file_uri(tmp_path, capsys):
    path = write(tmp_path, SCENE, "scene.kvs")
    render(capsys, path)
    code, page, _ = page_of(capsys, path)
    assert code == Exit.OK
    videos = page.by_id("takes").all("video")
    assert len(videos) == 2
    for video in videos:
        src = video.attrs["src"] or ""
        assert src.startswith("file://")
        assert Path(urllib.request.url2pathname(urllib.parse.urlparse(src).path)).is_file()


def test_a_video_gone_from_disk_is_named_not_played(tmp_path, capsys):
    path = write(tmp_path, SCENE, "scene.kvs")
    render(capsys, path)
    with Ledger() as ledger:
        [made] = ledger.renders()
        gone = ledger.all_files(made.id)[0]
    os.unlink(gone.path)
    page = sheet(capsys, path, tmp_path / "sheet.html")
    takes = page.by_id("takes").all("li", "take")
    missing = [t for t in takes if t.attrs["data-generation"] == gone.generation_id]
    assert len(missing) == 1 and not missing[0].all("video")
    assert "file missing" in missing[0].one("div", "no-video").text()
    assert len(page.by_id("takes").all("video")) == 1


def test_a_script_with_errors_still_shows_its_takes_none_marked_current(tmp_path, capsys):
    path = write(tmp_path, SCENE, "scene.kvs")
    render(capsys, path)
    write(tmp_path, SCENE + "shot c 99s\n", "scene.kvs")
    code, _, _ = preview(capsys, path, "-o", str(tmp_path / "sheet.html"))
    assert code == Exit.SCRIPT_ERRORS
    page = parse((tmp_path / "sheet.html").read_text(encoding="utf-8"))
    [version] = versions(page)
    assert "current" not in version.classes
    assert "cannot be told" in page.by_id("takes").one("p", "takes-note").text()


def test_the_ledger_option_reads_that_ledger(tmp_path, capsys):
    path = write(tmp_path, SCENE, "scene.kvs")
    render(capsys, path)
    elsewhere = tmp_path / "elsewhere.sqlite"
    code, page, _ = page_of(capsys, path, "--ledger", str(elsewhere))
    assert code == Exit.OK and not page.all(id="takes") and not elsewhere.exists()
    code, page, _ = page_of(capsys, path, "--ledger", default_path())
    assert len(page.by_id("takes").all("video")) == 2


def test_a_relative_script_path_is_matched_where_its_videos_say_it_was(tmp_path):
    folder = tmp_path / "a"
    folder.mkdir()
    (folder / "s.kvs").write_text("")
    (tmp_path / "s.kvs").write_text("")
    renders = str(folder / "renders")
    assert same_script("s.kvs", renders, str(folder / "s.kvs"))
    assert not same_script("s.kvs", renders, str(tmp_path / "s.kvs"))  # same name, another folder
    assert same_script(str(folder / "s.kvs"), str(tmp_path / "out"), str(folder / "s.kvs"))
    assert not same_script(str(folder / "s.kvs"), str(tmp_path / "out"), str(tmp_path / "s.kvs"))


def test_renders_opens_the_page_on_its_takes(tmp_path, capsys, monkeypatch):
    import webbrowser

    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", opened.append)
    path = write(tmp_path, SCENE, "scene.kvs")
    code, _, _ = preview(capsys, path, "--renders", "--open")
    assert code == Exit.OK
    assert opened == [(tmp_path / "scene.storyboard.html").as_uri() + "#takes"]


def test_a_ledger_that_cannot_be_read_stops_the_preview_in_its_own_words(tmp_path, capsys):
    path = write(tmp_path, SCENE, "scene.kvs")
    empty = tmp_path / "ledger.sqlite"
    empty.write_bytes(b"")
    code, _, err = preview(capsys, path, "--ledger", str(empty))
    assert code == Exit.USAGE
    assert "is empty (0 bytes)" in err
    assert not (tmp_path / "scene.storyboard.html").exists()
    code, _, _ = preview(capsys, path, "--ledger", str(empty), "--no-renders")
    assert code == Exit.OK
