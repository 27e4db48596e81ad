"""The command line: thin click commands over `pipeline`, one module per command family.

`checks` (check, compile, plan), `renders` (run, status, ls, cancel), `watch`, `fmt`,
`lsp` and `emulator` (sandbox). Exit codes come from `report` only. The contract is
docs/cli.md. Heavy imports (rich, jsonschema, httpx, watchfiles, pygls) happen inside
the commands that need them, so `check` starts fast.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import click

from klingspec import __version__
from klingspec.cli import checks, emulator, fmt, lsp, renders, watch
from klingspec.cli.report import Exit, exit_code_of


class _Group(click.Group):
    """Lists commands in the order of the contract rather than alphabetically."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="klingspec")
def main_group() -> None:
    """klingspec: scene scripts (.kvs) to checked, priced Kling video requests."""


for _command in (
    checks.check,
    checks.compile_,
    checks.plan,
    renders.run,
    renders.status,
    renders.ls_,
    renders.cancel,
    emulator.sandbox,
    watch.watch,
    lsp.lsp,
    fmt.fmt_command,
):
    main_group.add_command(_command)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: runs a command and returns its exit code; never shows a traceback."""
    try:
        main_group.main(args=list(argv) if argv is not None else None, prog_name="klingspec", standalone_mode=False)
    except SystemExit as done:
        return int(done.code or 0)
    except (click.exceptions.Abort, KeyboardInterrupt) as error:
        click.echo("interrupted", err=True)
        return exit_code_of(error)
    except click.ClickException as error:
        error.show()
        return exit_code_of(error)
    except BrokenPipeError as error:
        return exit_code_of(error)
    except Exception as error:  # a klingspec bug: say so plainly, without a traceback
        click.echo(
            f"klingspec: internal error: {type(error).__name__}: {error}\n"
            "please report this with the script that caused it",
            err=True,
        )
        if os.environ.get("KLINGSPEC_DEBUG"):
            raise
        return exit_code_of(error)
    return Exit.OK
