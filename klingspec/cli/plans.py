"""The cost preview: a plan per script, shown as a table, as JSON, or saved for `run`.

A saved plan holds the exact request bodies, their content hashes and the hashes of every
file they were compiled from, so a later `run plan.json` submits exactly what was
previewed and refuses if a script changed since. It is written (`saved_file`) and read
back (`read_saved`) here, so the two can never disagree about the format.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from klingspec import __version__, pricing, printing
from klingspec.loading import read_bytes
from klingspec.pipeline import Options, Result
from klingspec.pricing import Estimate

if TYPE_CHECKING:
    from rich.console import Console

    from klingspec.images import LocalImage
    from klingspec.run.jobs import Job, Standing, Upload
    from klingspec.run.submitting import Spending

PLAN_FORMAT = "klingspec-plan/1"
MAX_PLAN_BYTES = 64 * 1024 * 1024  # the bodies of many scripts, each at most a few MB


@dataclass(frozen=True)
class Plan:
    path: str
    estimate: Estimate
    body: dict[str, Any]
    generations: int
    request_hash: str
    inputs: dict[str, str]  # file path -> sha256 of its bytes, for every file read
    uploads: tuple[LocalImage, ...] = ()  # local images the body sends by URL, each once
    variant: str | None = None  # the `--vars-table` row it renders (`row 3`)

    def job(self) -> Job:
        """The job `run` would make of this plan (priced by `pricing`, as the plan is)."""
        from klingspec.run.jobs import Job, Upload

        uploads = tuple(Upload.of(u) for u in self.uploads)
        return Job.create(
            self.path, self.body, self.generations, self.request_hash, uploads=uploads, variant=self.variant
        )

    def as_dict(self, standing: Standing | None = None, uploaded: frozenset[str] | None = None) -> dict[str, Any]:
        e = self.estimate
        return (
            {
                "path": self.path,
                **({"variant": self.variant} if self.variant else {}),
                "model": e.model,
                "shots": [
                    {"name": s.name, "line": s.line, "duration": s.seconds, "cost_usd": pricing.usd_number(s.cost)}
                    for s in e.shots
                ],
                "total_seconds": e.seconds,
                "price_per_second": float(e.price_per_second) if e.price_per_second is not None else None,
                "generations": e.generations,
                "total_usd": pricing.usd_number(e.total),
                "max_total_usd": pricing.usd_number(e.ceiling),
                "assumptions": list(e.assumptions),
                "request_hash": self.request_hash,
            }
            | uploads_json(self.uploads, uploaded)
            | _standing_fields(standing)
        )


def _standing_fields(standing: Standing | None) -> dict[str, Any]:
    """`standing` (new, top-up, in flight, reuse, duplicate), the render it concerns, and
    what running it would newly cost."""
    if standing is None:
        return {}
    render = standing.render
    return {
        "standing": str(standing.stand),
        "render_id": None if render is None else render.id,
        "new_usd": pricing.usd_number(standing.new.amount),
        "max_new_usd": pricing.usd_number(standing.new.ceiling),
    }


def standings(jobs: Sequence[Job], spending: Spending | None) -> list[Standing]:
    """Where each job stands by the ledger (`spending` reads it); without a ledger every
    request is new, and one listed twice is still rendered once."""
    if spending is not None:
        return spending.standings(jobs)
    from klingspec.run.jobs import Stand, Standing

    first: dict[str, Job] = {}
    marks = []
    for job in jobs:
        if job.request_hash in first:
            marks.append(Standing(job, Stand.DUPLICATE, None, None, first[job.request_hash]))
        else:
            first[job.request_hash] = job
            marks.append(Standing(job, Stand.NEW, job, None))
    return marks


def ledger_standings(
    jobs: Sequence[Job], *, sandbox: bool, api_url: str | None, ledger_path: str | None, again: bool
) -> list[Standing]:
    """`standings` by the ledger `run` would use (the API's own renders, or the sandbox's);
    a ledger that does not exist yet is not created (nothing has been rendered)."""
    from klingspec.run.ledger import Ledger, default_path

    path = ledger_path or default_path()
    if again or not os.path.exists(path):
        return standings(jobs, None)
    from klingspec.cli.renders import ledger_url
    from klingspec.run.submitting import Spending

    with Ledger(path) as ledger:
        return standings(jobs, Spending.of(ledger, ledger_url(sandbox, api_url)))


def ledger_uploaded(*, sandbox: bool, api_url: str | None, ledger_path: str | None) -> frozenset[str]:
    """The URLs of local images the ledger `run` would use records as uploaded to that API.
    A ledger that does not exist yet is not created; the in-process sandbox keeps no file
    between runs, so for it nothing is uploaded yet."""
    from klingspec.run.ledger import Ledger, default_path

    path = ledger_path or default_path()
    if sandbox or not os.path.exists(path):
        return frozenset()
    from klingspec.cli.renders import ledger_url

    with Ledger(path) as ledger:
        return frozenset(ledger.uploaded_urls(ledger_url(sandbox, api_url)))


def new_spend(marks: Sequence[Standing]) -> pricing.Quote:
    """What running the plans would newly cost: each distinct request once, less what the
    ledger already holds."""
    return pricing.add(s.new for s in marks)


def file_hash(path: str) -> str:
    """The SHA-256 of an input file: a regular file, read no further than the largest input
    may be (a larger one is an error of the pipeline, and its hash then never matches)."""
    from klingspec.images import MAX_IMAGE_BYTES  # the largest input there is

    return "sha256:" + hashlib.sha256(read_bytes(path, MAX_IMAGE_BYTES)).hexdigest()


def plan_of(result: Result, options: Options) -> Plan:
    assert result.request is not None and result.estimate is not None
    files = [
        result.path,
        *[
            f
            for f in (result.program.dependencies if result.program else ())
            if os.path.abspath(f) != os.path.abspath(result.path)
        ],
        *options.var_files,
        *([options.vars_table] if options.vars_table else []),
    ]
    files += [upload.path for upload in result.uploads]  # a changed image is a changed request
    inputs = {f: file_hash(f) for f in files if os.path.exists(f)}
    return Plan(
        result.path,
        result.estimate,
        result.request.body,
        result.request.generations,
        result.request.content_hash,
        inputs,
        result.uploads,
        result.variant,
    )


def as_json(
    plans: Sequence[Plan],
    marks: Sequence[Standing],
    uploaded: frozenset[str] = frozenset(),
    compared: Sequence[dict[str, Any]] | None = None,
) -> str:
    """One plan as an object, several as `{"plans": [...], ...}`; each with where it stands
    by the ledger, what it would newly cost (`new_usd`), per local image whether the
    ledger records it as uploaded (`uploaded`: the URLs it does), and with `--compare` the
    script tried on other models (`compared`, cli/comparisons.py)."""
    each = [p.as_dict(mark, uploaded) for p, mark in zip(plans, marks, strict=True)]
    if compared is not None:
        each = [plan | extra for plan, extra in zip(each, compared, strict=True)]
    if len(plans) == 1:
        return json.dumps(each[0], indent=2, ensure_ascii=False) + "\n"
    distinct: dict[str, Plan] = {}
    for plan in plans:
        distinct.setdefault(plan.request_hash, plan)
    new = new_spend(marks)
    payload = {
        "plans": each,
        "total_seconds": sum(p.estimate.seconds * p.estimate.generations for p in distinct.values()),
        "total_usd": pricing.usd_number(pricing.total(p.estimate.total for p in distinct.values())),
        "max_total_usd": pricing.usd_number(pricing.total(p.estimate.ceiling for p in distinct.values())),
        "new_usd": pricing.usd_number(new.amount),
        "max_new_usd": pricing.usd_number(new.ceiling),
    }
    return json.dumps(payload, indent=2, ensure_ascii=False) + "\n"


def _content_hash(requests: object) -> str:
    """The saved plan's own hash: of its requests, as canonical JSON. A plan edited by hand
    (a body, a `path` that decides where videos go, an input's hash) no longer matches."""
    canonical = json.dumps(requests, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def saved_file(plans: Sequence[Plan]) -> str:
    from klingspec.run.jobs import Upload

    requests = [
        {
            "path": p.path,
            "inputs": p.inputs,
            "request_hash": p.request_hash,
            "num_generations": p.generations,
            "body": p.body,
            "total_usd": pricing.usd_number(p.estimate.total),
            "uploads": [Upload.of(u).as_dict() for u in p.uploads],
            **({"variant": p.variant} if p.variant else {}),
        }
        for p in plans
    ]
    payload = {"format": PLAN_FORMAT, "klingspec": __version__, "sha256": _content_hash(requests), "requests": requests}
    return json.dumps(payload, indent=2, ensure_ascii=False) + "\n"


class PlanUnreadable(Exception):
    """The file is not a klingspec plan at all (a usage error)."""


class PlanStale(Exception):
    """The plan no longer describes its scripts: an input changed or went missing, or
    the bodies were edited by hand. Nothing may be submitted from it."""


@dataclass(frozen=True)
class SavedRequest:
    """One request of a saved plan, checked against the files it was compiled from."""

    script: str
    body: dict[str, Any]
    generations: int
    request_hash: str  # the job is priced again from the body, never from the file
    uploads: tuple[Upload, ...] = ()  # local images to upload first (their files are among the checked inputs)
    variant: str | None = None  # the `--vars-table` row it was planned for (`row 3`)


_SAVED_FIELDS = {"path": str, "inputs": dict, "request_hash": str, "num_generations": int, "body": dict}


def _well_formed(item: object) -> bool:
    """A saved request has every field `saved_file` writes, of the type it writes, and a
    body `pricing` can read (a hand-edited plan must fail here, not deep in a run)."""
    if not isinstance(item, dict) or not all(isinstance(item.get(k), kind) for k, kind in _SAVED_FIELDS.items()):
        return False
    try:
        pricing.quote_body(item["body"], item["num_generations"])
    except (TypeError, ValueError, ArithmeticError):
        return False
    return all(isinstance(k, str) and isinstance(v, str) for k, v in item["inputs"].items())


def read_saved(path: str) -> list[SavedRequest]:
    """The requests of a plan written by `saved_file`, refused (`PlanStale`) if any input
    file changed since or the bodies no longer match their hashes."""
    from klingspec.compiling import request_hash
    from klingspec.run.jobs import Upload

    try:
        data = read_bytes(path, MAX_PLAN_BYTES)  # a regular file, its size checked first
        if len(data) > MAX_PLAN_BYTES:
            raise ValueError(f"it is larger than {MAX_PLAN_BYTES // (1024 * 1024)} MiB")
        saved = json.loads(data.decode("utf-8"))
    except (OSError, ValueError) as error:
        raise PlanUnreadable(f"cannot read the plan {path}: {error}") from None
    if not isinstance(saved, dict) or saved.get("format") != PLAN_FORMAT:
        found = saved.get("format") if isinstance(saved, dict) else None
        raise PlanUnreadable(f"{path} is not a klingspec plan (format {found!r})")
    items = saved.get("requests")
    if not isinstance(items, list) or not all(_well_formed(item) for item in items):
        raise PlanUnreadable(f"{path} is not a complete klingspec plan (a request lacks a field or has a wrong type)")
    if saved.get("sha256") != _content_hash(items):
        raise PlanStale(f"{path} was edited by hand (its content hash does not match); refusing")
    requests = []
    for item in items:
        if item["path"] not in item["inputs"]:  # the script itself was hashed, or the plan is not ours
            raise PlanStale(f"{path} was edited by hand (a request's script is not among its inputs); refusing")
        for input_path, digest in item["inputs"].items():
            if not os.path.exists(input_path):
                raise PlanStale(
                    f"{input_path}, which {path} was planned from, is missing; "
                    "run `klingspec plan -o` again (from the same folder)"
                )
            try:
                current = file_hash(input_path)
            except OSError as error:
                raise PlanStale(f"{input_path}, which {path} was planned from, cannot be read: {error}") from None
            if current != digest:
                raise PlanStale(
                    f"{input_path} changed since {path} was saved; "
                    "run `klingspec plan -o` again to preview the new cost"
                )
        if request_hash(item["body"], item["num_generations"]) != item["request_hash"]:
            raise PlanStale(f"{path} was edited by hand (request hash mismatch); refusing")
        body, generations = item["body"], item["num_generations"]
        try:
            uploads = tuple(Upload.from_dict(u) for u in item.get("uploads", ()))
        except (KeyError, TypeError, ValueError):
            raise PlanUnreadable(
                f"{path} lists an upload klingspec cannot read; run `klingspec plan -o` again"
            ) from None
        for upload in uploads:
            if upload.path not in item["inputs"]:  # its content is what was checked: never upload an unchecked file
                raise PlanStale(f"{path} was edited by hand (an upload is not among its inputs); refusing")
        variant = item.get("variant") if isinstance(item.get("variant"), str) else None
        requests.append(SavedRequest(item["path"], body, generations, item["request_hash"], uploads, variant))
    return requests


def print_table(plans: Sequence[Plan], marks: Sequence[Standing], uploaded: frozenset[str] = frozenset()) -> None:
    """Each plan's shots and bill, its local images (`uploaded`: the URLs the ledger records
    as uploaded), where it stands by the ledger, and the new spend."""
    from rich.markup import escape  # paths, names and notes are text, never markup (`a[/b`)
    from rich.table import Table

    from klingspec.cli.options import shown_as

    console = printing.console()
    for i, plan in enumerate(plans):
        e = plan.estimate
        console.print(f"[bold]{escape(shown_as(plan.path, plan.variant))}[/]  [dim]{escape(e.model)}[/]")
        table = Table(show_footer=True)
        rate = e.price_per_second
        one_video = e.per_generation
        table.add_column("shot", footer="one video", overflow="fold")
        table.add_column("line", justify="right")
        table.add_column("seconds", justify="right", footer=f"{e.seconds} s")
        table.add_column("cost", justify="right", footer=f"${_fmt(one_video)}" if one_video is not None else "unknown")
        for shot in e.shots:
            table.add_row(
                escape(shot.name),
                str(shot.line),
                f"{shot.seconds} s",
                f"${_fmt(shot.cost)}" if shot.cost is not None else "unknown",
            )
        console.print(table)
        if rate is None:
            console.print(
                f"  price per second: [bold yellow]unknown[/] for {escape(e.model)}: the cost cannot be previewed"
            )
        else:
            console.print(
                f"  {e.seconds} s × ${rate}/s × {e.generations} generation"
                f"{'s' if e.generations != 1 else ''} = [bold]{pricing.usd_quote(e.quote)}[/]"
            )
        for note in e.assumptions:
            console.print(f"  [dim]assumes {escape(note)}[/]")
        print_uploads(console, plan.uploads, uploaded)
        console.print(f"  [bold]{escape(stand_line(marks[i]))}[/]")
        console.print()
    new = new_spend(marks)
    if len(plans) > 1:
        distinct: dict[str, Plan] = {}
        for plan in plans:
            distinct.setdefault(plan.request_hash, plan)
        grand = pricing.add(p.estimate.quote for p in distinct.values())
        console.print(f"[bold]total: {pricing.usd_quote(grand, 'unknown (a model has no published price)')}[/]")
    console.print(f"[bold]new spend: {pricing.usd_quote(new, 'unknown (a model has no published price)')}[/]")


def stand_line(standing: Standing) -> str:
    """`→ reuse: render #3 is done, its videos are reused: $0.00 new`, and so on."""
    from klingspec.run.jobs import Stand

    render, stand = standing.render, standing.stand
    new = pricing.usd_quote(standing.new)
    if stand == Stand.NEW:
        return f"→ new: {new}"
    if stand == Stand.DUPLICATE:
        first = standing.first.shown if standing.first is not None else "an earlier file"
        return f"→ the same request as {first}: rendered once, {new} new"
    assert render is not None  # every other stand concerns a render of the ledger
    if stand == Stand.TOP_UP:
        assert standing.paid is not None  # a top-up pays for the shortfall
        kept = standing.job.generations - standing.paid.generations
        return (
            f"→ top-up: render #{render.root} kept {kept} of {standing.job.generations} videos; "
            f"the {standing.paid.generations} missing: {new} new"
        )
    if stand == Stand.UNSETTLED:
        return (
            f"→ unsent: render #{render.id} was recorded ({render.state}) but may never have reached the API; "
            f"`run` looks for it in the queue and sends it only if it is not there: up to {new} new"
        )
    if stand == Stand.REUSE:
        return f"→ reuse: render #{render.id} is {render.state}, its videos are reused: {new} new"
    return f"→ in flight: render #{render.id} is {render.state}; `run` follows it: {new} new"


# -- local images --------------------------------------------------------------------
# What the body sends by URL and `run` uploads first. Listed here with what the file holds;
# whether each is still to upload is the ledger's to say.


def uploads_json(uploads: Sequence[LocalImage], uploaded: frozenset[str] | None = None) -> dict[str, Any]:
    """`{"uploads": [...]}` for a plan whose script names local images; `{}` otherwise.
    With `uploaded` (the URLs the ledger records as uploaded), each says whether it is."""
    if not uploads:
        return {}
    return {
        "uploads": [
            {
                "path": os.path.relpath(u.path) if not os.path.relpath(u.path).startswith(os.pardir) else u.path,
                "line": u.span.start_position[0],
                "format": u.format,
                "mime_type": u.mime_type,
                "bytes": u.size,
                "width": u.width,
                "height": u.height,
                "sha256": u.sha256,
                "repo": f"{u.namespace}/{u.repo}",
                "branch": u.branch,
                "remote_path": u.remote_path,
                "url": u.url,
            }
            | ({} if uploaded is None else {"uploaded": u.url in uploaded})
            for u in uploads
        ]
    }


def print_uploads(console: Console, uploads: Sequence[LocalImage], uploaded: frozenset[str] = frozenset()) -> None:
    """The local images still to upload (with their sizes and the total), then those the
    ledger records as uploaded already."""
    from rich.markup import escape

    if not uploads:
        return
    first = uploads[0]
    to_send = [u for u in uploads if u.url not in uploaded]
    already = [u for u in uploads if u.url in uploaded]
    where = escape(f"{first.namespace}/{first.repo} (branch {first.branch})")
    if to_send:
        total = f", {size_text(sum(u.size for u in to_send))}" if len(to_send) > 1 else ""
        console.print(f"  {len(to_send)} local image{'s' if len(to_send) != 1 else ''} to upload to {where}{total}:")
        for u in to_send:
            console.print(f"    {_image_line(u)}")
    if already:
        console.print(
            f"  {len(already)} local image{'s' if len(already) != 1 else ''} uploaded already"
            f"{' to ' + where if not to_send else ''}:"
        )
        for u in already:
            console.print(f"    {_image_line(u)}")


def _image_line(u: LocalImage) -> str:
    """The line of one local image, as rich markup (its paths escaped)."""
    from rich.markup import escape

    shown = os.path.relpath(u.path)
    return (
        f"{escape(shown if not shown.startswith(os.pardir) else u.path)}  {u.format.upper()} "
        f"{u.width}x{u.height}, {size_text(u.size)}  [dim]-> {escape(u.remote_path)}[/]"
    )


def size_text(size: int) -> str:
    """`12.3 kB`, `1.2 MB`: a file's size as the plan shows it."""
    for unit, scale in (("MB", 1_000_000), ("kB", 1_000)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def _fmt(value: Decimal) -> str:
    text = f"{value:.4f}".rstrip("0")
    return text + "0" if text.endswith(".") else text if len(text.split(".")[1]) >= 2 else text + "0"
