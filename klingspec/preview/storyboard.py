"""The storyboard page of one pipeline `Result`: what the script would render and cost,
before anything is spent.

`page_of` gathers the figures (each shot's seconds and cost from the `Estimate`, money
written by `pricing.usd`/`usd_quote` only, diagnostics as `printing.as_dict` gives them);
`render` fills the template shipped beside this module. Whatever the pipeline got to is
shown: a script with errors has no estimate (its costs read "not priced"), one that does
not parse has only its diagnostics.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any

from klingspec import __version__, ast, pricing, printing
from klingspec.assets import is_local_path
from klingspec.binding import Binding, BoundScript, BoundShot
from klingspec.diagnostics import Diagnostic
from klingspec.source import Span

if TYPE_CHECKING:
    from jinja2 import Environment

    from klingspec.pipeline import Result
    from klingspec.preview.grid import Grid
    from klingspec.preview.takes import Takes
    from klingspec.pricing import ShotCost

TEMPLATE = "storyboard.html.j2"
NOT_PRICED = "not priced"  # what a cost reads when the script has errors (no estimate)


@dataclass(frozen=True)
class Picture:
    """One image the request sends: a thumbnail to show (`src`: a `data:` URI of a small
    copy of a local file, or the http(s) URL itself), where the original is (`href`), and
    what to call it."""

    label: str  # the URI as expanded, or the local path as messages show it
    src: str | None = None
    href: str | None = None
    local: bool = False
    note: str | None = None  # `PNG 320x320, 2.1 kB`; or why there is no thumbnail
    sent_as: str | None = None  # a local image: the URL the body sends for it


@dataclass(frozen=True)
class Reference:
    """A binding: the author's `@name`, what it is sent as (`@Image1`), and its pictures
    (an image's one; an element's front view first, then its other views)."""

    name: str
    ref: str
    kind: str
    where: str  # `line 20`, or `lib/characters.kvs, line 3` for a binding taken from a `use`d file
    pictures: tuple[Picture, ...]

    @property
    def picture(self) -> Picture | None:
        return self.pictures[0] if self.pictures else None


@dataclass(frozen=True)
class Piece:
    """A piece of a prompt as sent: plain text, or one `@...` with what the author wrote
    (`written`) and the binding it resolved to (None: unbound or out of range)."""

    text: str
    written: str | None = None
    reference: Reference | None = None

    @property
    def mention(self) -> bool:
        return self.written is not None


@dataclass(frozen=True)
class Shot:
    index: int
    name: str
    line: int
    path: str
    seconds: str  # as the script says it (`6`, `2.5`)
    width: str  # its share of the timeline, in percent (`54.5455`)
    cost: str  # `pricing.usd` of the shot's cost for one generation, or NOT_PRICED
    cost_exact: str | None  # the Decimal as `pricing` computed it (None: unknown, or not priced)
    prompt: str  # exactly as sent
    pieces: tuple[Piece, ...]
    diagnostics: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Frame:
    kind: str  # "start" or "end"
    where: str
    picture: Picture


@dataclass(frozen=True)
class Setting:
    key: str
    value: str
    where: str


@dataclass(frozen=True)
class Page:
    """Everything the template shows, already worded: it formats nothing itself."""

    path: str
    title: str
    version: str
    model: str | None
    settings: tuple[Setting, ...]
    shots: tuple[Shot, ...]
    start: Frame | None
    end: Frame | None
    references: tuple[Reference, ...]
    total_seconds: str
    generations: int | None
    total: str  # `pricing.usd_quote` of the estimate, or why there is none
    priced: bool
    assumptions: tuple[str, ...]
    diagnostics: tuple[dict[str, Any], ...]
    errors: int
    warnings: int
    stage: str = ""  # how far the pipeline got, when it stopped short
    takes: Takes | None = None  # the contact sheet: renders of the script in the ledger (None: no section)
    live: str | None = None  # served by `watch --preview`: the event stream that reloads the page
    grid: Grid | None = None  # `--vars-table`: the variants, rows x takes


def page_of(
    result: Result,
    thumbnail: bool = True,
    takes: Takes | None = None,
    live: str | None = None,
    grid: Grid | None = None,
) -> Page:
    """The storyboard of `result`. `thumbnail`: inline small copies of local images (off,
    a local image shows its path and size only). `takes`: the script's renders, as
    `preview.takes.read` found them in the ledger. `live`: the URL of the event stream a
    served page reloads on (`watch --preview`); a written page runs no script."""
    bound = result.bound
    estimate = result.estimate
    shown = [printing.as_dict(d) for d in result.diagnostics]
    pictures = _Pictures(bound, thumbnail) if bound is not None else None
    references: tuple[Reference, ...] = ()
    shots: tuple[Shot, ...] = ()
    settings: tuple[Setting, ...] = ()
    start = end = None
    if bound is not None and pictures is not None:
        references = tuple(_reference(b, pictures) for b in (*bound.images, *bound.elements))
        by_binding = {id(b): r for b, r in zip((*bound.images, *bound.elements), references, strict=True)}
        costs = estimate.shots if estimate is not None and len(estimate.shots) == len(bound.shots) else None
        total = sum((s.seconds for s in bound.shots), Decimal(0))
        shots = tuple(
            _shot(s, total, len(bound.shots), costs[i] if costs else None, by_binding, result.diagnostics)
            for i, s in enumerate(bound.shots)
        )
        settings = tuple(Setting(k, v.raw, _where(v.statement.span, bound)) for k, v in bound.settings.items())
        start = _frame(bound.start, pictures)
        end = _frame(bound.end, pictures)
    seconds = (
        str(estimate.seconds)
        if estimate is not None
        else _number(sum((s.seconds for s in bound.shots), Decimal(0)))
        if bound is not None
        else "0"
    )
    if estimate is not None:
        total_text = pricing.usd_quote(estimate.quote, "unknown (the model has no published price)")
    else:
        why = "the script has errors" if result.errors else "the script has no shot"
        total_text = f"{NOT_PRICED}: {why}"
    return Page(
        path=result.path,
        title=os.path.basename(result.path),
        version=__version__,
        model=estimate.model if estimate is not None else bound.model_id if bound is not None else None,
        settings=settings,
        shots=shots,
        start=start,
        end=end,
        references=references,
        total_seconds=seconds,
        generations=estimate.generations if estimate is not None else bound.generations() if bound else None,
        total=total_text,
        priced=estimate is not None,
        assumptions=estimate.assumptions if estimate is not None else (),
        diagnostics=tuple(shown),
        errors=result.errors,
        warnings=result.warnings,
        stage=_stage(result),
        takes=takes,
        live=live,
        grid=grid,
    )


def render(page: Page) -> str:
    """The page as one HTML document (autoescaped: every text of the script is text)."""
    return _environment().get_template(TEMPLATE).render(page=page)


def storyboard(
    result: Result,
    thumbnail: bool = True,
    takes: Takes | None = None,
    live: str | None = None,
    grid: Grid | None = None,
) -> str:
    return render(page_of(result, thumbnail, takes, live, grid))


@cache
def _environment() -> Environment:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    return Environment(
        loader=FileSystemLoader(os.path.dirname(os.path.abspath(__file__))),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _stage(result: Result) -> str:
    if result.program is None:
        return "the script could not be read or parsed: only its diagnostics are shown"
    if result.bound is not None and not result.bound.shots:
        return "the script has no shot"
    if result.estimate is None:
        return "the script has errors: nothing is priced, and the request would not be sent"
    return ""


def _number(value: Decimal) -> str:
    """`6`, `2.5`: seconds as the script writes them."""
    return format(value.normalize(), "f")


def _shot(
    bound: BoundShot,
    total: Decimal,
    count: int,
    cost: ShotCost | None,
    references: dict[int, Reference],
    diagnostics: Sequence[Diagnostic],
) -> Shot:
    span = bound.shot.span
    share = bound.seconds / total * 100 if total > 0 else Decimal(100) / count
    here = tuple(printing.as_dict(d) for d in diagnostics if _inside(d, span))
    return Shot(
        index=bound.index,
        name=bound.shot.name.value if bound.shot.name else f"#{bound.index}",
        line=span.start_position[0],
        path=span.path,
        seconds=_number(bound.seconds),
        width=f"{share:.4f}",
        cost=pricing.usd(cost.cost) if cost is not None else NOT_PRICED,
        cost_exact=str(cost.cost) if cost is not None and cost.cost is not None else None,
        prompt=bound.prompt,
        pieces=tuple(
            Piece(
                p.text,
                p.mention.written,
                references.get(id(p.mention.binding)) if p.mention.binding is not None else None,
            )
            if p.mention is not None
            else Piece(p.text)
            for p in bound.parts
        ),
        diagnostics=here,
    )


def _inside(diagnostic: Diagnostic, span: Span) -> bool:
    """A diagnostic about a shot: it starts within the shot's statement, in its file."""
    where = diagnostic.span
    return where.source is span.source and span.start <= where.start < max(span.end, span.start + 1)


