"""`klingspec fmt`: rewrite scripts in the canonical layout, check or diff them.

The layout itself is `klingspec.formatting` (pure text to text); this module is the shell
around it: files, stdin, atomic writes and the exit code.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterable, Sequence
from typing import IO

import click

from klingspec.cli.options import color, examples, write_atomically
from klingspec.cli.report import Report
from klingspec.diagnostics import Diagnostic
from klingspec.formatting import FormattingError, format_source
from klingspec.loading import MAX_FILE_BYTES, decode, discover_scripts, read_bytes
from klingspec.source import Source


@click.command(
    name="fmt",
    epilog=examples(
        "klingspec fmt --check examples/   # exit 1 if a file would change",
        "klingspec fmt --diff examples/teaser.kvs",
        "klingspec fmt - < scene.kvs",
    ),
)
@click.argument("files", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.option("--check", is_flag=True, help="Write nothing; list the files that would change and exit 1 if any.")
@click.option("--diff", "show_diff", is_flag=True, help="Write nothing; print what would change as a unified diff.")
def fmt_command(files: tuple[str, ...], check: bool, show_diff: bool) -> None:
    """Rewrite scripts in the canonical layout (`-`: stdin to stdout). FILE may be a folder."""
    paths = [p for f in files for p in ([f] if f == "-" else discover_scripts([f]))]
    raise SystemExit(run_fmt(paths, check=check, diff=show_diff, color=color(sys.stderr)))


def _decode(name: str, data: bytes) -> tuple[str | None, list[Diagnostic]]:
    source, problems = decode(name, data)
    return (None, list(problems)) if problems else (source.text, [])


def _diff(name: str, before: str, after: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), f"{name} (original)", f"{name} (formatted)"
    )
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def run_fmt(
    paths: Sequence[str],
    *,
    check: bool = False,
    diff: bool = False,
    color: bool = False,
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """Format files in place (or check/diff them); `-` is stdin -> stdout.

    Returns 0, or 1 when a file has syntax errors or cannot be read, or (with `check`)
    when a file would change. Files with errors are never written.
    """
    from klingspec import printing

    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    style = printing.TextStyle(color=color)
    failed = changed = False

    def report(diagnostics: Iterable[Diagnostic]) -> None:
        stderr.write(printing.texts(list(diagnostics), style))

    for path in paths:
        name = "<stdin>" if path == "-" else path
        if path == "-":
            # no more than a script may be, plus one byte to tell: `fmt - < /dev/zero` ends
            cap = MAX_FILE_BYTES + 1
            data = stdin.buffer.read(cap) if hasattr(stdin, "buffer") else stdin.read(cap).encode("utf-8")
        else:
            try:
                data = read_bytes(path)  # a regular file, and no more than a script may be
            except FileNotFoundError:
                report([Diagnostic.of("KVS-file-not-found", Source(path, "").span(0), f"no such file: {path}")])
                failed = True
                continue
            except OSError as error:
                report(
                    [
                        Diagnostic.of(
                            "KVS-file-unreadable",
                            Source(path, "").span(0),
                            f"cannot read {path}: {error.strerror or error}",
                        )
                    ]
                )
                failed = True
                continue
        text, problems = _decode(name, data)
        if text is None:
            report(problems)
            failed = True
            continue
        try:
            formatted, problems = format_source(text, name)
        except FormattingError as error:
            stderr.write(
                f"klingspec: internal error: {error}; {name} left unchanged\n"
                "please report this with the script that caused it\n"
            )
            failed = True
            continue
        if formatted is None:
            report(problems)
            stderr.write(f"{name}: not formatted: it has syntax errors\n")
            failed = True
            continue
        differs = formatted.encode("utf-8") != data
        original = data.decode("utf-8", "replace")
        if diff:
            if differs:
                stdout.write(_diff(name, original, formatted))
        elif check:
            if differs:
                stdout.write(f"{name}\n")
        elif path == "-":
            stdout.write(formatted)
        elif differs:
            write_atomically(path, formatted)
            stderr.write(f"formatted {name}\n")
        changed = changed or differs
    # a file that could not be formatted, or (with --check) one that would change, is an error
    return Report(errors=int(failed or (check and changed))).return_code
