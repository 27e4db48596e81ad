"""Exit codes, in one place (CLI.md): what a command returns is decided here only."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    SCRIPT_ERRORS = 1  # also: `fmt --check` would change a file
    USAGE = 2
    API_FAILURE = 3
    BUDGET_REFUSED = 4
    INTERRUPTED = 130


@dataclass
class Report:
    """Counts what a command saw and turns it into the exit code."""

    errors: int = 0
    warnings: int = 0
    files: int = 0
    api_failures: int = 0
    budget_refused: bool = False
    interrupted: bool = False

    @property
    def return_code(self) -> int:
        if self.interrupted:
            return Exit.INTERRUPTED
        if self.budget_refused:
            return Exit.BUDGET_REFUSED
        if self.errors:
            return Exit.SCRIPT_ERRORS
        if self.api_failures:
            return Exit.API_FAILURE
        return Exit.OK
