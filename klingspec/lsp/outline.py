"""The outline of a script (document symbols): its shots in order, then its declarations.

Shots come first because they are the story; the detail line carries what an author
scans for (length and, for bindings, the `@ImageN`/`@ElementN` a name becomes). A film's
outline is its scenes in order, each with its script, seconds and the scene it continues;
a scene written in place holds its own outline (its shots, then its declarations).
"""

from __future__ import annotations

from dataclasses import dataclass

from klingspec import ast
from klingspec.lsp import scenes
from klingspec.pipeline import Result
from klingspec.source import Span


@dataclass(frozen=True)
class Entry:
    name: str
    kind: str  # "shot" | "image" | "element" | "let" | "scene" | "field"
    detail: str
    span: Span  # the whole statement
    selection: Span  # the name (or the keyword of an unnamed shot)
    children: tuple[Entry, ...] = ()


def outline(result: Result, path: str) -> list[Entry]:
    """Entries for the statements written in `path` (the main script or a used file)."""
    program = result.program
    if program is None:
        return []
    if result.film is not None and path == program.main.source.name:
        return _film(result, path)
    script = next((s for s in program.files if s.source.name == path), None)
    if script is None:
        return []
    bound = result.bound
    refs = {id(b.declaration): b.ref for b in (*bound.images, *bound.elements)} if bound else {}
    prompts = {id(s.shot): s.prompt for s in bound.shots} if bound else {}
    shots: list[Entry] = []
    declarations: list[Entry] = []
    for statement in script.statements:
        if isinstance(statement, ast.Shot):
            number = len(shots) + 1
            name = statement.name.value if statement.name else f"#{number}"
            selection = statement.name.span if statement.name else statement.span.sub(0, 4)
            prompt = prompts.get(id(statement))
            detail = f"{format(statement.duration.seconds.normalize(), 'f')} s"
            if prompt is not None:
                detail += f" · {len(prompt)} characters"
            shots.append(Entry(name, "shot", detail, statement.span, selection))
        elif isinstance(statement, (ast.Image, ast.Element)):
            kind = "image" if isinstance(statement, ast.Image) else "element"
            detail = refs.get(id(statement), "not sent")
            children: tuple[Entry, ...] = ()
            if isinstance(statement, ast.Element):
                children = tuple(
                    Entry(
                        f.kind,
                        "field",
                        f"{len(f.uris)} URI{'s' if len(f.uris) != 1 else ''}",
                        f.span,
                        f.span.sub(0, len(f.kind)),
                    )
                    for f in statement.fields
                )
            declarations.append(
                Entry(statement.name.value, kind, detail, statement.span, statement.name.span, children)
            )
        elif isinstance(statement, ast.Let):
            declarations.append(Entry(statement.name.value, "let", "let", statement.span, statement.name.span))
    return shots + declarations


def _film(result: Result, path: str) -> list[Entry]:
    """A film's scenes in order, each with where it is written, its seconds (as `plan FILM`
    writes them) and the scene it continues: what an author scans a film for."""
    assert result.film is not None
    entries = []
    for scene in result.film.scenes:
        details = [scenes.script(scene, path), scenes.seconds(scene) or "seconds unknown"]
        if scene.continues is not None:
            details.append(f"continues {scene.continues}" + (f" take {scene.take}" if scene.take != 1 else ""))
        inside = tuple(outline(scene.result, path)) if scene.scene.body is not None else ()
        entries.append(Entry(scene.name, "scene", " · ".join(details), scene.scene.span, scene.scene.name.span, inside))
    return entries
