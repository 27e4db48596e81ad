"""Exit codes are decided in one place: the Report of what a command saw, and the
mapping of what escaped a command."""

from __future__ import annotations

import click
import pytest

from klingspec.cli.report import Exit, Report, exit_code_of


@pytest.mark.parametrize(
    ("report", "code"),
    [
        (Report(), Exit.OK),
        (Report(warnings=3), Exit.OK),
        (Report(errors=1, warnings=1), Exit.SCRIPT_ERRORS),
        (Report(api_failures=2), Exit.API_FAILURE),
        (Report(errors=1, api_failures=1), Exit.SCRIPT_ERRORS),
        (Report(budget_refused=True, errors=1), Exit.BUDGET_REFUSED),
        (Report(consent_refused=True, errors=1, api_failures=1), Exit.BUDGET_REFUSED),
        (Report(interrupted=True, budget_refused=True, errors=1, api_failures=1), Exit.INTERRUPTED),
    ],
)
def test_the_report_decides_the_code_by_precedence(report: Report, code: Exit) -> None:
    assert report.return_code == code


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (KeyboardInterrupt(), Exit.INTERRUPTED),
        (click.exceptions.Abort(), Exit.INTERRUPTED),
        (click.UsageError("bad"), Exit.USAGE),
        (click.ClickException("refused"), Exit.SCRIPT_ERRORS),
        (BrokenPipeError(), Exit.OK),
        (RuntimeError("a klingspec bug"), Exit.SCRIPT_ERRORS),
    ],
)
def test_what_escapes_a_command_maps_to_a_documented_code(error: BaseException, code: Exit) -> None:
    assert exit_code_of(error) == code


def test_an_unknown_click_code_is_a_usage_error() -> None:
    error = click.ClickException("odd")
    error.exit_code = 7
    assert exit_code_of(error) == Exit.USAGE
