"""Fixtures: a real sandbox on loopback, and httpx clients with a fresh user per test.

One fast sandbox serves the whole session; tests stay independent because each client
gets its own bearer token, and the sandbox scopes jobs and events to the token. Tests that
count requests or change the config start their own sandbox with `sandbox_with`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any

import httpx
import pytest
from sandbox_helpers import FAST, make_client

from klingspec.sandbox import running_sandbox


@pytest.fixture(scope="session")
def base_url() -> Iterator[str]:
    with running_sandbox(FAST) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with make_client(base_url) as c:
        yield c


@pytest.fixture
def sandbox_with() -> Callable[..., AbstractContextManager[str]]:
    """`with sandbox_with(keepalive_seconds=0.05) as url:` a private, fast sandbox."""

    def start(**changes: Any) -> AbstractContextManager[str]:
        return running_sandbox(replace(FAST, **changes))

    return start
