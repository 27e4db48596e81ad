"""`klingspec models`: what klingspec knows of each model, and `models sync` to learn more.

`models` lists every known model (the built-in matrices, and the Kling video models a
synced catalogue adds) with its prices, its status and where each fact comes from;
`models ID` shows one model's capability matrix exactly as the checker uses it. Neither
touches the network. `models sync` fetches the catalogue (run/syncing.py) and prints what
changed against the built-in matrices.
"""

from __future__ import annotations

import json
from dataclasses import fields
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import click

from klingspec import catalogue, targets
from klingspec.cli.options import examples
from klingspec.cli.report import Exit, Report
from klingspec.targets import Model

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem


@click.command(
    epilog=examples(
        "klingspec models",
        "klingspec models kling-video-o3-omni",
        "klingspec models sync --sandbox",
    ),
)
@click.argument(
    "target", required=False, metavar="[ID | sync]", shell_complete=lambda _ctx, _param, typed: _complete(typed)
)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", help="For people (text) or programs (json)."
)
@click.option("--sandbox", is_flag=True, help="sync: fetch the built-in emulator's catalogue (no key).")
@click.option(
    "--api-url",
    envvar="KLINGSPEC_API_URL",
    default=None,
    metavar="URL",
    help="sync: API base URL (default https://hub.oxen.ai/api; env KLINGSPEC_API_URL).",
)
def models(target: str | None, fmt: str, sandbox: bool, api_url: str | None) -> None:
    """List the models klingspec knows, show one (ID), or fetch the live catalogue (sync)."""
    if target == "sync":
        raise SystemExit(_sync(fmt, sandbox, api_url))
    if sandbox or api_url:
        raise click.UsageError("--sandbox and --api-url go with `klingspec models sync`")
    synced = catalogue.load()
    if target is None:
        rows = [_row(model_id, synced) for model_id in _all_ids(synced)]
        if fmt == "json":
            shown = [{k: v for k, v in row.items() if k != "facts"} for row in rows]
            click.echo(json.dumps({"catalogue": _catalogue_json(synced), "models": shown}, indent=2))
        else:
            _print_table(rows, synced)
        raise SystemExit(Report().return_code)
    model = targets.model(target)
    if model is None:
        listed = synced.get(target) if synced else None
        if listed is None:  # status `unknown`: neither a matrix nor the catalogue knows it
            if fmt == "json":
                click.echo(json.dumps({"id": target, "status": "unknown"}, indent=2))
            raise click.UsageError(
                f"`{target}`: status unknown: neither a built-in matrix nor the synced catalogue knows it; "
                f"known models: {', '.join(targets.known_ids())}"
            )
        if fmt == "json":
            click.echo(json.dumps(_row(target, synced) | {"detail": dict(listed.detail)}, indent=2, default=str))
        else:
            click.echo(f"{target}: in the catalogue synced {synced.when() if synced else ''}, ")
            click.echo("but klingspec has no capability matrix for it: scripts cannot target it yet")
        raise SystemExit(Report().return_code)
    if fmt == "json":
        row = {k: v for k, v in _row(target, synced).items() if k != "facts"}
        click.echo(json.dumps(row | {"matrix": matrix_json(model)}, indent=2))
    else:
        _print_matrix(model)
    raise SystemExit(Report().return_code)


def _complete(incomplete: str) -> list[CompletionItem]:
    """Shell completion of `models ID`: every model id klingspec knows, and `sync`."""
    from click.shell_completion import CompletionItem

    return [CompletionItem(i) for i in [*_all_ids(catalogue.load()), "sync"] if i.startswith(incomplete)]


def _all_ids(synced: catalogue.Catalogue | None) -> list[str]:
    extra = sorted(set(synced.models) - set(targets.known_ids())) if synced else []
    return [*targets.known_ids(), *extra]


def _usd(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.normalize():f}"


def _row(model_id: str, synced: catalogue.Catalogue | None) -> dict[str, Any]:
    """One model as `models` lists it: prices, status, and where each fact comes from."""
    model = targets.model(model_id)
    if model is None:  # in the catalogue only
        listed = synced.get(model_id) if synced else None
        pricing = listed.pricing if listed else {}
        if pricing.get("method") not in (None, targets.PRICING_METHOD):
            pricing = {}  # priced some other way: no per-second figure to show
        return {
            "id": model_id,
            "summary": listed.summary if listed else "",
            "price_per_second": _text(pricing.get("cost_per_second")),
            "price_per_second_with_audio": _text(pricing.get("cost_per_second_with_audio")),
            "price_per_second_high_res": _text(pricing.get("cost_per_second_high_res")),
            "audio_price_ceiling": None,
            "status": "retired" if listed and listed.deprecated else "live",
            "status_note": "klingspec has no capability matrix for it",
            "replaced_by": None,
            "source": f"catalogue synced {synced.when()}" if synced else "none",
            "facts": f"synced {synced.when()[:10]}" if synced else "none",
        }
    return {
        "id": model.id,
        "summary": model.summary,
        "price_per_second": _usd(model.price_per_second),
        "price_per_second_with_audio": _usd(model.price_per_second_with_audio),
        "price_per_second_high_res": _usd(model.price_per_second_high_res),
        "audio_price_ceiling": _usd(model.audio_price_ceiling),
        "status": model.status,
        "status_note": model.status_note,
        "replaced_by": model.replaced_by,
        "source": _source(model),
        "facts": f"synced {catalogue.when(model.synced_at)[:10]}" if model.synced_at else f"built-in {model.revision}",
    }


