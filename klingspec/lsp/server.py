"""`klingspec lsp`: a pygls language server, a thin adapter over `run_pipeline`.

Open buffers are passed to the pipeline as `overlays`, so the editor sees the same
diagnostics `klingspec check` prints (same codes, messages and spans) for what is on
screen, not what is on disk; the features themselves are plain functions of a `Result`
in `klingspec.lsp`. This module only translates: offsets to LSP positions (the one
`Positions` helper below, over pygls' `PositionCodec`: the only place in klingspec that
counts UTF-16), our values to lsprotocol types, and editor events to pipeline runs.

State lives on the server instance (no module globals), so tests and benches can start
as many servers as they like.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.uris import from_fs_path, to_fs_path
from pygls.workspace import PositionCodec

from klingspec import __version__, ast, films
from klingspec.codes import CODES
from klingspec.diagnostics import Diagnostic
from klingspec.films import Film, FilmScene
from klingspec.lsp import completions, fixes, hovers, outline, paths, scenes, symbols
from klingspec.pipeline import Options, Result, run_pipeline
from klingspec.source import Span

DEBOUNCE_SECONDS = 0.05
DOCS_URL = "https://github.com/klingspec/klingspec/blob/main/"  # as SARIF's helpUri (render.TOOL_URI)
MAX_WORKSPACE_FILES = 500
_SKIP_DIRS = {"node_modules", "__pycache__", "venv", "site-packages"}
_RAW_REF = re.compile(r"(Image|Element)[0-9]+\Z")
log = logging.getLogger(__name__)


# -- positions: code-point offsets <-> LSP positions ----------------------------------


@lru_cache(maxsize=64)
def _lines(text: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The lines of `text`, each with its line break, and the offset each starts at."""
    starts = (0, *(m.end() for m in re.finditer("\r\n|\n|\r", text)))
    ends = (*starts[1:], len(text))
    return tuple(text[a:b] for a, b in zip(starts, ends, strict=True)), starts


class Positions:
    """Offsets (code points, as everywhere in klingspec) to LSP positions and back.

    LSP counts a line's characters in the negotiated encoding: UTF-16 code units unless
    the client offered utf-8 or utf-32. An astral character (an emoji) is 2 UTF-16
    units, 4 UTF-8 bytes, 1 code point. pygls' `PositionCodec` (the workspace's, so the
    one pygls applies edits with) does that counting within a line.
    """

    def __init__(self, codec: PositionCodec | None = None):
        self.codec = codec or PositionCodec(lsp.PositionEncodingKind.Utf16)

    # Hand-written, because PositionCodec cannot do it: splitting the text into lines (the
    # codec takes a list of lines, and pygls' own, from `str.splitlines`, also break at \v,
    # \f, \x1c-\x1e, \x85, U+2028 and U+2029, where LSP breaks only at \n, \r\n and \r), and
    # clamping a column past a line's end (the codec moves it past the line break, or onto
    # the last character of the last line, and writes that into the caller's Position; LSP
    # says it means the end of the line).
    def position(self, text: str, offset: int) -> lsp.Position:
        offset = max(0, min(offset, len(text)))
        lines, starts = _lines(text)
        line = bisect.bisect_right(starts, offset) - 1
        return self.codec.position_to_client_units(lines, lsp.Position(line, offset - starts[line]))

    def offset(self, text: str, position: lsp.Position) -> int:
        lines, starts = _lines(text)
        if position.line >= len(lines):
            return len(text)
        length = self.codec.client_num_units(lines[position.line].rstrip("\r\n"))
        clamped = lsp.Position(position.line, min(position.character, length))
        return starts[position.line] + self.codec.position_from_client_units(lines, clamped).character

    def range(self, span: Span) -> lsp.Range:
        text = span.source.text
        return lsp.Range(self.position(text, span.start), self.position(text, span.end))


# -- the server --------------------------------------------------------------------


@dataclass(frozen=True)
class _Refused:
    """A request whose params could not be read: answered with its error, not dropped."""

    id: int | str
    method: str
    error: lsp.ResponseError
    jsonrpc: str = "2.0"


