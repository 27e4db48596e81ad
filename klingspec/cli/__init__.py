"""The command line: thin click commands over `pipeline`, one module per command family.

`checks` (check, compile, plan), `previews` (preview: the storyboard page), `renders`
(run, status, ls, cancel), `watch`, `fmt`, `lsp`, `emulator` (sandbox), `models`,
`explain` (a diagnostic code's page), `starter` (init) and `settings` (config). Exit codes
come from `report` only. The contract is docs/cli.md. Heavy imports (rich, jsonschema,
httpx, watchfiles, pygls) happen inside the commands that need them, so `check` starts fast.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, Sequence

import click

from klingspec import __version__
from klingspec.cli.report import Exit, exit_code_of

# name -> "module:attribute", in the order of the contract (and of `--help`)
COMMANDS = {
    "check": "checks:check",
    "compile": "checks:compile_",
    "plan": "checks:plan",
    "preview": "previews:preview",
    "run": "renders:run",
    "status": "renders:status",
    "ls": "renders:ls_",
    "cancel": "renders:cancel",
    "sandbox": "emulator:sandbox",
    "watch": "watch:watch",
    "lsp": "lsp:lsp",
    "fmt": "fmt:fmt_command",
    "models": "models:models",
    "init": "starter:init",
    "config": "settings:config",
    "explain": "explain:explain",
}


class _LazyCommands(dict[str, click.Command]):
    """The group's commands, each imported from its module on first use: `check` loads
    `cli.checks` only, never the run, watch or editor commands (the cold start is what a
    pre-commit hook pays). Every name is known up front, so `in`, iteration and `--help`
    behave as for an ordinary dict."""

    def __init__(self, where: dict[str, str]):
        super().__init__()
        self.where = dict(where)

    def __missing__(self, name: str) -> click.Command:
        module, _, attribute = self.where[name].partition(":")
        command: click.Command = getattr(importlib.import_module(f"klingspec.cli.{module}"), attribute)
        self[name] = command
        return command

    def get(self, name: str, default: click.Command | None = None) -> click.Command | None:  # type: ignore[override]
        return self[name] if name in self else default  # noqa: SIM401 (dict.get skips __missing__)

    def __contains__(self, name: object) -> bool:
        return name in self.where or super().__contains__(name)

    def __iter__(self) -> Iterator[str]:
        return iter([*self.where, *(n for n in super().__iter__() if n not in self.where)])

    def __len__(self) -> int:
        return len(set(self.where) | set(super().keys()))


class _Group(click.Group):
    """Lists commands in the order of the contract rather than alphabetically."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="klingspec")
def main_group() -> None:
    """klingspec: scene scripts (.kvs) to checked, priced Kling video requests."""


main_group.commands = _LazyCommands(COMMANDS)


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
        if exit_code_of(error) == Exit.USAGE:  # a ledger that cannot be used: its own words
            click.echo(f"klingspec: {error}", err=True)
            return Exit.USAGE
        click.echo(
            f"klingspec: internal error: {type(error).__name__}: {error}\n"
            "please report this with the script that caused it",
            err=True,
        )
        if os.environ.get("KLINGSPEC_DEBUG"):
            raise
        return exit_code_of(error)
    return Exit.OK
