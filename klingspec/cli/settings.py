"""`klingspec config [PATH]`: the settings a command run on PATH would use, and where each
comes from (the command line and the environment win over the project file, which wins
over klingspec's defaults)."""

from __future__ import annotations

import json
import os
import sys

import click

from klingspec.cli.options import color, examples, project_of
from klingspec.cli.report import Report


@click.command(
    name="config",
    epilog=examples(
        "klingspec config                   # the settings here, and where each comes from",
        "klingspec config examples/teaser.kvs --format json",
    ),
)
@click.argument("path", required=False, default=".", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def config(path: str, fmt: str) -> None:
    """Show the effective settings for PATH (a script or a folder; default: here) and
    where each comes from."""
    from klingspec import targets
    from klingspec.resources import home_dir
    from klingspec.run.client import DEFAULT_API_URL

    project = project_of([path])
    rows: list[tuple[str, object, str]] = []

    def row(key: str, default: object, env: str | None = None, default_from: str = "default") -> None:
        if env and os.environ.get(env):
            rows.append((key, os.environ[env], f"env {env}"))
        elif key in project.settings:
            rows.append((key, project.settings[key].value, project.settings[key].where))
        else:
            rows.append((key, default, default_from))

    default = targets.default_model_id()
    reason = targets.default_reason(default).removeprefix("the default (").removesuffix(")")
    row("model", default, default_from=f"default: {reason}")
    row("budget", None, default_from="none: `run` asks before spending")
    row("out", None, default_from="default: renders/ beside each script")
    row("api_url", DEFAULT_API_URL, env="KLINGSPEC_API_URL")
    assets = project.assets
    rows.append(("assets", assets.name, project.path or "") if assets else ("assets", None, "none"))
    for code, level in sorted(project.severity.items()):
        rows.append((f"severity.{code}", level, project.path or ""))
    rows.append(("home", home_dir(), "env KLINGSPEC_HOME" if os.environ.get("KLINGSPEC_HOME") else "default"))
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "project_file": project.path,
                    "settings": [{"key": k, "value": v, "from": w} for k, v, w in rows],
                    "problems": len(project.problems),
                },
                indent=2,
            )
        )
    else:
        click.echo(f"project file: {project.path or 'none (klingspec.toml or [tool.klingspec] in pyproject.toml)'}")
        width = max(len(k) for k, _, _ in rows)
        for key, value, where in rows:
            shown = "—" if value is None else str(value)
            click.echo(f"  {key.ljust(width)}  {shown}  ({where})")
    if project.problems:  # the project file's mistakes, as `check` shows a script's, on stderr
        from klingspec import printing

        click.echo(printing.texts(project.problems, printing.TextStyle(color=color(sys.stderr))), err=True, nl=False)
    raise SystemExit(Report(errors=sum(d.is_error for d in project.problems)).return_code)
