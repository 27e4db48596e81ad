"""A `klingspec watch` process driven for real: started on a folder, read line by line."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time


class WatchProcess:
    def __init__(self, args: list[str], cwd, env: dict | None = None):
        full_env = dict(os.environ, NO_COLOR="1", PYTHONUNBUFFERED="1", **(env or {}))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "klingspec", "watch", *args],
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,  # not a terminal, however pytest was started: nobody to ask
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 10.0) -> str:
        """The next line matching `pattern` (lines before it are kept in `self.lines`)."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"no line matching {pattern!r} within {timeout} s; output:\n" + "\n".join(self.lines)
                )
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            self.lines.append(line)
            if regex.search(line):
                return line

    def seen_or_wait(self, pattern: str, timeout: float = 10.0) -> str:
        """A line matching `pattern` already printed, or the next one."""
        regex = re.compile(pattern)
        for line in self.lines:
            if regex.search(line):
                return line
        return self.wait_for(pattern, timeout)

    def drain(self, quiet: float = 0.6) -> list[str]:
        """Every line printed until the process has been quiet for `quiet` seconds."""
        got = []
        while True:
            try:
                line = self._queue.get(timeout=quiet)
            except queue.Empty:
                return got
            self.lines.append(line)
            got.append(line)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._reader.join(timeout=2)
        while not self._queue.empty():
            self.lines.append(self._queue.get())
        return code
