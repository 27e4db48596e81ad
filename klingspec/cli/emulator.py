"""`klingspec sandbox`: serves the built-in emulator of the Oxen API (klingspec.sandbox)."""

from __future__ import annotations

import click

from klingspec.cli.options import examples
from klingspec.cli.report import Report


@click.command(
    epilog=examples(
        "klingspec sandbox --port 8765",
        "klingspec sandbox --port 0 --processing-seconds 2   # any free port; renders take 2 s",
    ),
)
@click.option("--port", type=click.IntRange(0, 65535), default=8765, help="Port on 127.0.0.1 (0: any free port).")
@click.option("--host", default="127.0.0.1", help="Interface to bind (loopback by default).")
@click.option("--processing-seconds", type=click.FLOAT, default=None, help="How long each job takes to render.")
def sandbox(port: int, host: str, processing_seconds: float | None) -> None:
    """Serve the local emulator of the Oxen API until Ctrl-C."""
    from klingspec.sandbox import SandboxConfig, serve

    config = SandboxConfig() if processing_seconds is None else SandboxConfig(processing_seconds=processing_seconds)
    click.echo(f"klingspec sandbox: http://{host}:{port}/api (any bearer key; Ctrl-C stops)", err=True)
    serve(host, port, config)
    raise SystemExit(Report().return_code)
