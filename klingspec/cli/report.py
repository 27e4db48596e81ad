"""Exit codes, in one place (docs/cli.md): what a command returns is decided here only.

Commands count what they saw into a `Report`; `main` maps what escaped a command (Ctrl-C,
a usage error, a klingspec bug) through `exit_code_of`. Nothing else picks a number.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    SCRIPT_ERRORS = 1  # also: `fmt --check` would change a file; an internal error
    USAGE = 2
    API_FAILURE = 3
    BUDGET_REFUSED = 4  # also: a spend with no consent (no terminal to ask, no --yes or --budget)
    INTERRUPTED = 130


@dataclass
class Report:
    """Counts what a command saw and turns it into the exit code."""

    errors: int = 0
    warnings: int = 0
    files: int = 0
    api_failures: int = 0
    budget_refused: bool = False
    consent_refused: bool = False  # nothing sent: nobody to ask, no --yes or --budget
    interrupted: bool = False

    @property
    def return_code(self) -> Exit:
        if self.interrupted:
            return Exit.INTERRUPTED
        if self.budget_refused or self.consent_refused:
            return Exit.BUDGET_REFUSED
        if self.errors:
            return Exit.SCRIPT_ERRORS
        if self.api_failures:
            return Exit.API_FAILURE
        return Exit.OK


def exit_code_of(error: BaseException) -> Exit:
    """The exit code of an exception that escaped a command (see `klingspec.cli.main`)."""
    import click

    if isinstance(error, KeyboardInterrupt | click.exceptions.Abort):
        return Exit.INTERRUPTED
    if isinstance(error, click.ClickException):
        try:
            return Exit(error.exit_code)
        except ValueError:  # click's own codes are 1 and 2; anything else is a usage problem
            return Exit.USAGE
    if isinstance(error, BrokenPipeError):  # the reader went away (`| head`): not a failure
        return Exit.OK
    if _is_ledger_error(error):  # nothing was sent: the command cannot run as asked
        return Exit.USAGE
    return Exit.SCRIPT_ERRORS  # a klingspec bug, reported without a traceback


def _is_ledger_error(error: BaseException) -> bool:
    """A `run.ledger.LedgerError`, told without importing the runner (and SQLite) on
    `check`'s path: only a command that opened a ledger can raise one."""
    import sys

    ledger = sys.modules.get("klingspec.run.ledger")
    return ledger is not None and isinstance(error, ledger.LedgerError)
