"""Hover texts (Markdown): what a shot will cost and send, what an `@name` binds to, what
a local image file holds and the URL it is sent as, and in a film what a scene is.

The point of hovering a shot is to see the prompt exactly as the API will receive it
(templates expanded, triple-quoted text folded, `@names` rewritten) with its length
against the model's limit, and the shot's share of the bill: the same numbers `plan`
prints, read from the pipeline's `BoundShot` and `Estimate`, never recomputed by hand.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from decimal import Decimal

from klingspec import ast
from klingspec.binding import Binding, BoundShot
from klingspec.films import Film, FilmScene
from klingspec.lsp import paths, scenes
from klingspec.lsp.symbols import Index, Symbol
from klingspec.pipeline import Result
from klingspec.pricing import Estimate, estimate, usd_quote
from klingspec.source import Span
from klingspec.targets import default_model_id
from klingspec.targets import model as lookup_model


@dataclass(frozen=True)
class Hover:
    span: Span
    markdown: str


def hover(result: Result, index: Index, path: str, offset: int) -> Hover | None:
    """The hover at `offset` of the file `path` (the main script or a used file)."""
    if result.film is not None:
        return _film_hover(result, result.film, index, path, offset)
    bound = result.bound
    if bound is None:
        return None
    for shot in bound.shots:
        for mention in shot.mentions:
            span = mention.span
            if span.path == path and span.start <= offset <= span.end and span.text == mention.written:
                return Hover(span, mention_text(mention.written, mention.binding, result))
    occurrence = index.at(path, offset)
    if occurrence is not None and occurrence.symbol.kind != "scene":  # a scene's is the film's
        return Hover(occurrence.span, symbol_text(occurrence.symbol, result))
    local = paths.local_path_at(result, path, offset)
    if local is not None:
        return Hover(local.text.span, image_text(local, result))
    for shot in bound.shots:
        span = shot.shot.span
        if span.path == path and span.start <= offset <= span.end:
            return Hover(span, shot_text(shot, result))
    return None


def _film_hover(result: Result, film: Film, index: Index, path: str, offset: int) -> Hover | None:
    """In a film: a scene's name (at its `scene NAME` or a `continues NAME`) or script path
    shows the scene; inside a scene written in place, the hovers of a script, answered
    from that scene's own result (a shot's cost is that scene's)."""
    occurrence = index.at(path, offset)
    if occurrence is not None and isinstance(occurrence.symbol.statement, ast.Scene):
        scene = next((s for s in film.scenes if s.scene is occurrence.symbol.statement), None)
        if scene is not None:
            return Hover(occurrence.span, scene_text(scene, film, result.path))
    if path != result.path:
        return None
    for scene in film.scenes:
        written = scene.scene.path
        if written is not None and written.span.start <= offset <= written.span.end:
            return Hover(written.span, scene_text(scene, film, result.path))
    inside = scenes.inline_at(result, offset)
    return hover(inside.result, index, path, offset) if inside is not None else None


def scene_text(scene: FilmScene, film: Film, film_path: str) -> str:
    """`**scene walk** · scenes/walk.kvs · 11 s × 2 · $4.93 (up to $6.16)`, with the
    seconds and cost as `plan FILM` words them, then the chain: what the scene continues
    (whose last frame it starts on) and which scenes continue it."""
    seconds = scenes.seconds(scene)
    cost = scenes.cost(scene)
    parts = [f"**scene {scene.name}**", scenes.script(scene, film_path)]
    if seconds is None:
        parts.append("not checked that far: see the diagnostics")
    else:
        parts += [seconds, cost or "no shots to price"]
    lines = [" · ".join(parts)]
    if scene.continues is not None:
        lines.append(f"continues `{scene.continues}`: starts on the last frame of its take {scene.take}")
    first = next(s for s in film.scenes if s.name == scene.name) is scene  # `continues` names the first
    after = scenes.continued_by(film, scene.name) if first else []
    if after:
        lines.append("continued by " + ", ".join(f"`{s.name}` (take {s.take})" for s in after))
    return "\n\n".join(lines)


def shot_text(shot: BoundShot, result: Result) -> str:
    """`**shot arrival** · 6 s · $1.344`, the whole render's bill, then the prompt as sent
    and its length."""
    bound = result.bound
    assert bound is not None  # a BoundShot comes from result.bound
    model = bound.model or lookup_model(default_model_id())
    assert model is not None  # the default model ships with klingspec
    cost = _estimate(result)
    title = shot.shot.name.value if shot.shot.name else f"#{shot.index}"
    seconds = shot.seconds
    line = f"**shot {title}** · {_seconds(seconds)} s · {_cost(cost, shot.index)}"
    if cost is not None and cost.total is not None:  # the render's bill, as the plan and the run show it
        line += f"\n\nthe whole render: {cost.seconds} s × {cost.generations} = {usd_quote(cost.quote)}"
    limit = model.prompt_max_chars
    length = f"{len(shot.prompt)}/{limit} characters"
    if len(shot.prompt) > limit:
        length += f" ({len(shot.prompt) - limit} over)"
    fence = _fence(shot.prompt)
    return f"{line}\n\nprompt as sent, {length}:\n\n{fence}text\n{shot.prompt}\n{fence}"


def mention_text(written: str, binding: Binding | None, result: Result) -> str:
    if binding is None:
        return f"`{written}` is not bound"
    return _binding_text(binding, result, written)


