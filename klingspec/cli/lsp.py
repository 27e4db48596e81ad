"""`klingspec lsp`: starts the language server (klingspec.lsp.server) on stdin/stdout."""

from __future__ import annotations

import click

from klingspec.cli.options import pipeline_options, var_options


@click.command()
@var_options
def lsp(var_options: tuple[str, ...], var_files: tuple[str, ...]) -> None:
    """Run the language server on stdin/stdout (for editors; needs the [lsp] extra)."""
    try:
        from klingspec.lsp import server
    except ImportError as error:  # pygls is an optional dependency
        raise click.ClickException(f"the language server needs pygls: pip install 'klingspec[lsp]' ({error})") from None
    server.main(pipeline_options(var_options, var_files))
