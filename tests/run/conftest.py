"""Fixtures for the run side: a real sandbox on loopback, real clients, tmp ledgers.

One fast sandbox serves the session; each test gets its own bearer key, and the sandbox
scopes jobs and events to the key, so a test can count *its* jobs through the queue
listing. Tests that count requests (`/_sandbox/stats`) or set config faults start a
private sandbox with `sandbox_with`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any

import pytest
from run_helpers import FAST

from klingspec.sandbox import running_sandbox


@pytest.fixture(scope="session")
def base_url() -> Iterator[str]:
    with running_sandbox(FAST) as url:
        yield url


@pytest.fixture
def sandbox_with() -> Callable[..., AbstractContextManager[str]]:
    """`with sandbox_with(faults=(...)) as url:` a private, fast sandbox."""

    def start(**changes: Any) -> AbstractContextManager[str]:
        return running_sandbox(replace(FAST, **changes))

    return start


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch) -> None:
    """Nothing a test does may touch ~/.klingspec."""
    monkeypatch.setenv("KLINGSPEC_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KLINGSPEC_LEDGER", raising=False)
    monkeypatch.delenv("KLINGSPEC_API_URL", raising=False)
    monkeypatch.delenv("OXEN_API_KEY", raising=False)
    monkeypatch.setenv("COLUMNS", "250")  # rich tables unwrapped, so tests can find paths


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sandbox_args(*args): command-line arguments for the `sandbox_process` fixture")
