"""The symbol index of one pipeline `Result`: who defines a name and who uses it.

Three kinds of names can be followed in an editor: bindings (`image`/`element` names and
their `@name` mentions in prompts), `let` variables (their `{{ name }}` uses inside
templates) and a film's scenes (`scene NAME` and the `continues NAME` that name it).
The pipeline already resolves mentions (binding.Mention carries the declaration it bound
to), so binding references come straight from it; template uses are not recorded by the
core, so they are found here by scanning the `{{ }}`/`{% %}` blocks of each string
literal and mapped back through `Text.span_of`.

Symbols are keyed by `(path, offset of the declared name)`, not by object identity, so
indexes built from different runs (scene.kvs and lib/chars.kvs checked separately) can
be merged: that is how a rename in a library reaches the scripts that use it. A film's
index is its scenes' names merged with the index of every scene's own result, so a
binding in a scene written in place is followed as in a script.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from klingspec import ast
from klingspec.pipeline import Result
from klingspec.source import Span

Key = tuple[str, int]
NAME = re.compile(r"[^\W\d]\w*\Z")

_BLOCK = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)
_TOKEN = re.compile(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\W\d]\w*|\d[\w.]*|==|!=|<=|>=|\S""", re.S)
_ASSIGNED = re.compile(r"\{%-?\s*(?:for\s+([\w\s,()]+?)\s+in\b|set\s+([\w\s,]+?)\s*=|macro\s+\w+\s*\(([^)]*)\))")
# Jinja words that are never variable lookups (operators, tag names, literals).
_KEYWORDS = frozenset(
    [
        "and",
        "or",
        "not",
        "in",
        "is",
        "if",
        "else",
        "elif",
        "endif",
        "for",
        "endfor",
        "set",
        "endset",
        "macro",
        "endmacro",
        "call",
        "endcall",
        "filter",
        "endfilter",
        "block",
        "endblock",
        "with",
        "endwith",
        "without",
        "context",
        "import",
        "include",
        "from",
        "as",
        "extends",
        "raw",
        "endraw",
        "recursive",
        "true",
        "false",
        "none",
        "True",
        "False",
        "None",
        "loop",
        "self",
        "varargs",
        "kwargs",
    ]
)


@dataclass(frozen=True)
class Symbol:
    """A declared name: an image, an element, a `let` or a film's scene."""

    kind: str  # "image" | "element" | "let" | "scene"
    name: str
    span: Span  # the name where it is declared
    statement: ast.Image | ast.Element | ast.Let | ast.Scene

    @property
    def key(self) -> Key:
        return (self.span.path, self.span.start)


@dataclass(frozen=True)
class Occurrence:
    """One place a symbol's name is written: its declaration or a use.

    `span` is what is written (`@hero` for a mention), `name_span` only the name, which
    is what a rename replaces.
    """

    symbol: Symbol
    span: Span
    name_span: Span
    declaration: bool = False


@dataclass(frozen=True)
class Index:
    symbols: tuple[Symbol, ...]
    occurrences: tuple[Occurrence, ...]

    def at(self, path: str, offset: int) -> Occurrence | None:
        """The occurrence under `offset` (its end included, where a cursor after a word is)."""
        for occurrence in self.occurrences:
            span = occurrence.span
            if span.path == path and span.start <= offset <= span.end:
                return occurrence
        return None

    def of(self, key: Key) -> list[Occurrence]:
        return [o for o in self.occurrences if o.symbol.key == key]

    def symbol(self, key: Key) -> Symbol | None:
        return next((s for s in self.symbols if s.key == key), None)


def build(result: Result) -> Index:
    """Index a pipeline result: declarations in every loaded file, mentions, template uses."""
    program, bound = result.program, result.bound
    if program is None:
        return Index((), ())
    symbols: list[Symbol] = []
    by_node: dict[int, Symbol] = {}
    symbol: Symbol | None
    for script in program.files:
        for statement in script.statements:
            kind = _kind(statement)
            if kind and isinstance(statement, (ast.Image, ast.Element, ast.Let)):
                symbol = Symbol(kind, statement.name.value, statement.name.span, statement)
                symbols.append(symbol)
                by_node[id(statement)] = symbol
    occurrences = [Occurrence(s, s.span, s.span, True) for s in symbols]
    if bound is not None:
        for shot in bound.shots:
            for mention in shot.mentions:
                binding = mention.binding
                symbol = by_node.get(id(binding.declaration)) if binding else None
                # raw @Image2 resolves too, but it is not the name: no rename, no reference
                if symbol and mention.written == "@" + symbol.name and mention.span.text == mention.written:
                    occurrences.append(Occurrence(symbol, mention.span, mention.span.sub(1, len(mention.written))))
    lets = _visible_lets(program.statements, by_node)
    for text in _all_texts(program.files):
        for name, start, end in template_names(text.value):
            symbol = lets.get(name)
            if symbol is not None:
                span = text.span_of(start, end)
                if span.text == name:
                    occurrences.append(Occurrence(symbol, span, span))
    occurrences.sort(key=lambda o: (o.span.path, o.span.start))
    index = Index(tuple(symbols), tuple(occurrences))
    if result.film is None:
        return index
    return merge([index, _scenes(program.main), *(build(s.result) for s in result.film.scenes)])