def _reference(binding: Binding, pictures: _Pictures) -> Reference:
    declaration = binding.declaration
    if isinstance(declaration, ast.Image):
        texts: tuple[ast.Text, ...] = (declaration.uri,)
    else:
        fronts = [u for f in declaration.fields if f.kind == "front" for u in f.uris]
        others = [u for f in declaration.fields if f.kind != "front" for u in f.uris]
        texts = (*fronts, *others)
    return Reference(
        binding.name,
        binding.ref,
        binding.kind,
        _where(declaration.span, pictures.bound),
        tuple(pictures.of(t) for t in texts),
    )


def _frame(frame: ast.Frame | None, pictures: _Pictures) -> Frame | None:
    if frame is None:
        return None
    return Frame(frame.kind, _where(frame.span, pictures.bound), pictures.of(frame.uri))


def _where(span: Span, bound: BoundScript) -> str:
    """`line 20` in the script itself; `lib/characters.kvs, line 3` in a `use`d file."""
    line = f"line {span.start_position[0]}"
    return line if span.source is bound.program.main.source else f"{span.path}, {line}"


class _Pictures:
    """The picture of each URI literal; a local file's thumbnail is made once."""

    def __init__(self, bound: BoundScript, thumbnail: bool):
        self.bound = bound
        self.thumbnail = thumbnail
        self.made: dict[str, str | None] = {}

    def of(self, text: ast.Text) -> Picture:
        bound = self.bound
        if bound.expansion.did_fail(text):
            return Picture(text.literal, note="its template failed: the value is unknown")
        uri = bound.expansion[text]
        if is_local_path(uri):
            from klingspec.cli.plans import size_text  # as the plan lists local images

            file = bound.local_files.get(id(text))
            if file is None:
                return Picture(uri, local=True, note="not read: see the diagnostics")
            upload = bound.uploads.get(id(text))
            src = self._data_uri(file.path) if self.thumbnail else None
            return Picture(
                file.name,
                src=src,
                local=True,
                note=f"{file.format.upper()} {file.width}x{file.height}, {size_text(file.size)}",
                sent_as=upload.url if upload is not None else None,
            )
        scheme = uri.split(":", 1)[0].lower() if ":" in uri else ""
        if scheme in ("http", "https"):
            return Picture(uri, src=uri, href=uri)
        if uri.lower().startswith("data:image/"):
            return Picture(_short(uri), src=uri)
        return Picture(uri)  # no scheme a page can show safely (`javascript:`, `file:`): text only

    def _data_uri(self, path: str) -> str | None:
        if path not in self.made:
            from klingspec.preview.thumbnails import data_uri

            self.made[path] = data_uri(path)
        return self.made[path]


def _short(uri: str) -> str:
    return uri if len(uri) <= 48 else uri[:45] + "..."