def _text(value: Any) -> str | None:
    """A price from a catalogue object, read as the overlay reads one (`targets.price_of`)."""
    return _usd(targets.price_of(value))


def _source(model: Model) -> str:
    if model.synced_at is None:
        return f"built-in matrix {model.revision}"
    return f"catalogue synced {catalogue.when(model.synced_at)}, over built-in matrix {model.revision}"


def _catalogue_json(synced: catalogue.Catalogue | None) -> dict[str, Any] | None:
    if synced is None:
        return None
    return {
        "path": catalogue.path(),
        "api_url": synced.api_url,
        "fetched_at": synced.fetched_at,
        "etag": synced.etag,
        "sha256": synced.sha256,
    }


def _price_cell(row: dict[str, Any]) -> str:
    """`$0.224, audio ≤ $0.28`: the base price, then audio and high-res where known."""
    parts = [f"${row['price_per_second']}" if row["price_per_second"] else "unknown"]
    if row["price_per_second_with_audio"]:
        parts.append(f"audio ${row['price_per_second_with_audio']}")
    elif row.get("audio_price_ceiling"):
        parts.append(f"audio ≤ ${row['audio_price_ceiling']}")
    if row["price_per_second_high_res"]:
        parts.append(f"high-res ${row['price_per_second_high_res']}")
    return ", ".join(parts)


def _print_table(rows: list[dict[str, Any]], synced: catalogue.Catalogue | None) -> None:
    """Plain aligned columns: the listing fits a terminal and greps line by line."""
    lines = [("model", "price / s", "status", "facts from", "summary")] + [
        (row["id"], _price_cell(row), row["status"], row["facts"], row["summary"]) for row in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(4)]
    for line in lines:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False)) + "  " + line[4])
    if synced is None:
        click.echo("no synced catalogue: `klingspec models sync` fetches the live one")
    else:
        click.echo(f"catalogue synced {synced.when()} ({synced.age()}) from {synced.api_url}")
    for row in rows:
        if row["status"] == "retired":
            successor = f"; use {row['replaced_by']}" if row.get("replaced_by") else ""
            click.echo(f"{row['id']} is retired: {row['status_note']}{successor}")


def matrix_json(model: Model) -> dict[str, Any]:
    """Every field of the matrix as the checker uses it (Decimals as text: exact)."""
    out: dict[str, Any] = {}
    for f in fields(model):
        value = getattr(model, f.name)
        if isinstance(value, Decimal):
            value = str(value)
        elif isinstance(value, tuple):
            value = [str(v) if isinstance(v, Decimal) else v for v in value]
        out[f.name] = value
    return out


def _print_matrix(model: Model) -> None:
    click.echo(f"{model.id}: {model.summary}")
    click.echo(f"  status: {model.status}" + (f" ({model.status_note})" if model.status_note else ""))
    if model.replaced_by:
        click.echo(f"  successor: {model.replaced_by}")
    click.echo(f"  facts from: {model.facts}")
    for name, value in matrix_json(model).items():
        if name in ("id", "summary", "status", "status_note", "replaced_by", "synced_at", "synced_from"):
            continue
        shown = ", ".join(str(v) for v in value) if isinstance(value, list) else value
        empty = "unknown (not published)" if name.startswith("price") and value is None else "none"
        click.echo(f"  {name.replace('_', ' ')}: {empty if shown in (None, '') else shown}")


def _sync(fmt: str, sandbox: bool, api_url: str | None) -> Exit:
    from klingspec.cli.renders import api_connection
    from klingspec.run.client import OxenClient
    from klingspec.run.syncing import SyncFailed, dumps, sync

    with api_connection(sandbox, api_url) as (url, key, _ledger_name), OxenClient.create(url, key) as client:
        try:
            result = sync(client, name="the sandbox" if sandbox else None)
        except SyncFailed as error:
            click.echo(f"klingspec: models sync failed: {error}; the previous catalogue is kept", err=True)
            return Report(api_failures=1).return_code
    if fmt == "json":
        click.echo(dumps(result))
        return Report().return_code
    fresh = result.catalogue
    click.echo(f"synced {len(fresh.models)} Kling video models from {fresh.api_url} at {fresh.when()}")
    click.echo(f"  saved to {result.path}")
    if result.against_builtin:
        click.echo("changes against the built-in matrices:")
        for change in result.against_builtin:
            click.echo(f"  {change.line()}")
    else:
        click.echo("no changes against the built-in matrices")
    if result.since_last is not None and result.previous is not None:
        if result.since_last:
            click.echo(f"changed since the last sync ({result.previous.when()}):")
            for change in result.since_last:
                click.echo(f"  {change.line()}")
        else:
            click.echo(f"nothing changed since the last sync ({result.previous.when()})")
    return Report().return_code