class _AnsweringProtocol(LanguageServerProtocol):
    """pygls reports a request with mistyped params (`"position": "oops"`) to the user in
    a window message and never answers it, so the client waits forever: here it gets the
    JSON-RPC error response the specification asks for (-32602, invalid params)."""

    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except JsonRpcException as error:
            if "id" not in data or "method" not in data:
                raise  # a notification has no one to answer; pygls logs it
            method = str(data["method"])
            words = f"the params of {method} are not what the LSP specification says"
            return _Refused(data["id"], method, lsp.ResponseError(error.code, words))

    def handle_message(self, message: Any) -> None:
        if isinstance(message, _Refused):
            self._send_response(message.id, error=message.error)
            return
        super().handle_message(message)


class KlingspecServer(LanguageServer):
    """Open documents -> pipeline results (cached per buffer state) -> LSP answers."""

    def __init__(self, options: Options = Options()):
        super().__init__("klingspec", __version__, protocol_cls=_AnsweringProtocol)
        # as `check`: checks only, so a film's continued scenes are not compiled again with
        # a stand-in start frame (films._priced); costs come from each bound script
        self.options = replace(options, validate_schema=False, library_ok=True, check_only=True)
        self.generation = 0  # bumped on every buffer event: cached results go stale
        self.cache: dict[str, tuple[int, str, Result]] = {}
        self.blanked: dict[str, tuple[int, str, int, Result]] = {}  # completion's re-checks
        self.film_cache: dict[str, tuple[int, Result]] = {}  # films checked for a scene script's diagnostics
        self.scene_lines: dict[str, tuple[tuple[int, int], list[str]]] = {}  # films.scene_paths by (mtime, size)
        self.pending: dict[str, asyncio.TimerHandle] = {}
        self.last_check: dict[str, float] = {}

    # documents and paths
    @property
    def positions(self) -> Positions:
        return Positions(self.workspace.position_codec)

    def path(self, uri: str) -> str:
        path = to_fs_path(uri) if uri.startswith("file:") else None
        return os.path.abspath(path or re.sub(r"[^\w.-]", "_", uri))

    def file_path(self, uri: str) -> str | None:
        """The file of a `file:` document (None for an unsaved buffer: it has no folder)."""
        return self.path(uri) if uri.startswith("file:") else None

    def uri(self, path: str) -> str:
        uri: str  # pygls leaves `text_documents` unannotated
        for uri in self.workspace.text_documents:
            if self.path(uri) == path:
                return uri
        return from_fs_path(path) or path

    def overlays(self) -> dict[str, str]:
        return {self.path(uri): doc.source for uri, doc in self.workspace.text_documents.items()}

    def text(self, uri: str) -> str:
        return self.workspace.get_text_document(uri).source

    def result(self, uri: str) -> tuple[str, Result]:
        """The pipeline result of the buffer as it is now (cached until any buffer changes)."""
        text = self.text(uri)
        cached = self.cache.get(uri)
        if cached and cached[0] == self.generation and cached[1] == text:
            return text, cached[2]
        result = run_pipeline(self.path(uri), replace(self.options, overlays=self.overlays()))
        self.cache[uri] = (self.generation, text, result)
        return text, result

    def completion_result(self, uri: str, text: str, offset: int) -> Result:
        """The result completion reads. In a film, the line being typed inside a scene
        written in place (`shot a 5s "@he`, an unclosed string) is a syntax error, and
        the parser's recovery drops the whole `scene { }` block with it, and the scene's
        bindings and variables that completion offers. Then, when what is completed needs
        them (`completions.needs_result`), the film is checked once more with that one
        line blanked (same length: offsets hold), so the block's other lines answer as a
        script's do while one of its lines is being typed; that check is kept for the
        buffer's text and line, so the next keystroke's completion of the same text reuses it."""
        _, result = self.result(uri)
        program = result.program
        if program is None or not program.main.partial or scenes.inline_at(result, offset):
            return result
        if not completions.needs_result(text, offset):
            return result
        path = self.path(uri)
        line_start = text.rfind("\n", 0, offset) + 1
        line_end = text.find("\n", offset)
        line_end = len(text) if line_end == -1 else line_end
        if not any(
            d.code.startswith("KVS-syntax") and d.span.path == path and line_start <= d.span.start <= line_end
            for d in result.diagnostics
        ):
            return result  # the line being typed is not what broke the parse
        cached = self.blanked.get(uri)
        if cached and cached[0] == self.generation and cached[1] == text and cached[2] == line_start:
            again = cached[3]
        else:
            blanked = text[:line_start] + " " * (line_end - line_start) + text[line_end:]
            again = run_pipeline(path, replace(self.options, overlays={**self.overlays(), path: blanked}))
            self.blanked[uri] = (self.generation, text, line_start, again)
        return again if scenes.inline_at(again, offset) is not None else result

    def results_around(self, uri: str) -> Iterable[Result]:
        """This document's result, then every other open document's and workspace script's:
        the scripts a rename or a reference search must look through."""
        yield self.result(uri)[1]
        seen = {self.path(uri)}
        for other in list(self.workspace.text_documents):
            if self.path(other) not in seen:
                seen.add(self.path(other))
                yield self.result(other)[1]
        overlays = self.overlays()
        for path in self.workspace_scripts():
            if path not in seen:
                seen.add(path)
                yield run_pipeline(path, replace(self.options, overlays=overlays))

    def workspace_scripts(self) -> list[str]:
        roots = [to_fs_path(f.uri) for f in self.workspace.folders.values()] or [self.workspace.root_path]
        found: list[str] = []
        for root in filter(None, roots):
            for folder, dirs, files in os.walk(root):
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS)
                found += [os.path.join(folder, f) for f in sorted(files) if f.endswith(".kvs")]
                if len(found) >= MAX_WORKSPACE_FILES:
                    return found[:MAX_WORKSPACE_FILES]
        return [os.path.abspath(p) for p in found]

    # diagnostics: at most one check per document per DEBOUNCE_SECONDS; the first of a
    # burst runs at once (no added latency when typing pauses), the last always runs
    def schedule(self, uri: str) -> None:
        if uri in self.pending:
            return  # a check is coming and will read the newest text
        loop = asyncio.get_running_loop()
        delay = max(0.0, self.last_check.get(uri, float("-inf")) + DEBOUNCE_SECONDS - loop.time())
        self.pending[uri] = loop.call_later(delay, self.check_now, uri)

    def check_now(self, uri: str) -> None:
        self.pending.pop(uri, None)
        if uri not in self.workspace.text_documents:
            return
        self.last_check[uri] = asyncio.get_running_loop().time()
        try:
            self.publish(uri)
        except Exception as error:  # a bug: tell the editor, keep serving
            log.exception("checking %s failed", uri)
            self.window_log_message(lsp.LogMessageParams(lsp.MessageType.Error, f"klingspec: {error!r}"))

    def publish(self, uri: str) -> None:
        _text, result = self.result(uri)
        version = self.workspace.get_text_document(uri).version
        diagnostics = [self.diagnostic(d, anchor, uri) for d, anchor in self.diagnostics_of(uri, result)]
        self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri, diagnostics, version))

    def diagnostics_of(self, uri: str, result: Result) -> list[tuple[Diagnostic, Result | FilmScene]]:
        """What the document `uri` shows, each diagnostic with what places it: a film's
        scene's with that scene (its `scene` line, or in a scene written in place, the
        `use` that brings the file in), the others with the document's result. A scene
        script that films of the workspace name shows what those films say of it (as
        `check FOLDER` does): checked alone, a continued scene would want a start frame."""
        film = result.film
        if film is not None:
            placed: list[tuple[Diagnostic, Result | FilmScene]] = []
            of_scenes = set()
            for scene in film.scenes:
                for d in scene.result.diagnostics:
                    of_scenes.add(d.sort_key())
                    placed.append((d, scene))
            own = [
                (d, _scene_of(film, result.path, d) or result)
                for d in result.diagnostics
                if d.sort_key() not in of_scenes
            ]
            return sorted(own + placed, key=lambda pair: pair[0].sort_key())
        films = self.films_naming(uri) if result.program is not None and not result.program.main.film else []
        if not films:
            return [(d, result) for d in result.diagnostics]
        path = self.path(uri)
        seen: set[tuple[str, int, int, int, str, str]] = set()
        shown: list[tuple[Diagnostic, Result | FilmScene]] = []
        for film_result in films:
            assert film_result.film is not None
            ours = [s for s in film_result.film.scenes if s.scene.path is not None and os.path.abspath(s.path) == path]
            found = [(d, s.result) for s in ours for d in s.result.diagnostics]
            # the film's own rules about this script (a `start` of a continued scene) are at its lines
            found += [(d, result) for d in film_result.diagnostics if d.span.path == path]
            for d, where in found:
                if d.sort_key() not in seen:
                    seen.add(d.sort_key())
                    shown.append((d, where))
        return sorted(shown, key=lambda pair: pair[0].sort_key())

    def films_naming(self, uri: str) -> list[Result]:
        """The results of the workspace's films that name the file of `uri` as a scene's
        script (`films.scene_paths`, read again only when a film's file changes on disk)."""
        path = self.file_path(uri)
        if path is None:
            return []
        found = []
        for film_path in self.workspace_scripts():
            if film_path != path and path in self.scenes_of(film_path):
                found.append(self.film_result(film_path))
        return [r for r in found if r.film is not None]

    def scenes_of(self, film_path: str) -> list[str]:
        try:
            stat = os.stat(film_path)
        except OSError:
            return []
        key = (stat.st_mtime_ns, stat.st_size)
        cached = self.scene_lines.get(film_path)
        if cached is None or cached[0] != key:
            cached = (key, [os.path.abspath(p) for p in films.scene_paths(film_path)])
            self.scene_lines[film_path] = cached
        return cached[1]

    def film_result(self, film_path: str) -> Result:
        cached = self.film_cache.get(film_path)
        if cached is not None and cached[0] == self.generation:
            return cached[1]
        result = run_pipeline(film_path, replace(self.options, overlays=self.overlays()))
        self.film_cache[film_path] = (self.generation, result)
        return result

    def dependents(self, uri: str) -> list[str]:
        """Other open documents whose last result read `uri`'s file (a `use`d library),
        and, when `uri` is a film, its open scene scripts (they show what it says of them)."""
        path = self.path(uri)
        scenes_of = set(self.scenes_of(path)) if self.file_path(uri) is not None else set()
        return [
            other
            for other, (_, _, result) in self.cache.items()
            if other != uri
            and other in self.workspace.text_documents
            and ((result.program is not None and path in result.program.dependencies) or self.path(other) in scenes_of)
        ]

    def changed(self, uri: str) -> None:
        self.generation += 1
        for target in (uri, *self.dependents(uri)):
            self.schedule(target)

    # conversions
    def diagnostic(self, d: Diagnostic, result: Result | FilmScene, uri: str) -> lsp.Diagnostic:
        """One klingspec diagnostic for the document `uri`. One found in a used file is
        shown on the `use` that brings that file in (of `result`), pointing at the real
        place; one of a film's scene (`result` a `FilmScene`) from a file of its own, on
        that scene's `scene` line, or in a scene written in place, on its `use`."""
        positions = self.positions
        path = self.path(uri)
        related = [
            lsp.DiagnosticRelatedInformation(self.location(r.span), r.message)
            for r in d.related
            if os.path.isabs(r.span.path)
        ]
        message = d.message
        if d.span.path == path:
            where = positions.range(d.span)
        else:
            use: ast.Use | ast.Scene | None
            if isinstance(result, FilmScene):
                use = _use_reaching(result.result, d.span.path) if result.scene.body is not None else None
                use = use or result.scene
            else:
                use = _use_reaching(result, d.span.path)
            where = positions.range(use.span) if use else lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0))
            line, column = d.span.start_position
            message = f"{os.path.relpath(d.span.path, os.path.dirname(path))}:{line}:{column}: {message}"
            if os.path.isabs(d.span.path):
                related.insert(0, lsp.DiagnosticRelatedInformation(self.location(d.span), d.message))
        if d.help:
            if self._supports_related():
                related.append(
                    lsp.DiagnosticRelatedInformation(
                        self.location(d.span, uri if d.span.path == path else None), f"help: {d.help}"
                    )
                )
            else:
                message += f"\n= help: {d.help}"
        severity = {"error": lsp.DiagnosticSeverity.Error, "warning": lsp.DiagnosticSeverity.Warning}.get(
            d.severity, lsp.DiagnosticSeverity.Information
        )
        doc = CODES[d.code].doc if d.code in CODES else None
        return lsp.Diagnostic(
            where,
            message,
            severity=severity,
            code=d.code,
            code_description=lsp.CodeDescription(DOCS_URL + doc) if doc else None,
            source="klingspec",
            related_information=related or None,
            data={"help": d.help} if d.help else None,
        )

    def location(self, span: Span, uri: str | None = None) -> lsp.Location:
        return lsp.Location(uri or self.uri(span.path), self.positions.range(span))

    def _supports_related(self) -> bool:
        publish = self.client_capabilities.text_document and self.client_capabilities.text_document.publish_diagnostics
        return bool(publish and publish.related_information)

    def offset(self, uri: str, position: lsp.Position) -> tuple[str, int]:
        text = self.text(uri)
        return text, self.positions.offset(text, position)


