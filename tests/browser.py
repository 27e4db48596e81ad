"""Headless Chromium for the tests that look at a page the way its reader does.

The browser is the system's own (`/usr/bin/chromium`, Debian's `chromium` package, which
`.ci/run` installs), driven by Playwright's Python API with that executable: Playwright's
own browser downloads are neither used nor needed. `KLINGSPEC_CHROMIUM` names another
executable.

Without a browser the tests skip and say why; under `.ci/run`, which sets
`KLINGSPEC_BROWSER_TESTS=required`, they fail instead, so CI can never pass by skipping
them.

The flags are those a closed network needs (no background connections, no component
updates, no sync) plus what a root user in a container needs (`--no-sandbox`). Pages may
load `file:` and `data:` URLs and this machine's loopback address only: every other request
is refused and recorded, so a test can assert that a page needs no network to be read.

Playwright's sync API runs its own event loop: callers hold a browser for one test module
at most (a module-scoped fixture), never across modules where pytest-asyncio runs loops.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--autoplay-policy=no-user-gesture-required",
    "--font-render-hinting=none",  # the same glyph shapes whatever fontconfig would hint
)
VIEWPORT = {"width": 1280, "height": 900}
REQUIRED = "KLINGSPEC_BROWSER_TESTS"


def executable() -> str | None:
    """The Chromium to drive, or None."""
    named = os.environ.get("KLINGSPEC_CHROMIUM")
    if named:
        return named if Path(named).is_file() else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def unavailable(reason: str) -> None:
    """Skip, or fail where browser tests are required (CI)."""
    if os.environ.get(REQUIRED) == "required":
        pytest.fail(f"browser tests are required here ({REQUIRED}=required) but {reason}")
    pytest.skip(reason)


@contextmanager
def launched() -> Iterator[Any]:
    """A running headless Chromium (Playwright `Browser`), closed on exit."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright's Python package is not installed (pip install -e '.[test]')")
        raise  # unreachable: unavailable() raises
    path = executable()
    if path is None:
        unavailable("no Chromium: install Debian's `chromium` package, or set KLINGSPEC_CHROMIUM")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=list(FLAGS), headless=True)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Page:
    """A tab that loads local files only; `refused` lists the URLs it tried to fetch."""

    page: Any
    refused: list[str] = field(default_factory=list)

    def open(self, path: Path) -> None:
        self.page.goto(path.resolve().as_uri(), wait_until="load")

    def js(self, expression: str, arg: Any = None) -> Any:
        return self.page.evaluate(expression, arg)

    def screenshot(self) -> bytes:
        """The viewport as PNG, once fonts are loaded and nothing animates."""
        self.page.evaluate("() => document.fonts.ready")
        return bytes(self.page.screenshot(animations="disabled", caret="hide"))


@contextmanager
def tab(browser: Any) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1, locale="en-GB", timezone_id="UTC")
    page = Page(context.new_page())

    def route(route: Any) -> None:
        url = route.request.url
        if url.startswith(("file:", "data:", "http://127.0.0.1:")):
            route.continue_()
        else:
            page.refused.append(url)
            route.abort("internetdisconnected")

    context.route("**/*", route)
    try:
        yield page
    finally:
        context.close()


# -- screenshots against checked-in images -----------------------------------------------

# Two renders of one page by two builds of Chromium differ in a few anti-aliased pixels;
# a changed page differs in whole words and boxes. Images are compared at half size (which
# averages the anti-aliasing away) and may differ in at most this share of their pixels.
TOLERANCE = 0.002
NOTICEABLE = 32  # a grey-level difference (of 255) a reader would see


@dataclass(frozen=True)
class Difference:
    share: float  # of the pixels at half size that differ noticeably
    size: tuple[int, int]
    expected_size: tuple[int, int]

    @property
    def close(self) -> bool:
        return self.size == self.expected_size and self.share <= TOLERANCE


def difference(actual: bytes, expected: bytes) -> Difference:
    from PIL import Image, ImageChops

    a = Image.open(io.BytesIO(actual)).convert("L")
    e = Image.open(io.BytesIO(expected)).convert("L")
    if a.size != e.size:
        return Difference(1.0, a.size, e.size)
    half = (max(1, a.width // 2), max(1, a.height // 2))
    diff = ImageChops.difference(a.resize(half, Image.Resampling.BOX), e.resize(half, Image.Resampling.BOX))
    histogram = diff.histogram()
    changed = sum(histogram[NOTICEABLE:])
    return Difference(changed / (half[0] * half[1]), a.size, e.size)


def assert_looks_like(actual: bytes, golden: Path, update: bool, keep: Path) -> None:
    """Compare a screenshot with its checked-in image (or rewrite it under --update-golden);
    on a mismatch the screenshot is kept at `keep` to look at."""
    if update:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_bytes(actual)
        return
    assert golden.is_file(), f"no image {golden}: rerun with --update-golden"
    found = difference(actual, golden.read_bytes())
    if not found.close:
        keep.write_bytes(actual)
    assert found.close, (
        f"the page looks different from {golden.name}: {found.share:.2%} of its pixels changed "
        f"(at most {TOLERANCE:.1%}), size {found.size} vs {found.expected_size}; "
        f"this run's screenshot is {keep}; rerun with --update-golden if the change is meant"
    )
