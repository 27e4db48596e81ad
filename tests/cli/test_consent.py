"""Consent before spending (`cli.consent`): the rule, and the question a person at a real
terminal answers. The refusals without a terminal are tested end to end with each command
(tests/run/test_runcommand.py, tests/watch/test_watching.py)."""

from __future__ import annotations

import io
import os
import re
import select
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from klingspec.cli.consent import Consent, amount, can_ask, decide, refusal
from klingspec.pricing import Quote
from klingspec.sandbox import SandboxConfig, running_sandbox

SCRIPT = 'shot 5s "A red paper boat drifts"\n'  # $1.12
FAST = SandboxConfig(queue_seconds=0.05, processing_seconds=0.05)


@pytest.mark.parametrize(
    ("sandbox", "yes", "budget", "terminal", "expected"),
    [
        (True, False, None, False, Consent.GIVEN),  # the sandbox never asks
        (True, False, None, True, Consent.GIVEN),
        (False, True, None, False, Consent.GIVEN),  # --yes
        (False, False, 5.0, False, Consent.GIVEN),  # --budget is the consent
        (False, False, 0.0, True, Consent.GIVEN),  # even a zero cap (the budget check then refuses)
        (False, False, None, True, Consent.ASK),  # a person at a terminal is asked
        (False, False, None, False, Consent.REFUSED),  # nobody to ask: nothing is sent
    ],
)
def test_the_rule(sandbox: bool, yes: bool, budget: float | None, terminal: bool, expected: Consent) -> None:
    assert decide(sandbox=sandbox, yes=yes, budget=budget, terminal=terminal) is expected


class Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(
    ("stdin", "stderr", "expected"), [(True, True, True), (True, False, False), (False, True, False)]
)
def test_someone_can_ask_only_when_stdin_and_stderr_are_terminals(stdin: bool, stderr: bool, expected: bool) -> None:
    assert can_ask(Stream(stdin), Stream(stderr)) is expected


def test_a_closed_stream_cannot_ask() -> None:
    closed = io.StringIO()
    closed.close()  # isatty() raises on a closed stream
    assert can_ask(closed, Stream(True)) is False


def test_the_amount_is_never_zero_for_an_unknown_price() -> None:
    assert amount(Quote(None, None)) == "an unknown amount"
    assert amount(Quote(Decimal("1.12"), Decimal("1.12"))) == "$1.12"
    assert amount(Quote(Decimal("1.12"), Decimal("1.40"))) == "$1.12 (up to $1.40)"


def test_the_refusal_says_what_was_not_sent_and_how_to_allow_it() -> None:
    message = refusal("this would spend $1.12 at the API")
    assert message.startswith("klingspec: nothing was sent: this would spend $1.12 at the API")
    assert "pass --yes to allow it, or --budget USD to cap it" in message


# -- a real terminal -----------------------------------------------------------------------

pty = pytest.importorskip("pty")


class Terminal:
    """A klingspec process whose stdin, stdout and stderr are a pseudo-terminal."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]):
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "klingspec", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=cwd,
            env=dict(os.environ, NO_COLOR="1", PYTHONUNBUFFERED="1", **env),
            close_fds=True,
        )
        os.close(slave)
        self.text = ""

    def _read(self, timeout: float) -> bool:
        """Whatever arrives within `timeout`; False once the terminal is closed."""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # the process ended and its side of the terminal closed
            return False
        self.text += chunk.decode("utf-8", "replace").replace("\r\n", "\n")
        return bool(chunk)

    def wait_for(self, pattern: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.text):
            if time.monotonic() > deadline or not self._read(0.1):
                raise AssertionError(f"no {pattern!r} within {timeout} s; terminal:\n{self.text}")

    def answer(self, text: str) -> None:
        os.write(self.master, text.encode() + b"\n")

    def finish(self, timeout: float = 30.0) -> int:
        """Read until the process ends (so it never blocks on a full terminal); its exit code."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"still running after {timeout} s; terminal:\n{self.text}")
            self._read(0.05)
        while select.select([self.master], [], [], 0.05)[0] and self._read(0):
            pass
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(2)  # Ctrl-C
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.master >= 0:
            os.close(self.master)
            self.master = -1


