"""`klingspec preview`: the storyboard page (klingspec/preview/), read back as a user's
browser would see it: parsed with html.parser into a tree, never searched with patterns.

The figures on the page are compared with `pricing`'s own (the page formats money with
`pricing.usd`/`usd_quote` only); a few pages are golden files (tests/cases/preview/*.html,
`--update-golden` rewrites them).
"""

from __future__ import annotations

import base64
import io
import os
import shutil
from dataclasses import dataclass, field
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest
from helpers import write

from klingspec import pricing
from klingspec.cli import main
from klingspec.cli.report import Exit
from klingspec.pipeline import Options, run_pipeline

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CASES = Path(__file__).resolve().parent / "cases" / "preview"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


# -- the page as a tree --------------------------------------------------------------


@dataclass
class Node:
    tag: str
    attrs: dict[str, str | None]
    children: list[Node | str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def walk(self):
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.walk()

    def all(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Node]:
        return [
            n
            for n in self.walk()
            if (tag is None or n.tag == tag)
            and (cls is None or cls in n.classes)
            and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]

    def one(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> Node:
        found = self.all(tag, cls, **attrs)
        assert len(found) == 1, f"{len(found)} <{tag} class={cls} {attrs}>"
        return found[0]

    def by_id(self, id_: str) -> Node:
        return self.one(id=id_)


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        self.stack[-1].children.append(Node(tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data):
        self.stack[-1].children.append(data)


def parse(html: str) -> Node:
    builder = _Builder()
    builder.feed(html)
    builder.close()
    assert builder.stack == [builder.root], "every element is closed"
    return builder.root


def preview(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["preview", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def page_of(capsys, script: str | Path, *argv: str) -> tuple[int, Node, str]:
    """The page on stdout (`-o -`), parsed."""
    code, out, err = preview(capsys, str(script), "-o", "-", *argv)
    return code, parse(out), err


def shots(page: Node) -> list[Node]:
    return page.by_id("track").all("li", "shot")


def width(shot: Node) -> Decimal:
    declarations = dict(part.split(":", 1) for part in (p.strip() for p in shot.attrs["style"].split(";")) if part)
    value = declarations["width"].strip()
    assert value.endswith("%")
    return Decimal(value[:-1])


TEASER = EXAMPLES / "teaser.kvs"


# -- the timeline --------------------------------------------------------------------


def test_one_block_per_shot_as_wide_as_it_is_long(tmp_path, capsys):
    script = write(tmp_path, 'shot a 3s "one"\nshot b 5s "two"\nshot c 2s "three"\n')
    code, page, _ = page_of(capsys, script)
    assert code == Exit.OK
    blocks = shots(page)
    assert [b.attrs["data-name"] for b in blocks] == ["a", "b", "c"]
    assert [b.attrs["data-seconds"] for b in blocks] == ["3", "5", "2"]
    widths = [width(b) for b in blocks]
    assert abs(sum(widths) - 100) < Decimal("0.001")
    for block, share in zip(blocks, widths, strict=True):
        assert abs(share - Decimal(block.attrs["data-seconds"]) * 10) < Decimal("0.0001")  # of 10 s
    assert page.by_id("total-seconds").text() == "10 s"


def test_names_seconds_and_costs_are_pricings_figures(capsys):
    result = run_pipeline(str(TEASER))
    estimate = result.estimate
    code, page, _ = page_of(capsys, TEASER)
    assert code == Exit.OK
    blocks = shots(page)
    assert len(blocks) == len(estimate.shots) == 2
    for block, figure in zip(blocks, estimate.shots, strict=True):
        assert block.one("h3", "name").text() == block.attrs["data-name"] == figure.name
        assert block.attrs["data-line"] == str(figure.line)
        assert block.one("span", "line").text() == f"line {figure.line}"
        assert block.one("span", "seconds").text() == f"{figure.seconds} s"
        assert block.one("span", "cost").text() == pricing.usd(figure.cost)
        assert Decimal(block.attrs["data-cost"]) == figure.cost
    assert page.by_id("total-cost").text() == pricing.usd_quote(estimate.quote) == "$4.93 (up to $6.16)"
    assert page.by_id("total-seconds").text() == f"{estimate.seconds} s"
    assert page.by_id("generations").text() == str(estimate.generations) == "2"
    assert page.by_id("model").text() == estimate.model
    assert [li.text() for li in page.by_id("assumptions").all("li")] == list(estimate.assumptions)
    settings = {row.attrs["data-key"]: row.all("td")[0].text() for row in page.by_id("settings").all("tr")}
    assert settings == {k: v.raw for k, v in result.bound.settings.items()}


def test_mentions_are_shown_under_the_authors_names(capsys):
    result = run_pipeline(str(TEASER))
    _, page, _ = page_of(capsys, TEASER)
    arrival = page.by_id("shot-1")
    mentions = arrival.all("span", "mention")
    assert [(m.one("span", "written").text(), m.attrs["data-ref"]) for m in mentions] == [
        ("@barista", "@Element1"),
        ("@cafe", "@Image1"),
        ("@palette", "@Image2"),
    ]
    cafe = mentions[1]
    assert cafe.one("span", "ref").text() == "@Image1"
    assert "@Image1" in cafe.attrs["title"]
    assert cafe.one("img").attrs["src"] == "https://assets.example.com/aurora/refs/cafe-interior.jpg"
    assert mentions[0].one("img").attrs["src"] == "https://assets.example.com/aurora/barista/front.png"
    # what is sent, exactly: in the "as sent" block, and the mentions' parts joined
    for block, bound in zip(shots(page), result.bound.shots, strict=True):
        assert block.one("pre", "prompt-sent").text() == bound.prompt
        shown = "".join(c if isinstance(c, str) else c.attrs["data-ref"] for c in block.one("p", "prompt").children)
        assert shown == bound.prompt


def test_a_raw_reference_is_labelled_with_the_binding_and_an_unbound_one_is_marked(tmp_path, capsys):
    script = write(
        tmp_path,
        'image cafe = "https://e.com/cafe.png"\nshot s 5s "@Image1 then @cafe and @nope, mail @@cafe"\n',
    )
    code, page, _ = page_of(capsys, script)
    assert code == Exit.SCRIPT_ERRORS  # @nope is not bound
    mentions = page.by_id("shot-1").all("span", "mention")
    assert [(m.one("span", "written").text(), m.one("span", "ref").text()) for m in mentions] == [
        ("@Image1", "@cafe"),
        ("@cafe", "@Image1"),
        ("@nope", "not bound"),
    ]
    assert "unbound" in mentions[2].classes
    assert page.by_id("shot-1").one("pre", "prompt-sent").text() == "@Image1 then @Image1 and @nope, mail @cafe"


def test_start_and_end_frames_stand_at_the_ends_of_the_timeline(capsys):
    code, page, _ = page_of(capsys, EXAMPLES / "morph.kvs")
    assert code == Exit.OK
    timeline = page.one("div", "timeline")
    parts = [c for c in timeline.children if isinstance(c, Node)]
    assert [p.attrs.get("id") for p in parts] == ["start-frame", "track", "end-frame"]
    assert parts[0].one("img").attrs["src"] == "https://assets.example.com/morph/sneaker-sketch.png"
    assert parts[2].one("img").attrs["src"] == "https://assets.example.com/morph/sneaker-render.png"


def test_remote_images_are_lazy_linked_thumbnails(capsys):
    _, page, _ = page_of(capsys, TEASER)
    images = page.by_id("references-section").all("img")
    assert len(images) == 5  # two images, the element's three views
    for image in images:
        assert image.attrs["loading"] == "lazy"
    links = page.by_id("references-section").all("a")
    assert [a.one("img").attrs["src"] for a in links] == [a.attrs["href"] for a in links]


# -- text is text ----------------------------------------------------------------------


def test_a_prompt_with_markup_is_shown_as_text(tmp_path, capsys):
    prompt = '<script>alert("x")</script> a <b>bold</b> cat & a dog'
    script = write(tmp_path, f"negative \"<img src=x onerror=alert(1)>\"\nshot s 5s '{prompt}'\n".replace("'", '"""'))
    code, out, _ = preview(capsys, script, "-o", "-")
    page = parse(out)
    assert not page.all("script")
    assert not page.all("b")
    assert not [n for n in page.all("img") if "onerror" in n.attrs]
    assert page.by_id("shot-1").one("pre", "prompt-sent").text() == prompt
    assert page.by_id("shot-1").one("p", "prompt").text() == prompt
    assert "&lt;script&gt;" in out


def test_a_uri_a_page_cannot_show_safely_is_text_only(tmp_path, capsys):
    script = write(tmp_path, 'image x = "javascript:alert(1)"\nshot s 5s "@x"\n')
    code, page, _ = page_of(capsys, script)
    assert code == Exit.SCRIPT_ERRORS
    for node in page.walk():
        for name in ("src", "href"):
            assert not (node.attrs.get(name) or "").lower().startswith("javascript:"), node
    assert "javascript:alert(1)" in page.by_id("references-section").text()


# -- a script with errors still gets its page --------------------------------------------


def test_errors_are_shown_in_place_and_the_page_is_still_written(tmp_path, capsys):
    script = write(tmp_path, 'image cafe = "https://e.com/cafe.png"\nshot a 5s "@cafe"\nshot b 3s "@cafee at noon"\n')
    code, out, err = preview(capsys, script)
    assert code == Exit.SCRIPT_ERRORS
    target = tmp_path / "main.storyboard.html"
    assert f"wrote {target}" in err and "KVS-name-unbound" in err
    page = parse(target.read_text(encoding="utf-8"))
    listed = page.by_id("diagnostics").all("li", "diagnostic")
    assert [d.attrs["data-code"] for d in listed] == ["KVS-name-unbound"]
    assert "did you mean `@cafe`?" in listed[0].text()
    assert not shots(page)[0].all("li", "diagnostic")
    [here] = shots(page)[1].all("li", "diagnostic")  # in place: in the shot it is about
    assert here.attrs["data-code"] == "KVS-name-unbound" and here.attrs["data-line"] == "3"
    assert [s.one("span", "cost").text() for s in shots(page)] == ["not priced", "not priced"]
    assert page.by_id("total-cost").text() == "not priced: the script has errors"
    assert [width(s) for s in shots(page)] == [Decimal("62.5000"), Decimal("37.5000")]


def test_a_script_that_does_not_parse_still_gets_a_page(tmp_path, capsys):
    script = write(tmp_path, 'shot a 5s "fine"\nshot b 5 s s "broken\n')
    code, page, _ = page_of(capsys, script)
    assert code == Exit.SCRIPT_ERRORS
    assert page.by_id("diagnostics").all("li", "diagnostic")
    assert page.one("p", "stage").text()


def test_a_library_has_no_shots_to_show(capsys):
    code, page, _ = page_of(capsys, EXAMPLES / "lib" / "characters.kvs")
    assert code == Exit.SCRIPT_ERRORS
    assert not shots(page)
    assert "KVS-no-shots" in [d.attrs["data-code"] for d in page.by_id("diagnostics").all("li", "diagnostic")]


# -- use, variables, local images ------------------------------------------------------


def test_use_and_var(tmp_path, capsys):
    write(
        tmp_path,
        'let mood = "noon"\nimage cafe = "https://e.com/cafe.png"\nimage unused = "https://e.com/u.png"\n',
        "lib/chars.kvs",
    )
    script = write(tmp_path, 'use "lib/chars.kvs"\nshot s 5s "@cafe at {{ mood }}"\n')
    code, page, _ = page_of(capsys, script, "--var", "mood=dusk")
    assert code == Exit.OK
    assert page.by_id("shot-1").one("pre", "prompt-sent").text() == "@Image1 at dusk"
    [reference] = page.by_id("references-section").all("li", "reference")  # the unused one is not sent
    assert reference.attrs["data-name"] == "cafe"
    assert os.path.join(str(tmp_path), "lib", "chars.kvs") + ", line 2" in reference.one("h3").text()


def test_vars_files(capsys):
    code, page, _ = page_of(
        capsys, EXAMPLES / "campaign.kvs", "--vars", str(EXAMPLES / "campaign.vars.toml"), "--var", "product=Orbit"
    )
    assert code == Exit.OK
    prompts = [s.one("pre", "prompt-sent").text() for s in shots(page)]
    assert "a crowded morning train" in prompts[0] and "Orbit" in prompts[1]
    reference = page.by_id("references-section").one("li", "reference")
    assert reference.one("img").attrs["src"] == "https://assets.example.com/campaign/nimbus/product.png"


def test_a_local_image_is_inlined_as_a_small_copy(tmp_path, capsys):
    from PIL import Image

    shutil.copytree(EXAMPLES / "refs", tmp_path / "refs")
    Image.new("RGB", (1200, 600), (200, 40, 40)).save(tmp_path / "refs" / "wide.jpg")
    script = write(
        tmp_path,
        'assets aurora-studio/klingspec-assets\nimage postcard = "refs/postcard.png"\nimage wide = "refs/wide.jpg"\n'
        'shot s 5s "@postcard beside @wide"\n',
    )
    code, out, _ = preview(capsys, script, "-o", "-")
    assert code == Exit.OK
    assert str(tmp_path) not in "".join(n.attrs.get("src") or "" for n in parse(out).all("img"))
    page = parse(out)
    references = page.by_id("references-section").all("li", "reference")
    sizes = []
    for reference in references:
        src = reference.one("img").attrs["src"]
        assert src.startswith(("data:image/png;base64,", "data:image/jpeg;base64,"))
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as thumbnail:
            sizes.append(thumbnail.size)
    assert sizes == [(320, 320), (320, 160)]  # downscaled to 320 px at most, proportions kept
    upload = run_pipeline(script).uploads[0]
    assert references[0].one("small", "sent-as").one("code").text() == upload.url
    mentions = page.by_id("shot-1").all("span", "mention")
    assert [m.one("img").attrs["src"] for m in mentions] == [r.one("img").attrs["src"] for r in references]


def test_a_missing_local_image_shows_no_thumbnail(tmp_path, capsys):
    script = write(tmp_path, 'assets a/b\nimage gone = "refs/gone.png"\nshot s 5s "@gone"\n')
    code, page, _ = page_of(capsys, script)
    assert code == Exit.SCRIPT_ERRORS
    reference = page.by_id("references-section").one("li", "reference")
    assert not reference.all("img")
    assert "not read" in reference.text()


# -- every example, every model ----------------------------------------------------------


@pytest.mark.parametrize("script", sorted(EXAMPLES.glob("*.kvs")), ids=lambda p: p.name)
def test_every_example_renders(script, capsys):
    result = run_pipeline(str(script))
    code, page, err = page_of(capsys, script)
    assert (code, err) == (Exit.OK, "")
    assert not page.all(id="diagnostics")
    if result.film is not None:  # a film's page: a timeline of its scenes, each with its shots
        scenes = result.film.scenes
        blocks = page.by_id("scenes").all("li", "scene")
        assert [b.attrs["data-name"] for b in blocks] == [s.name for s in scenes]
        assert [b.attrs.get("data-continues") for b in blocks] == [s.continues for s in scenes]
        assert [[shot.one("strong").text() for shot in b.one("ol", "shots").all("li")] for b in blocks] == [
            [s.name for s in scene.result.estimate.shots] for scene in scenes
        ]
        quotes = [s.result.estimate.quote for s in scenes]
        assert [b.one("strong", "cost").text() for b in blocks] == [pricing.usd_quote(q) for q in quotes]
        assert page.by_id("total-cost").text() == pricing.usd_quote(pricing.add(quotes))
        return
    assert [s.attrs["data-name"] for s in shots(page)] == [s.name for s in result.estimate.shots]
    assert page.by_id("total-cost").text() == pricing.usd_quote(result.estimate.quote)


def _models() -> tuple[str, ...]:
    from klingspec.targets import known_ids

    return known_ids()


@pytest.mark.parametrize("model", _models())
def test_every_model_renders(model, tmp_path, capsys):
    text = f'model {model}\nimage cafe = "https://e.com/cafe.png"\nshot a 5s "@cafe at dawn"\nshot b 5s "noon"\n'
    script = write(tmp_path, text)
    result = run_pipeline(script)
    code, page, _ = page_of(capsys, script)
    assert code == (Exit.OK if result.ok else Exit.SCRIPT_ERRORS)
    assert page.by_id("model").text() == model
    assert len(shots(page)) == 2
    if result.estimate is not None:
        assert page.by_id("total-cost").text() == pricing.usd_quote(
            result.estimate.quote, "unknown (the model has no published price)"
        )
    else:
        assert page.by_id("diagnostics").all("li", "diagnostic")


# -- the command -----------------------------------------------------------------------


def test_the_page_goes_beside_the_script_by_default(tmp_path, capsys):
    script = write(tmp_path, 'shot s 5s "a cat"\n', "scenes/cat.kvs")
    code, out, err = preview(capsys, script)
    target = tmp_path / "scenes" / "cat.storyboard.html"
    assert (code, out, err) == (Exit.OK, "", f"wrote {target}\n")
    assert parse(target.read_text(encoding="utf-8")).by_id("shot-1")


def test_output_option(tmp_path, capsys):
    script = write(tmp_path, 'shot s 5s "a cat"\n')
    code, _, err = preview(capsys, script, "-o", str(tmp_path / "board.html"))
    assert code == Exit.OK and err == f"wrote {tmp_path / 'board.html'}\n"
    assert (tmp_path / "board.html").is_file() and not (tmp_path / "main.storyboard.html").exists()


def test_open_hands_the_file_to_the_browser(tmp_path, capsys, monkeypatch):
    import webbrowser

    opened = []
    monkeypatch.setattr(webbrowser, "open", opened.append)
    script = write(tmp_path, 'shot s 5s "a cat"\n')
    assert preview(capsys, script, "--open")[0] == Exit.OK
    assert opened == [(tmp_path / "main.storyboard.html").as_uri()]


@pytest.mark.parametrize(
    "argv",
    [
        ["missing.kvs"],
        ["{script}", "-o", "-", "--open"],
        ["{script}", "--var", "not a var"],
        ["{script}", "--assets", "nope"],
        ["{script}", "-o", "{tmp}/no/such/folder/x.html"],
    ],
)
def test_usage_errors(argv, tmp_path, capsys, monkeypatch):
    import webbrowser

    monkeypatch.setattr(webbrowser, "open", lambda url: pytest.fail("opened"))
    monkeypatch.chdir(tmp_path)
    script = write(tmp_path, 'shot s 5s "a cat"\n')
    code, out, _ = preview(capsys, *(a.format(script=script, tmp=tmp_path) for a in argv))
    assert (code, out) == (Exit.USAGE, "")


@pytest.mark.parametrize(
    ("name", "argv"),
    [
        ("teaser", ["examples/teaser.kvs"]),
        ("morph", ["examples/morph.kvs"]),
        ("errors", ["tests/cases/preview/errors.kvs"]),
    ],
)
def test_the_page_is_golden(name, argv, capsys, monkeypatch, update_golden):
    """What a user opens, byte for byte (run from the repository's root, as the README's tour is)."""
    monkeypatch.chdir(ROOT)
    code, out, _ = preview(capsys, *argv, "-o", "-")
    assert code == (Exit.SCRIPT_ERRORS if name == "errors" else Exit.OK)
    golden = CASES / f"{name}.html"
    if update_golden:
        golden.write_text(out, encoding="utf-8")
        return
    assert out == golden.read_text(encoding="utf-8"), "stale golden: rerun with --update-golden"


def test_the_page_is_built_without_the_pipeline_failing_on_nothing(tmp_path):
    """`page_of` of a pipeline result that stopped at loading (no program, no bound script)."""
    from klingspec.preview.storyboard import page_of as build
    from klingspec.preview.storyboard import render

    result = run_pipeline(str(tmp_path / "nowhere.kvs"), Options())
    page = build(result)
    assert page.shots == () and page.model is None and result.diagnostics
    assert parse(render(page)).by_id("diagnostics")


def test_a_thumbnail_is_made_only_from_a_regular_file_of_an_images_size(tmp_path):
    """Pillow never sees a pipe (which would block for ever) or a file past the image
    limit: both are read through `read_bytes`, checked before a byte is read. Run in a
    child process so a reader that blocks fails the test instead of hanging the suite."""
    import subprocess
    import sys

    from klingspec.images import MAX_IMAGE_BYTES

    pipe = tmp_path / "pipe.png"
    os.mkfifo(pipe)
    huge = tmp_path / "huge.png"
    from PIL import Image

    Image.new("RGB", (2, 2), "red").save(huge)
    with open(huge, "r+b") as handle:
        handle.truncate(2 * MAX_IMAGE_BYTES)  # a valid PNG, then sparse zeros past the limit
    code = "import sys; from klingspec.preview.thumbnails import data_uri; print([data_uri(p) for p in sys.argv[1:]])"
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, str(pipe), str(huge)], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail("reading a pipe as an image blocked")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[None, None]"