def _use_reaching(result: Result, path: str) -> ast.Use | None:
    """The main script's `use` through which the file `path` was loaded."""
    program = result.program
    if program is None:
        return None
    by_path = {s.source.name: s for s in program.files}

    def reaches(script: ast.Script, seen: set[str]) -> bool:
        for use in script.of(ast.Use):
            target = os.path.abspath(os.path.join(os.path.dirname(script.source.name), use.path.value))
            if target == path:
                return True
            if target in by_path and target not in seen:
                seen.add(target)
                if reaches(by_path[target], seen):
                    return True
        return False

    main = program.main
    for use in main.of(ast.Use):
        target = os.path.abspath(os.path.join(os.path.dirname(main.source.name), use.path.value))
        if target == path or (target in by_path and reaches(by_path[target], {target})):
            return use
    return None


def _scene_of(film: Film, film_path: str, d: Diagnostic) -> FilmScene | None:
    """The scene a film's own diagnostic found in another file is about (a continued
    scene's own `start`, in its script): the scene its related places are in, else the
    first scene whose script is (or reads) that file; None for one at the film's lines."""
    if d.span.path == film_path:
        return None
    for scene in film.scenes:
        span = scene.scene.span
        if any(r.span.path == film_path and span.start <= r.span.start <= span.end for r in d.related):
            return scene
    target = os.path.abspath(d.span.path)
    for scene in film.scenes:
        program = scene.result.program
        read = {os.path.abspath(p) for p in program.dependencies} if program is not None else set()
        if scene.scene.path is not None and (os.path.abspath(scene.path) == target or target in read):
            return scene
    return None


