"""Shared pytest setup for klingspec's tests.

Sections, one per concern; add new fixtures in a section of their own:

- golden files: `--update-golden` (or `KLINGSPEC_UPDATE_GOLDEN=1`) makes golden tests
  rewrite their expected sections instead of comparing; the `update_golden` fixture
  tells a test which mode it is in (see tests/golden.py and tests/test_golden.py).
"""

from __future__ import annotations

import os

import pytest

# -- golden files -------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite the expected sections of golden files (tests/cases) "
        "from the current output instead of comparing; also KLINGSPEC_UPDATE_GOLDEN=1",
    )


@pytest.fixture(scope="session")
def update_golden(request: pytest.FixtureRequest) -> bool:
    """True when golden tests should write what they see rather than compare."""
    return bool(request.config.getoption("--update-golden")) or os.environ.get("KLINGSPEC_UPDATE_GOLDEN", "") not in (
        "",
        "0",
    )


# -- the klingspec home -------------------------------------------------------


@pytest.fixture(autouse=True)
def klingspec_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test gets an empty klingspec home (ledger, check cache), also inherited by
    the processes it starts, so no test reads what another wrote or touches ~/.klingspec."""
    home = str(tmp_path_factory.mktemp("home"))
    monkeypatch.setenv("KLINGSPEC_HOME", home)
    monkeypatch.delenv("KLINGSPEC_NO_CACHE", raising=False)
    return home