def symbol_text(symbol: Symbol, result: Result) -> str:
    bound = result.bound
    if symbol.kind == "let":
        value = bound.expansion.variables.get(symbol.name) if bound else None
        shown = "(not evaluated: see the diagnostics)" if value is None else f"`{_short(repr(value), 200)}`"
        return f"**let {symbol.name}** = {shown}\n\n{_where(symbol.span, result)}"
    binding = _binding_of(symbol, result)
    if binding is not None:
        return _binding_text(binding, result, "@" + symbol.name)
    assert isinstance(symbol.statement, (ast.Image, ast.Element))  # a let returned above
    uris = ", ".join(_uris(symbol.statement, result)) or "(no URI)"
    return (
        f"**@{symbol.name}** ({symbol.kind}) is not sent: no prompt of this script mentions it\n\n"
        f"{uris}\n\n{_where(symbol.span, result)}"
    )


def image_text(local: paths.LocalPath, result: Result) -> str:
    """A local image: its type, pixel size and bytes (as the check read it) and the URL
    the request sends for it; or what is wrong with the file."""
    bound = result.bound
    file = bound.local_files.get(id(local.text)) if bound else None
    problems = _image_problems(local.text, result)
    if bound is None or file is None:
        if problems:
            return f"**{local.written}**: " + "; ".join(problems)
        if not os.path.exists(local.path):
            return f"**{local.written}**: no such file ({local.path})"
        described = paths.describe(local.path) or "not a file"
        return f"**{local.written}** · {described}\n\nnot read by this check: the script does not send it"
    text = f"**{local.written}** · {file.format.upper()} · {file.width}x{file.height} px · {file.size:,} bytes"
    upload = bound.uploads.get(id(local.text))
    if upload is not None:
        text += (
            f"\n\nuploaded by its content to `{upload.namespace}/{upload.repo}@{upload.branch}` "
            f"as `{upload.remote_path}`; the request sends\n\n{upload.url}"
        )
    else:
        text += "\n\nnot uploaded: no `assets` repository"
    return text + "".join(f"\n\n- {p}" for p in problems)


def _image_problems(text: ast.Text, result: Result) -> list[str]:
    """What the check says about the file a URI literal names (`KVS-image-*` at its string)."""
    return [
        f"{d.message} (`{d.code}`)"
        for d in result.diagnostics
        if d.code.startswith("KVS-image")
        and d.span.path == text.span.path
        and (d.span.start, d.span.end) == (text.span.start, text.span.end)
    ]


def _binding_text(binding: Binding, result: Result, written: str) -> str:
    raw = written != "@" + binding.name
    head = f"**{written}** → `@{binding.name}`" if raw else f"**{written}** → `{binding.ref}`"
    uris: list[str] = []
    declaration = binding.declaration
    if isinstance(declaration, ast.Element):
        for field in declaration.fields:
            uris.append(f"- {field.kind}: " + ", ".join(_uri(t, result) for t in field.uris))
    else:
        uris.append(f"- {_uri(declaration.uri, result)}")
    return (
        f"{head} ({binding.kind} {binding.index})\n\n"
        + "\n".join(uris)
        + f"\n\n{_where(declaration.name.span, result)}"
    )


def _binding_of(symbol: Symbol, result: Result) -> Binding | None:
    bound = result.bound
    if bound is None:
        return None
    for binding in (*bound.images, *bound.elements):
        if (
            binding.declaration.name.span.path == symbol.span.path
            and binding.declaration.name.span.start == symbol.span.start
        ):
            return binding
    return None


def _uris(statement: ast.Image | ast.Element, result: Result) -> list[str]:
    if isinstance(statement, ast.Element):
        return [_uri(t, result) for f in statement.fields for t in f.uris]
    return [_uri(statement.uri, result)]


def _uri(text: ast.Text, result: Result) -> str:
    if result.bound is None:
        return text.literal
    file = result.bound.local_files.get(id(text))
    if file is None:
        problems = _image_problems(text, result)
        return result.bound.uri(text) + (f" ({'; '.join(problems)})" if problems else "")
    held = f"`{file.name}` ({file.format.upper()} {file.width}x{file.height}, {file.size:,} bytes)"
    upload = result.bound.uploads.get(id(text))
    return f"{held} → {upload.url}" if upload else f"{held}, not uploaded: no `assets` repository"


def _where(span: Span, result: Result) -> str:
    line = span.start_position[0]
    main = result.program.main.source.name if result.program else ""
    if span.path == main:
        return f"declared on line {line}"
    base = os.path.dirname(main)
    return f"declared in {os.path.relpath(span.path, base) if base else span.path}, line {line}"


def _estimate(result: Result) -> Estimate | None:
    if result.estimate is not None:
        return result.estimate
    if result.bound is not None and result.bound.shots:
        return estimate(result.bound)  # a script with errors still has a price per shot
    return None


def _cost(cost: Estimate | None, index: int) -> str:
    if cost is None or index > len(cost.shots) or (shot_cost := cost.shots[index - 1].cost) is None:
        return f"cost unknown (no published price for `{cost.model if cost else '?'}`)"
    money = f"${_money(shot_cost)}"
    if cost.generations > 1:
        money += f" × {cost.generations} generations"
    return money


def _money(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    whole, _, cents = text.partition(".")
    return f"{whole}.{cents.ljust(2, '0')}"


def _seconds(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fence(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)
