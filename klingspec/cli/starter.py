"""`klingspec init [DIR]`: a commented starter script and project file to begin from.

The two files are shipped in `klingspec/starter/` (so tests check them like any script:
they `check` clean and render in the sandbox). Nothing is ever overwritten: a file that
exists is kept and named, and the command says what it wrote.
"""

from __future__ import annotations

import os

import click

from klingspec.cli.options import examples
from klingspec.cli.report import Report

STARTER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "starter")
FILES = ("scene.kvs", "klingspec.toml")


@click.command(
    name="init",
    epilog=examples(
        "klingspec init my-film             # then: cd my-film && klingspec run --sandbox scene.kvs",
        "klingspec init                     # here; files that exist are kept",
    ),
)
@click.argument("directory", required=False, default=".", type=click.Path(file_okay=False))
def init(directory: str) -> None:
    """Write a commented starter script (scene.kvs) and project file (klingspec.toml) into
    DIRECTORY (default: here). Existing files are kept, never overwritten."""
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise click.UsageError(f"{directory} exists and is not a folder")
    os.makedirs(directory, exist_ok=True)
    for name in FILES:
        target = os.path.join(directory, name)
        with open(os.path.join(STARTER, name), "rb") as source:
            content = source.read()
        try:
            with open(target, "xb") as written:  # "x": fails if the file exists, atomically
                written.write(content)
        except FileExistsError:
            click.echo(f"kept {target}: it exists (nothing overwritten)")
            continue
        click.echo(f"wrote {target}")
    script = os.path.join(directory, FILES[0])
    click.echo(f"next: klingspec check {script}, then klingspec run --sandbox {script}")
    raise SystemExit(Report().return_code)
