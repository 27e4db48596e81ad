"""`klingspec lsp`: starts the language server (klingspec.lsp.server) on stdin/stdout."""

from __future__ import annotations

import click

from klingspec.cli.options import examples, pipeline_options, var_options


@click.command(
    epilog=examples(
        "klingspec lsp                      # what an editor starts (VS Code: editors/vscode)",
        "klingspec lsp --var mood=dusk      # expand templates with this value while editing",
    )
)
@var_options
def lsp(var_options: tuple[str, ...], var_files: tuple[str, ...]) -> None:
    """Run the language server on stdin/stdout (for editors; needs the [lsp] extra)."""
    try:
        from klingspec.lsp import server
    except ImportError as error:  # pygls is an optional dependency
        raise click.ClickException(f"the language server needs pygls: pip install 'klingspec[lsp]' ({error})") from None
    server.main(pipeline_options(var_options, var_files))
