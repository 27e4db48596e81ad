"""Loading: the only filesystem reader before running.

Reads scripts as UTF-8 (with a clear diagnostic for anything else), parses them, follows
`use "file"` relative to the including file, and reads `--vars` files (JSON or TOML) and
`--var NAME=VALUE` options. The result is a `Program`: the main script, every used file,
and the declarations the main script sees, in the order it sees them.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from klingspec import ast
from klingspec.diagnostics import Diagnostic
from klingspec.source import Source, Span

MAX_FILE_BYTES = 8 * 1024 * 1024
_DECLARATIONS = (ast.Let, ast.Image, ast.Element)
_VAR_NAME = re.compile(r"[^\W\d]\w*\Z")


@dataclass(frozen=True)
class Var:
    """A template variable set from outside the script (`--var`, `--vars`)."""

    name: str
    value: Any
    span: Span
    origin: str  # "--var", the vars file's path, or `TABLE row N` (`--vars-table`)
    as_text: bool = False  # text to be read as the `let`'s type (a CSV cell; `--var` always is)


@dataclass(frozen=True)
class Program:
    """Everything loaded for one main script, before templating."""

    main: ast.Script
    files: tuple[ast.Script, ...]  # main first, then used files in first-use order
    statements: tuple[ast.Statement, ...]  # used declarations spliced in at their `use`
    variables: tuple[Var, ...] = ()
    dependencies: tuple[str, ...] = field(default=())  # absolute paths read (for watch mode)


class Reader(Protocol):
    """How the pipeline reads a file: at most `limit` + 1 bytes (so a file over the limit
    is seen to be). Scripts and vars files use the default; local images a larger one."""

    def __call__(self, path: str, limit: int = MAX_FILE_BYTES) -> bytes: ...


def read_bytes(path: str, limit: int = MAX_FILE_BYTES) -> bytes:
    """At most `limit` + 1 bytes of a regular file. Anything else is refused before a byte is
    read: a pipe or a device would block for ever (or never end), so it is opened without
    waiting and looked at first."""
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(descriptor, "rb") as handle:
        mode = os.fstat(descriptor).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "it is a directory", path)
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "it is not a regular file (a pipe, a device or a socket)", path)
        data = handle.read(limit + 1)
    return data


SKIPPED_FOLDERS = frozenset({"renders", "node_modules", "__pycache__"})  # and every hidden folder


def discover_scripts(paths: Iterable[str]) -> list[str]:
    """The scripts that `paths` stand for: a folder stands for the .kvs files inside it
    (recursively, sorted, skipping hidden folders and klingspec's own `renders/`); any
    other path stands for itself, so a missing file is reported, not silently dropped.
    `check`, `fmt` and `watch` all find their files here.
    """
    found: list[str] = []
    for path in paths:
        if not os.path.isdir(path):
            found.append(path)
            continue
        for folder, dirs, names in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIPPED_FOLDERS)
            found += [os.path.join(folder, n) for n in sorted(names) if n.endswith(".kvs")]
    return found


def decode(name: str, data: bytes) -> tuple[Source, list[Diagnostic]]:
    """UTF-8 text (a BOM is dropped) or a diagnostic at the first bad byte."""
    if len(data) > MAX_FILE_BYTES:
        source = Source(name, "")
        return source, [
            Diagnostic.of(
                "KVS-file-too-large",
                source.span(0),
                f"{name} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB",
                "a scene script is a few kilobytes; is this the right file?",
            )
        ]
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        good = data[: error.start].decode("utf-8")
        source = Source(name, good + data[error.start :].decode("utf-8", "replace"))
        return source, [
            Diagnostic.of(
                "KVS-encoding",
                source.span(len(good), len(good) + 1),
                f"{name} is not UTF-8 text: byte 0x{data[error.start]:02X} at offset {error.start} is invalid",
                "save the file as UTF-8 (most editors: 'Save with Encoding')",
            )
        ]
    nul = text.find("\x00")
    if nul != -1:
        source = Source(name, text)
        return source, [
            Diagnostic.of(
                "KVS-encoding",
                source.span(nul, nul + 1),
                f"{name} looks binary: it contains a NUL character",
                "a .kvs script is plain UTF-8 text",
            )
        ]
    return Source(name, text), []


@dataclass
class _Splicing:
    """A file being spliced: its statements not yet read, and those it may not give."""

    script: ast.Script
    path: str
    statements: Iterator[ast.Statement]
    top: bool
    ignored: list[ast.Statement] = field(default_factory=list)


class Loader:
    """Loads one main script and what it uses. `overlays` maps absolute paths to
    unsaved editor text, so the language server sees buffers, not the disk."""

    def __init__(self, overlays: Mapping[str, str] | None = None, reader: Reader = read_bytes):
        self.overlays = dict(overlays or {})
        self.reader = reader
        self.diagnostics: list[Diagnostic] = []
        self.scripts: dict[str, ast.Script] = {}
        self.order: list[str] = []

    def read_source(self, path: str, name: str, at: Span | None) -> Source | None:
        key = os.path.abspath(path)
        if key in self.overlays:
            return Source(name, self.overlays[key])
        try:
            data = self.reader(path)
        except FileNotFoundError:
            self._missing(name, at)
            return None
        except IsADirectoryError:
            self._unreadable(name, at, "it is a directory")
            return None
        except OSError as error:
            self._unreadable(name, at, error.strerror or str(error))
            return None
        source, problems = decode(name, data)
        self.diagnostics.extend(problems)
        return None if problems else source

    def _missing(self, name: str, at: Span | None) -> None:
        span = at or Source(name, "").span(0)
        self.diagnostics.append(
            Diagnostic.of(
                "KVS-file-not-found",
                span,
                f"no such file: {name}",
                "paths in `use` are relative to the file that uses them" if at else None,
            )
        )

    def _unreadable(self, name: str, at: Span | None, why: str) -> None:
        span = at or Source(name, "").span(0)
        self.diagnostics.append(Diagnostic.of("KVS-file-unreadable", span, f"cannot read {name}: {why}"))

    def script(self, path: str, name: str, at: Span | None) -> ast.Script | None:
        key = os.path.abspath(path)
        if key not in self.scripts:
            source = self.read_source(path, name, at)
            if source is None:
                return None
            from klingspec.syntax import parse  # the parser loads on the first parse: a cached check never pays for it

            script, problems = parse(source)
            self.diagnostics.extend(problems)
            self.scripts[key] = script
            self.order.append(key)
        return self.scripts[key]

    def splice(self, script: ast.Script, path: str) -> list[ast.Statement]:
        """The statements `script` contributes: its own, with each `use` replaced by the
        used file's declarations (each file once; cycles reported at the `use`).

        Depth first with an explicit stack of open files, not recursion: a chain of
        thousands of `use`s is as good as a short one (it overflowed Python's stack)."""
        out: list[ast.Statement] = []
        key = os.path.abspath(path)
        done = {key}
        chain = [key]  # the open files, outermost first: where a cycle is looked for
        frames = [_Splicing(script, path, iter(script.statements), top=True)]
        while frames:
            frame = frames[-1]
            statement = next(frame.statements, None)
            if statement is None:
                frames.pop()
                chain.pop()
                self._ignored(frame)
            elif isinstance(statement, ast.Use):
                used = self.follow(statement, frame.path, chain, done)
                if used is not None:
                    frames.append(_Splicing(used[0], used[1], iter(used[0].statements), top=False))
                    chain.append(os.path.abspath(used[1]))
            elif frame.top or isinstance(statement, _DECLARATIONS):
                out.append(statement)
            else:
                frame.ignored.append(statement)
        return out

    def _ignored(self, frame: _Splicing) -> None:
        if frame.ignored:
            first = frame.ignored[0]
            count = len(frame.ignored)
            self.diagnostics.append(
                Diagnostic.of(
                    "KVS-use-ignored",
                    first.span,
                    f"{frame.script.source.name} is used by another file, so its settings, frames and shots are "
                    f"ignored ({count} statement{'s' if count != 1 else ''})",
                    "a used file contributes only `let`, `image` and `element`; move the rest to the main script",
                )
            )

    def follow(self, use: ast.Use, path: str, chain: list[str], done: set[str]) -> tuple[ast.Script, str] | None:
        """The script a `use` in `path` names and its path, or None when it adds nothing
        (already spliced, a cycle, unreadable: reported here)."""
        target = os.path.join(os.path.dirname(path), use.path.value)
        key = os.path.abspath(target)
        including = use.span.source.name
        name = os.path.normpath(os.path.join(os.path.dirname(including), use.path.value))
        if key in done and key in chain:  # every open file is done; only then look along the chain
            names = [os.path.basename(p) for p in (*chain[chain.index(key) :], key)]
            if len(names) > 9:  # a long cycle: its ends say where it starts and closes
                names = [*names[:4], f"... ({len(names) - 8} more)", *names[-4:]]
            chain_text = " -> ".join(names)
            self.diagnostics.append(
                Diagnostic.of(
                    "KVS-use-cycle",
                    use.path.span,
                    f"`use` cycle: {chain_text}",
                    "move the shared declarations into a third file that both use",
                )
            )
            return None
        if key in done:
            return None
        done.add(key)
        if not use.path.value.endswith(".kvs") and not os.path.isdir(target):
            # only scripts: `use "/proc/self/environ"` would print a secret in the snippet
            self._unreadable(name, use.path.span, "`use` takes .kvs scripts only")
            return None
        script = self.script(target, name, use.path.span)
        return None if script is None else (script, target)

    def load(self, path: str, name: str | None = None) -> Program | None:
        name = name or path
        script = self.script(path, name, None)
        if script is None:
            return None
        statements = self.splice(script, path)
        return Program(
            script, tuple(self.scripts[k] for k in self.order), tuple(statements), dependencies=tuple(self.order)
        )


def load(
    path: str, *, overlays: Mapping[str, str] | None = None, reader: Reader = read_bytes
) -> tuple[Program | None, list[Diagnostic]]:
    """Load `path` and everything it uses. Returns None for the program when the main
    file itself could not be read."""
    loader = Loader(overlays, reader)
    program = loader.load(path)
    return program, loader.diagnostics


def load_text(name: str, text: str, *, reader: Reader = read_bytes) -> tuple[Program | None, list[Diagnostic]]:
    """Load a script given as text (tests, stdin, editor buffers); `use` is relative to `name`."""
    return load(name, overlays={os.path.abspath(name): text}, reader=reader)


# -- template variables from outside ----------------------------------------------


def parse_var_options(options: tuple[str, ...] | list[str]) -> tuple[list[Var], list[Diagnostic]]:
    """`--var NAME=VALUE` options; values are strings, as typed."""
    variables, problems = [], []
    for option in options:
        source = Source("<--var>", option)
        name, sep, value = option.partition("=")
        if not sep or not _VAR_NAME.match(name):
            problems.append(
                Diagnostic.of(
                    "KVS-var-syntax",
                    source.whole(),
                    f"`--var {option}` is not NAME=VALUE",
                    "write it as --var mood=dusk (names are letters, digits and _)",
                )
            )
            continue
        variables.append(Var(name, value, source.span(0, len(name)), "--var"))
    return variables, problems


def read_vars_file(path: str, reader: Reader = read_bytes) -> tuple[list[Var], list[Diagnostic]]:
    """A `--vars` file: a JSON object or a TOML table of template variables."""
    import json  # only `--vars` needs these: kept off `check`'s start-up path
    import tomllib

    try:
        data = reader(path)
    except OSError as error:
        source = Source(path, "")
        return [], [
            Diagnostic.of("KVS-vars-file", source.span(0), f"cannot read vars file {path}: {error.strerror or error}")
        ]
    source, problems = decode(path, data)
    if problems:
        return [], problems
    text = source.text
    as_toml = path.lower().endswith(".toml") or (
        not path.lower().endswith(".json") and not text.lstrip().startswith("{")
    )
    try:
        values = tomllib.loads(text) if as_toml else json.loads(text)
    except json.JSONDecodeError as error:
        return [], [
            Diagnostic.of(
                "KVS-vars-file", source.span(error.pos, error.pos + 1), f"{path} is not valid JSON: {error.msg}"
            )
        ]
    except tomllib.TOMLDecodeError as error:
        match = re.search(r"at line (\d+), column (\d+)", str(error))
        offset = source.offset(int(match.group(1)), int(match.group(2))) if match else 0
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(error))
        return [], [
            Diagnostic.of("KVS-vars-file", source.span(offset, offset + 1), f"{path} is not valid TOML: {message}")
        ]
    except RecursionError:  # the readers recurse once per level of nesting
        offset = _too_deep(text, outer=0 if as_toml else 1)
        return [], [_nested_too_deep(path, source.span(offset, offset + 1), path)]
    except ValueError:  # Python reads no whole number of more than 4,300 digits
        found = re.search(_LONG_NUMBER, text)
        span = source.span(found.start(), found.end()) if found else source.span(0)
        return [], [Diagnostic.of("KVS-vars-file", span, f"{path} holds a number too long to read", _NUMBER_HELP)]
    if not isinstance(values, dict):
        return [], [Diagnostic.of("KVS-vars-file", source.whole(), f"{path} must hold an object of NAME: VALUE pairs")]
    places = _toml_keys(text) if as_toml else _json_keys(text)
    variables, problems = [], []
    for key, value in values.items():
        start, end = places.get(key, (0, 0))
        span = source.span(start, end)
        if _depth(value) > MAX_VAR_DEPTH:
            problems.append(_nested_too_deep(f"`{key}` in {path}", span, path))
            continue
        variables.append(Var(key, value, span, path))
    return variables, problems


# A template variable holds text, numbers and simple lists; deeper values are refused
# here, so no later phase (templates, the cache, the printer) meets one.
MAX_VAR_DEPTH = 16
_LONG_NUMBER = r"\d{4301,}"
_NUMBER_HELP = "a template variable is text, a number of up to 4,300 digits, or a list of them"


def _nested_too_deep(what: str, span: Span, path: str) -> Diagnostic:
    return Diagnostic.of(
        "KVS-vars-file",
        span,
        f"{what} nests lists or tables more than {MAX_VAR_DEPTH} deep",
        "a template variable holds text, numbers and simple lists",
    )


def _depth(value: Any) -> int:
    """How deeply lists and tables nest in `value` (a scalar is 0), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, level)
            if level > MAX_VAR_DEPTH:
                break
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _too_deep(text: str, outer: int) -> int:
    """The offset where brackets first nest past MAX_VAR_DEPTH (strings skipped) within
    a value: `outer` levels are the file's own (the braces of a JSON object)."""
    depth = 0
    for token in re.finditer(_JSON_TOKEN, text):
        first = token.group()[0]
        if first in "{[":
            depth += 1
            if depth > MAX_VAR_DEPTH + outer:
                return token.start()
        elif first in "}]":
            depth -= 1
    return 0


# Where each top-level key is written, found in one pass over the text (a search per key
# made a 10,000-key file take 30 s). The first place a key is written wins.
_JSON_TOKEN = r""""(?:[^"\\]++|\\.)*+"|[{}\[\]]"""
_JSON_COLON = r"\s*:"
_TOML_KEY = r"""(?m)^[ \t]*(?:\[[ \t]*)?("(?:[^"\\\n]++|\\.)*+"|'[^'\n]*'|[A-Za-z0-9_-]+)[ \t]*[=\]]"""


def _json_keys(text: str) -> dict[str, tuple[int, int]]:
    """The offsets of `"key":` for each key of the top-level object."""
    import json

    places: dict[str, tuple[int, int]] = {}
    depth = 0
    colon = re.compile(_JSON_COLON)
    for token in re.finditer(_JSON_TOKEN, text):
        first = token.group()[0]
        if first in "{[":
            depth += 1
        elif first in "}]":
            depth -= 1
        elif depth == 1:
            after = colon.match(text, token.end())
            if after:
                try:
                    key = json.loads(token.group())
                except ValueError:  # the file parsed, so this is never reached
                    continue
                places.setdefault(key, (token.start(), after.end()))
    return places


def _toml_keys(text: str) -> dict[str, tuple[int, int]]:
    """The offsets of `key =` (or a `[key]` table header) for each key written at a
    line's start; a dotted or inline-table key is not found (its span is the file's start)."""
    places: dict[str, tuple[int, int]] = {}
    for found in re.finditer(_TOML_KEY, text):
        key = found.group(1)
        if key.startswith('"'):
            import json

            try:
                key = json.loads(key)
            except ValueError:
                continue
        elif key.startswith("'"):
            key = key[1:-1]
        places.setdefault(key, (found.start(1), found.end()))
    return places
