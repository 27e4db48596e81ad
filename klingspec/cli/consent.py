"""Consent before spending money at the API: one rule for `run` and `watch --run`.

- The sandbox costs nothing, so it never asks.
- `--yes` is consent; so is `--budget USD` (the cap is the consent; the budget check
  itself stays with the command).
- Otherwise a person at a terminal is asked, with the amount.
- With nobody to ask (stdin or stderr is not a terminal) nothing is sent: the command
  prints `refusal(...)` and reports a spend refusal (exit 4, like a budget refusal).
"""

from __future__ import annotations

import sys
from decimal import Decimal
from enum import Enum
from typing import IO, TYPE_CHECKING

import click

if TYPE_CHECKING:
    from klingspec.pricing import Quote


class Consent(Enum):
    GIVEN = "given"  # no question: the sandbox, --yes or --budget
    ASK = "ask"  # a person at a terminal answers
    REFUSED = "refused"  # nobody to ask and no flag: send nothing (exit 4)


def can_ask(stdin: IO[str] | None = None, stderr: IO[str] | None = None) -> bool:
    """Someone can answer: stdin (the answer) and stderr (the question) are terminals."""
    stdin = stdin if stdin is not None else sys.stdin
    stderr = stderr if stderr is not None else sys.stderr
    try:
        return stdin is not None and stderr is not None and stdin.isatty() and stderr.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def decide(*, sandbox: bool, yes: bool, budget: float | Decimal | None, terminal: bool) -> Consent:
    """Whether a spend may go ahead, must be asked about, or is refused."""
    if sandbox or yes or budget is not None:
        return Consent.GIVEN
    return Consent.ASK if terminal else Consent.REFUSED


def amount(bill: Quote) -> str:
    """The figure a question or refusal shows (`$1.12 (up to $1.40)` where the price is
    open): never $0 for a price nobody knows."""
    from klingspec.pricing import usd_quote

    return usd_quote(bill, "an unknown amount")


def ask(question: str) -> bool:
    """The question on stderr, the answer from stdin; no (the default) sends nothing."""
    return click.confirm(question, default=False, err=True)


def refusal(spend: str, cap: str = "to cap it") -> str:
    """The message of a refused spend: what it would have cost, and how to allow it."""
    return (
        f"klingspec: nothing was sent: {spend}, and there is no terminal to confirm it; "
        f"pass --yes to allow it, or --budget USD {cap}"
    )