def _scenes(film: ast.Script) -> Index:
    """A film's scene names and the `continues` that name them. As `films.run_film` reads
    a film, `continues X` is the first scene named X written above it; one naming no such
    scene (itself, a later one, a typo) is an error there and no use of any scene here,
    so a rename never touches it."""
    seen: dict[str, Symbol] = {}
    symbols: list[Symbol] = []
    occurrences: list[Occurrence] = []
    for scene in film.scenes:
        if scene.continues is not None and (target := seen.get(scene.continues.scene.value)) is not None:
            span = scene.continues.scene.span
            occurrences.append(Occurrence(target, span, span))
        symbol = Symbol("scene", scene.name.value, scene.name.span, scene)
        symbols.append(symbol)
        occurrences.append(Occurrence(symbol, symbol.span, symbol.span, True))
        seen.setdefault(symbol.name, symbol)
    occurrences.sort(key=lambda o: (o.span.path, o.span.start))
    return Index(tuple(symbols), tuple(occurrences))


def merge(indexes: Iterable[Index]) -> Index:
    """One index from several runs; the same place seen twice counts once."""
    symbols: dict[Key, Symbol] = {}
    occurrences: dict[tuple[str, int, Key], Occurrence] = {}
    for index in indexes:
        for symbol in index.symbols:
            symbols.setdefault(symbol.key, symbol)
        for occurrence in index.occurrences:
            occurrences.setdefault((occurrence.span.path, occurrence.span.start, occurrence.symbol.key), occurrence)
    return Index(
        tuple(symbols.values()), tuple(sorted(occurrences.values(), key=lambda o: (o.span.path, o.span.start)))
    )


def template_names(value: str) -> Iterator[tuple[str, int, int]]:
    """Variable lookups in a string's templates: `(name, start, end)` offsets into `value`.

    Skips attribute and filter/test names (`x.name`, `| upper`, `is defined`), keyword
    arguments, string literals, and names the template assigns itself (`for`, `set`,
    macro parameters), so only what a `let` could provide is returned.

    >>> list(template_names("{{ mood }} and {{ brand | upper }}"))
    [('mood', 3, 7), ('brand', 18, 23)]
    """
    local: set[str] = set()
    for match in _ASSIGNED.finditer(value):
        for group in match.groups():
            if group:
                local.update(re.findall(r"[^\W\d]\w*", group))
    for block in _BLOCK.finditer(value):
        inner_start = block.start() + 2
        tokens = [(m.group(), m.start()) for m in _TOKEN.finditer(value, inner_start, block.end() - 2)]
        for i, (token, start) in enumerate(tokens):
            if not NAME.match(token) or token in _KEYWORDS or token in local:
                continue
            previous = tokens[i - 1][0] if i else ""
            following = tokens[i + 1][0] if i + 1 < len(tokens) else ""
            if previous in (".", "|", "is") or following == "=":
                continue
            yield token, start, start + len(token)


def _kind(statement: ast.Statement) -> str | None:
    if isinstance(statement, ast.Image):
        return "image"
    if isinstance(statement, ast.Element):
        return "element"
    if isinstance(statement, ast.Let):
        return "let"
    return None


def _visible_lets(statements: Iterable[ast.Statement], by_node: dict[int, Symbol]) -> dict[str, Symbol]:
    """name -> the `let` whose value templates see: the last one, since it wins everywhere."""
    lets: dict[str, Symbol] = {}
    for statement in statements:
        if isinstance(statement, ast.Let) and id(statement) in by_node:
            lets[statement.name.value] = by_node[id(statement)]
    return lets


def _all_texts(scripts: Iterable[ast.Script]) -> Iterator[ast.Text]:
    for script in scripts:
        for statement in script.statements:
            yield from ast.template_texts(statement)