def _stats(base_url: str) -> dict:
    return httpx.get(base_url + "/_sandbox/stats", timeout=5).json()


@pytest.fixture
def terminal(tmp_path: Path):
    started: list[Terminal] = []

    def start(*args: str) -> Terminal:
        term = Terminal(list(args), tmp_path, {"KLINGSPEC_HOME": str(tmp_path / "home"), "OXEN_API_KEY": "k"})
        started.append(term)
        return term

    (tmp_path / "scene.kvs").write_text(SCRIPT, encoding="utf-8")
    yield start
    for term in started:
        term.close()


def test_run_asks_with_the_amount_and_no_sends_nothing(terminal) -> None:
    with running_sandbox(FAST) as base_url:
        term = terminal("run", "--api-url", base_url, "scene.kvs")
        term.wait_for(r"Submit 1 render for \$1\.12\? \[y/N\]: ")
        term.answer("n")
        assert term.finish() == 0, term.text  # the person said no: nothing to report as a failure
        assert "nothing was sent" in term.text
        assert _stats(base_url)["total"] == 0


def test_run_asks_and_yes_sends(terminal, tmp_path: Path) -> None:
    with running_sandbox(FAST) as base_url:
        term = terminal("run", "--api-url", base_url, "scene.kvs")
        term.wait_for(r"Submit 1 render for \$1\.12\? \[y/N\]: ")
        term.answer("y")
        assert term.finish() == 0, term.text
        assert _stats(base_url)["requests"]["POST /api/ai/queue"] == 1
        assert len(list((tmp_path / "renders").glob("*.mp4"))) == 1


def test_run_with_a_budget_does_not_ask_at_a_terminal(terminal) -> None:
    with running_sandbox(FAST) as base_url:
        term = terminal("run", "--api-url", base_url, "--budget", "100", "scene.kvs")
        assert term.finish() == 0, term.text
        assert "[y/N]" not in term.text
        assert _stats(base_url)["requests"]["POST /api/ai/queue"] == 1


QUESTION = (
    r"This watch session renders at the API on each save that changes a request; "
    r"the first renders: 1 script, \$1\.12\. Render\? \[y/N\]: "
)


def test_watch_asks_once_and_no_leaves_a_checker(terminal, tmp_path: Path) -> None:
    with running_sandbox(FAST) as base_url:
        term = terminal("watch", "--run", "--api-url", base_url, ".")
        term.wait_for(QUESTION)
        term.answer("n")
        term.wait_for(r"watch: not rendering this session \(declined\): checking only, nothing is sent")
        term.wait_for(r"watch: watching 1 script")
        (tmp_path / "scene.kvs").write_text(SCRIPT.replace("red", "blue"), encoding="utf-8")
        term.wait_for(r"watch: scene\.kvs: ok .*\n(.*\n)*watch: scene\.kvs: ok ")  # the save, checked
        time.sleep(0.3)
        assert _stats(base_url)["total"] == 0
        assert term.text.count("[y/N]") == 1
        assert "rendering sha256" not in term.text
        term.close()
        assert term.proc.returncode == 0


def test_watch_asks_once_and_yes_renders_on_each_save(terminal, tmp_path: Path) -> None:
    with running_sandbox(FAST) as base_url:
        term = terminal("watch", "--run", "--api-url", base_url, ".")
        term.wait_for(QUESTION)
        term.answer("y")
        term.wait_for(r"render done: renders/scene-")
        (tmp_path / "scene.kvs").write_text(SCRIPT.replace("red", "blue"), encoding="utf-8")
        term.wait_for(r"render done: renders/scene-(.*\n)*.*render done: renders/scene-")
        assert term.text.count("[y/N]") == 1  # asked once for the session, not on each save
        assert _stats(base_url)["requests"]["POST /api/ai/queue"] == 2
