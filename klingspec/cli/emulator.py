"""`klingspec sandbox`: serves the built-in emulator of the Oxen API (klingspec.sandbox)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from klingspec.cli.options import examples
from klingspec.cli.report import Report

if TYPE_CHECKING:
    from klingspec.sandbox import FaultRule


@click.command(
    epilog=examples(
        "klingspec sandbox --port 8765",
        "klingspec sandbox --port 0 --processing-seconds 2   # any free port; renders take 2 s",
        "klingspec sandbox --fault 'GET /api/files/*: slow=1000'   # every download at 1000 B/s",
    ),
)
@click.option("--port", type=click.IntRange(0, 65535), default=8765, help="Port on 127.0.0.1 (0: any free port).")
@click.option("--host", default="127.0.0.1", help="Interface to bind (loopback by default).")
@click.option("--processing-seconds", type=click.FLOAT, default=None, help="How long each job takes to render.")
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="[[METHOD] PATH:] SPEC",
    help="Inject a fault (docs/sandbox.md, the X-Sandbox-Fault syntax) into every matching request; "
    "PATH may end in * (default: every route). Repeatable.",
)
def sandbox(port: int, host: str, processing_seconds: float | None, faults: tuple[str, ...]) -> None:
    """Serve the local emulator of the Oxen API until Ctrl-C."""
    from dataclasses import replace

    from klingspec.sandbox import SandboxConfig, serve

    config = SandboxConfig() if processing_seconds is None else SandboxConfig(processing_seconds=processing_seconds)
    if faults:
        config = replace(config, faults=tuple(_fault_rule(text) for text in faults))
    click.echo(f"klingspec sandbox: http://{host}:{port}/api (any bearer key; Ctrl-C stops)", err=True)
    serve(host, port, config)
    raise SystemExit(Report().return_code)


def _fault_rule(text: str) -> FaultRule:
    """`[[METHOD] PATH:] SPEC` as a rule: `GET /api/files/*: slow=1000`, `status=503`."""
    from klingspec.sandbox import FaultRule
    from klingspec.sandbox.faults import FaultSyntaxError, parse

    where, colon, spec = text.partition(":")
    words = where.split()
    if not colon or not 1 <= len(words) <= 2 or not words[-1].startswith(("/", "*")):
        words, spec = [], text
    method, path = (words[0].upper(), words[1]) if len(words) == 2 else ("*", words[0] if words else "*")
    try:
        parse(spec)
    except FaultSyntaxError as error:
        raise click.BadParameter(str(error), param_hint="--fault") from None
    return FaultRule(spec.strip(), path=path, method=method)