# -- features ------------------------------------------------------------------------

_COMPLETION_KINDS = {
    "keyword": lsp.CompletionItemKind.Keyword,
    "value": lsp.CompletionItemKind.EnumMember,
    "variable": lsp.CompletionItemKind.Variable,
    "reference": lsp.CompletionItemKind.Reference,
    "folder": lsp.CompletionItemKind.Folder,
    "file": lsp.CompletionItemKind.File,
    "scene": lsp.CompletionItemKind.Module,
}
_SYMBOL_KINDS = {
    "shot": lsp.SymbolKind.Event,
    "scene": lsp.SymbolKind.Module,
    "image": lsp.SymbolKind.File,
    "element": lsp.SymbolKind.Object,
    "let": lsp.SymbolKind.Variable,
    "field": lsp.SymbolKind.Field,
}


def create_server(options: Options = Options()) -> KlingspecServer:
    """A server with every feature registered; `start_io()` runs it on stdio."""
    server = KlingspecServer(options)

    @server.feature(lsp.INITIALIZE)
    def initialize(ls: KlingspecServer, params: lsp.InitializeParams) -> None:
        settings = params.initialization_options or {}
        if isinstance(settings, dict) and (settings.get("var") or settings.get("vars")):
            ls.options = replace(
                ls.options,
                var_options=ls.options.var_options + tuple(settings.get("var", ())),
                var_files=ls.options.var_files + tuple(settings.get("vars", ())),
            )

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: KlingspecServer, params: lsp.DidOpenTextDocumentParams) -> None:
        ls.changed(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: KlingspecServer, params: lsp.DidChangeTextDocumentParams) -> None:
        ls.changed(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: KlingspecServer, params: lsp.DidSaveTextDocumentParams) -> None:
        ls.changed(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: KlingspecServer, params: lsp.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.generation += 1
        ls.cache.pop(uri, None)
        handle = ls.pending.pop(uri, None)
        if handle:
            handle.cancel()
        ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri, []))

    @server.feature(lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(trigger_characters=["@", "{", " ", '"', "/"]))
    def completion(ls: KlingspecServer, params: lsp.CompletionParams) -> lsp.CompletionList:
        uri = params.text_document.uri
        text, offset = ls.offset(uri, params.position)
        result = ls.completion_result(uri, text, offset)
        end = ls.positions.position(text, offset)
        items = [
            lsp.CompletionItem(
                c.label,
                kind=_COMPLETION_KINDS[c.kind],
                detail=c.detail,
                filter_text=c.label,
                sort_text=f"{i:04}",
                text_edit=lsp.TextEdit(lsp.Range(ls.positions.position(text, c.start), end), c.new_text),
            )
            for i, c in enumerate(completions.complete(result, text, offset, ls.file_path(uri)))
        ]
        return lsp.CompletionList(is_incomplete=False, items=items)

    @server.feature(lsp.TEXT_DOCUMENT_HOVER)
    def hover(ls: KlingspecServer, params: lsp.HoverParams) -> lsp.Hover | None:
        uri = params.text_document.uri
        _, offset = ls.offset(uri, params.position)
        _, result = ls.result(uri)
        found = hovers.hover(result, symbols.build(result), ls.path(uri), offset)
        if found is None:
            return None
        hover_caps = ls.client_capabilities.text_document and ls.client_capabilities.text_document.hover
        formats = (hover_caps.content_format if hover_caps else None) or [lsp.MarkupKind.Markdown]
        kind = lsp.MarkupKind.Markdown if lsp.MarkupKind.Markdown in formats else lsp.MarkupKind.PlainText
        return lsp.Hover(lsp.MarkupContent(kind, found.markdown), ls.positions.range(found.span))

    @server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
    def definition(ls: KlingspecServer, params: lsp.DefinitionParams) -> list[lsp.Location] | None:
        uri = params.text_document.uri
        _, offset = ls.offset(uri, params.position)
        _, result = ls.result(uri)
        path = ls.path(uri)
        occurrence = symbols.build(result).at(path, offset)
        if occurrence is not None:  # a binding, a `let`, a film's scene (at a `continues`)
            return [ls.location(occurrence.symbol.span)]
        start = lsp.Position(0, 0)
        script = paths.script_at(result, offset)  # `use "lib.kvs"`, a film's `scene NAME "FILE"`
        if script is not None:
            if os.path.isfile(script) or script in ls.overlays():
                return [lsp.Location(ls.uri(script), lsp.Range(start, start))]
            return None
        local = paths.local_path_at(scenes.within(result, offset), path, offset)
        if local is not None and os.path.isfile(local.path):  # a local image: open the file itself
            return [lsp.Location(ls.uri(local.path), lsp.Range(start, start))]
        return None

    def symbol_at(ls: KlingspecServer, uri: str, position: lsp.Position) -> symbols.Occurrence | None:
        _, offset = ls.offset(uri, position)
        _, result = ls.result(uri)
        return symbols.build(result).at(ls.path(uri), offset)

    @server.feature(lsp.TEXT_DOCUMENT_REFERENCES)
    def references(ls: KlingspecServer, params: lsp.ReferenceParams) -> list[lsp.Location] | None:
        uri = params.text_document.uri
        occurrence = symbol_at(ls, uri, params.position)
        if occurrence is None:
            return None
        index = symbols.merge(symbols.build(r) for r in ls.results_around(uri))
        return [
            ls.location(o.span)
            for o in index.of(occurrence.symbol.key)
            if params.context.include_declaration or not o.declaration
        ]

    @server.feature(lsp.TEXT_DOCUMENT_PREPARE_RENAME)
    def prepare_rename(ls: KlingspecServer, params: lsp.PrepareRenameParams) -> lsp.PrepareRenamePlaceholder | None:
        occurrence = symbol_at(ls, params.text_document.uri, params.position)
        if occurrence is None:
            return None
        return lsp.PrepareRenamePlaceholder(ls.positions.range(occurrence.name_span), occurrence.symbol.name)

    @server.feature(lsp.TEXT_DOCUMENT_RENAME)
    def rename(ls: KlingspecServer, params: lsp.RenameParams) -> lsp.WorkspaceEdit | None:
        uri = params.text_document.uri
        occurrence = symbol_at(ls, uri, params.position)
        if occurrence is None:
            return None
        binding = occurrence.symbol.kind in ("image", "element")
        new = params.new_name.lstrip("@") if binding else params.new_name
        if not symbols.NAME.match(new):
            raise JsonRpcInvalidParams(
                f"`{params.new_name}` is not a name: letters, digits and _, not starting with a digit"
            )
        if binding and _RAW_REF.match(new):
            raise JsonRpcInvalidParams(f"`{new}` looks like a raw @ImageN/@ElementN reference")
        if isinstance(occurrence.symbol.statement, ast.Scene) and new != occurrence.symbol.name:
            program = ls.result(uri)[1].program
            if program is not None and any(s.name.value == new for s in program.main.scenes):
                # two scenes of one name: `continues` would name another scene than before
                raise JsonRpcInvalidParams(f"a scene named `{new}` is already in this film")
        index = symbols.merge(symbols.build(r) for r in ls.results_around(uri))
        changes: dict[str, list[lsp.TextEdit]] = {}
        for found in index.of(occurrence.symbol.key):
            changes.setdefault(ls.uri(found.name_span.path), []).append(
                lsp.TextEdit(ls.positions.range(found.name_span), new)
            )
        return lsp.WorkspaceEdit(changes=changes)

    @server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def document_symbol(
        ls: KlingspecServer, params: lsp.DocumentSymbolParams
    ) -> list[lsp.DocumentSymbol] | list[lsp.SymbolInformation]:
        uri = params.text_document.uri
        _, result = ls.result(uri)
        entries = outline.outline(result, ls.path(uri))
        caps = ls.client_capabilities.text_document and ls.client_capabilities.text_document.document_symbol
        positions = ls.positions

        def convert(entry: outline.Entry) -> lsp.DocumentSymbol:
            return lsp.DocumentSymbol(
                entry.name,
                _SYMBOL_KINDS[entry.kind],
                positions.range(entry.span),
                positions.range(entry.selection),
                detail=entry.detail,
                children=[convert(c) for c in entry.children] or None,
            )

        if caps and caps.hierarchical_document_symbol_support:
            return [convert(e) for e in entries]

        def flatten(entry: outline.Entry, container: str | None = None) -> Iterable[lsp.SymbolInformation]:
            yield lsp.SymbolInformation(
                location=lsp.Location(uri, positions.range(entry.span)),
                name=entry.name,
                kind=_SYMBOL_KINDS[entry.kind],
                container_name=container,
            )
            for child in entry.children:
                yield from flatten(child, entry.name)

        return [symbol for e in entries for symbol in flatten(e)]

    @server.feature(lsp.TEXT_DOCUMENT_FORMATTING)
    def formatting(ls: KlingspecServer, params: lsp.DocumentFormattingParams) -> list[lsp.TextEdit]:
        try:
            from klingspec.formatting import format_text
        except ImportError:  # `fmt` not available in this build: nothing to offer
            return []
        uri = params.text_document.uri
        text = ls.text(uri)
        try:
            formatted = format_text(text, ls.path(uri))
        except Exception as error:  # the formatter refused its own output: change nothing
            log.warning("formatting %s failed: %r", uri, error)
            return []
        if formatted is None or formatted == text:
            return []
        whole = lsp.Range(lsp.Position(0, 0), ls.positions.position(text, len(text)))
        return [lsp.TextEdit(whole, formatted)]

    @server.feature(
        lsp.TEXT_DOCUMENT_CODE_ACTION, lsp.CodeActionOptions(code_action_kinds=[lsp.CodeActionKind.QuickFix])
    )
    def code_action(ls: KlingspecServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
        uri = params.text_document.uri
        text, result = ls.result(uri)
        positions = ls.positions
        start = positions.offset(text, params.range.start)
        end = positions.offset(text, params.range.end)
        path = ls.path(uri)
        actions = []
        for d, anchor in ls.diagnostics_of(uri, result):  # what the document shows: a scene's as its film says
            if d.span.path != path or d.span.end < start or d.span.start > end:
                continue
            for fix in fixes.quick_fixes(d):
                edits = [lsp.TextEdit(positions.range(e.span), e.new_text) for e in fix.edits]
                actions.append(
                    lsp.CodeAction(
                        fix.title,
                        kind=lsp.CodeActionKind.QuickFix,
                        diagnostics=[ls.diagnostic(d, anchor, uri)],
                        is_preferred=fix.preferred or None,
                        edit=lsp.WorkspaceEdit(changes={uri: edits}),
                    )
                )
        return actions

    return server


def main(options: Options = Options()) -> None:
    """Serve on stdin/stdout until the client says exit."""
    create_server(options).start_io()
