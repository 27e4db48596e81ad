"""Completion: what may be typed at a cursor, as plain items.

The context comes from the text around the cursor, not from the parse, because the line
being typed is usually not valid yet (`shot a 5s "@he` is an unclosed string). The
candidates come from the last pipeline result of the same buffer: declarations are on
other lines, which still parse. Values for settings come from the capability matrix of
the script's model (`targets.py`), so completion offers what the checker accepts.

In a film, a line inside a scene written in place is completed from that scene's own
result (`scenes.within`), as a script's line is; after `continues ` come the scenes a
scene may continue: those written above it (`films.run_film`'s rule). A statement
keyword at a film's top level is `scene` alone; inside a scene, anything but `scene`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from klingspec import ast
from klingspec.binding import FORMAT_WORDS
from klingspec.lsp import scenes
from klingspec.lsp.paths import IMAGE_EXTENSIONS, describe
from klingspec.pipeline import Result
from klingspec.syntax import STATEMENT_KEYWORDS
from klingspec.targets import Model, default_model_id, known_ids
from klingspec.targets import model as lookup_model


@dataclass(frozen=True)
class Completion:
    """One candidate: `new_text` replaces the text from `start` to the cursor."""

    label: str
    kind: str  # "keyword" | "value" | "variable" | "reference" | "folder" | "file" | "scene"
    detail: str
    new_text: str
    start: int


_MENTION = re.compile(r"(?<![\w@])@(\w*)\Z")
_WORD = re.compile(r"[^\W\d]?\w*\Z")
_SETTING = re.compile(r"^[ \t]*(aspect|resolution|format|audio|model)[ \t]+(\S*)\Z")
_STATEMENT = re.compile(r"^[ \t]*(\w*)\Z")
_CONTINUES = re.compile(r"""^[ \t]*scene[ \t]+\w+(?:[ \t]+"(?:[^"\\\n]|\\.)*")?[ \t]+continues[ \t]+(\w*)\Z""")
# What stands before the string of a URI on its line: `image NAME =`, `front`, `refs`
# (or `refs "a", ` further along a list), `start`, `end`; a one-line element block too.
_URI_BEFORE = re.compile(
    r"""^[ \t]*(?:image[ \t]+\w+[ \t]*=|(?:element[ \t]+\w+[ \t]*\{[ \t]*)?"""
    r"""(?:front|refs(?:[ \t]+"(?:[^"\\\n]|\\.)*"[ \t]*,)*)|start|end)[ \t]*\Z"""
)
_SCHEME = re.compile(r"(?![A-Za-z]:[\\/])[A-Za-z][A-Za-z0-9+.-]*:")  # `https:`, but `C:/` is a path
MAX_PATH_ITEMS = 500


def complete(result: Result | None, text: str, offset: int, path: str | None = None) -> list[Completion]:
    """Candidates at `offset` of `text` (the buffer that `result` was computed from);
    `path` is the buffer's file, against which local image paths are completed."""
    line_start = text.rfind("\n", 0, offset) + 1
    prefix = text[line_start:offset]
    film = result if result is not None and result.film is not None else None
    if film is not None:
        result = scenes.within(film, offset)
    string = string_start(text, offset)
    if string is not None:
        if path is not None and _uri_string(text, line_start, string):
            return _paths(result, text[string + 1 : offset], offset, path)
        inside = text[string:offset]
        if _in_template(inside):
            found = _WORD.search(inside)
            assert found is not None  # every part of _WORD is optional
            word = found.group()
            return _variables(result, offset - len(word))
        mention = _MENTION.search(inside)
        if mention:
            return _references(result, offset - len(mention.group()))
        return []
    after = _CONTINUES.match(prefix)
    if after:
        return _scene_names(film, line_start, offset - len(after.group(1)))
    setting = _SETTING.match(prefix)
    if setting:
        return _values(result, setting.group(1), offset - len(setting.group(2)))
    statement = _STATEMENT.match(prefix)
    if statement:
        start = offset - len(statement.group(1))
        if _in_element_block(text, line_start):
            return [Completion(k, "keyword", "element field", k, start) for k in ("front", "refs")]
        if film is not None and scenes.inline_at(film, offset) is None:
            return [Completion("scene", "keyword", "statement", "scene", start)]  # a film holds scenes only
        words = [k for k in STATEMENT_KEYWORDS if film is None or k != "scene"]  # a scene holds no scene
        return [Completion(k, "keyword", "statement", k, start) for k in words]
    return []


def needs_result(text: str, offset: int) -> bool:
    """Whether what is completed at `offset` comes from the script's declarations or
    settings (`@` references, `{{ }}` variables, image paths, setting values, statement
    keywords, which depend on where in a film the line is): what a line of a scene
    written in place, while it is being typed, needs its scene's result for. Plain words
    of a prompt, a `continues`, or nothing at all do not."""
    line_start = text.rfind("\n", 0, offset) + 1
    prefix = text[line_start:offset]
    string = string_start(text, offset)
    if string is not None:
        inside = text[string:offset]
        return _uri_string(text, line_start, string) or _in_template(inside) or bool(_MENTION.search(inside))
    if _CONTINUES.match(prefix):
        return False
    return bool(_SETTING.match(prefix) or _STATEMENT.match(prefix))


def _scene_names(film: Result | None, line_start: int, start: int) -> list[Completion]:
    """The scenes written above the line at `line_start`, each name once (`continues X`
    starts on the first scene named X), with its seconds: a scene can only continue an
    earlier one, so the chains run forward."""
    if film is None or film.film is None:
        return []
    items: dict[str, Completion] = {}
    for scene in film.film.scenes:
        name = scene.name
        if scene.scene.span.start < line_start and name not in items:
            items[name] = Completion(name, "scene", scenes.seconds(scene) or "seconds unknown", name, start)
    return list(items.values())


def string_start(text: str, offset: int) -> int | None:
    """The offset of the opening quote of the string literal holding `offset`, if any.

    Scans like the tokenizer: a comment ends at the line break, `"..."` at its closing
    quote or the line break (an unclosed string is what is being typed), `\"\"\"...\"\"\"`
    at its closing quotes or the end of the text.
    """
    i, n = 0, len(text)
    while i < offset:
        ch = text[i]
        if ch == "#":
            end = text.find("\n", i)
            if end == -1:
                return None
            i = end + 1
        elif ch == '"':
            start = i
            if text.startswith('"""', i):
                j = i + 3
                while j < n and not text.startswith('"""', j):
                    j += 2 if text[j] == "\\" else 1
                content_end, end = min(j, n), min(j + 3, n)
            else:
                j = i + 1
                while j < n and text[j] not in '"\n':
                    j += 2 if text[j] == "\\" else 1
                content_end = min(j, n)
                end = j + 1 if j < n and text[j] == '"' else content_end
            if start < offset <= content_end:
                return start
            i = max(end, i + 1)
        else:
            i += 1
    return None


def _uri_string(text: str, line_start: int, string: int) -> bool:
    """Whether the single-line string opening at `string` is a URI: of an `image`, an
    element's `front` or `refs` (a continuation line of a `refs` list too), a frame."""
    if text.startswith('"""', string):
        return False
    before = text[line_start:string]
    if _URI_BEFORE.match(before):
        return True
    if before.strip():
        return False
    continued = _code(text[:line_start]).rstrip().endswith(",")  # a `refs` list goes on after a comma
    return continued and _in_element_block(text, line_start)


def _paths(result: Result | None, written: str, offset: int, path: str) -> list[Completion]:
    """The entries of the folder the path typed so far points into, replacing its last
    segment: folders (with `/`) and image files by extension; hidden ones only once the
    segment starts with a dot. Nothing for a URL, a template or an escape."""
    if any(c in written for c in '\\{}"') or written.startswith("//") or _SCHEME.match(written):
        return []
    head = written[: written.rfind("/") + 1]
    segment = written[len(head) :]
    folder = os.path.join(os.path.dirname(path), head) if head else os.path.dirname(path)
    start = offset - len(segment)
    extensions = set(IMAGE_EXTENSIONS) | ({"gif"} & set(_model(result).image_formats))
    folders: list[Completion] = []
    files: list[Completion] = []
    try:
        entries = sorted(os.scandir(folder), key=lambda e: (e.name.lower(), e.name))
    except (OSError, ValueError):
        return []
    for entry in entries:
        name = entry.name
        if (name.startswith(".") and not segment.startswith(".")) or "\n" in name:
            continue
        try:
            is_folder = entry.is_dir()
        except OSError:
            continue
        if is_folder:
            folders.append(Completion(name + "/", "folder", "folder", _escape(name) + "/", start))
        elif name.rpartition(".")[2].lower() in extensions and "." in name:
            detail = describe(entry.path) or "image file"
            files.append(Completion(name, "file", detail, _escape(name), start))
        if len(folders) + len(files) >= MAX_PATH_ITEMS:
            break
    return folders + files


def _escape(name: str) -> str:
    """A file name as it is written inside a string: `\\`, `"`, and braces (a URI is a
    template) escaped."""
    return "".join("\\" + c if c in '\\"{}' else c for c in name)


def _in_template(inside: str) -> bool:
    """Whether the end of `inside` (a string up to the cursor) is within `{{ }}`/`{% %}`."""
    opened = max(inside.rfind("{{"), inside.rfind("{%"))
    closed = max(inside.rfind("}}"), inside.rfind("%}"))
    return opened != -1 and opened > closed


def _in_element_block(text: str, line_start: int) -> bool:
    before = text[:line_start]
    opened = before.rfind("{")
    while opened != -1 and string_start(text, opened) is not None:
        opened = before.rfind("{", 0, opened)
    if opened == -1 or "}" in _code(before[opened:]):
        return False
    head = before[before.rfind("\n", 0, opened) + 1 : opened]
    return head.lstrip().startswith("element")


def _code(text: str) -> str:
    return re.sub(r'"""[\s\S]*?"""|"[^"\n]*"|#[^\n]*', "", text)


def _model(result: Result | None) -> Model:
    model_id = result.bound.model_id if result and result.bound else default_model_id()
    model = lookup_model(model_id) or lookup_model(default_model_id())
    assert model is not None  # the default model ships with klingspec
    return model


def _values(result: Result | None, setting: str, start: int) -> list[Completion]:
    model = _model(result)
    if setting == "aspect":
        return [Completion(r, "value", f"aspect ratio of {model.id}", r, start) for r in model.aspect_ratios]
    if setting == "resolution":
        return [
            Completion(
                r,
                "value",
                f"resolution of {model.id}" + (" (default)" if r == model.default_resolution else ""),
                r,
                start,
            )
            for r in model.resolutions
        ]
    if setting == "format":
        return [
            Completion(w, "value", f"response_format {api}", w, start)
            for w, api in FORMAT_WORDS.items()
            if api in model.response_formats
        ]
    if setting == "audio":
        return [Completion(w, "value", f"generate_audio {w == 'on'}".lower(), w, start) for w in ("on", "off")]
    return [Completion(i, "value", _model_detail(known), i, start) for i in known_ids() if (known := lookup_model(i))]


def _model_detail(model: Model) -> str:
    """`Simple text-to-video · $0.07/s · live`: what `klingspec models` says, in a line;
    a retired model names its successor."""
    price = f"${model.price_per_second.normalize():f}/s" if model.price_per_second is not None else "price unknown"
    status = f"retired, use {model.replaced_by}" if model.status == "retired" and model.replaced_by else model.status
    return f"{model.summary} · {price} · {status}"


def _variables(result: Result | None, start: int) -> list[Completion]:
    if result is None or result.program is None:
        return []
    items: dict[str, Completion] = {}
    variables = result.bound.expansion.variables if result.bound else {}
    for statement in result.program.statements:
        if isinstance(statement, ast.Let):
            name = statement.name.value
            value = variables.get(name)
            shown = repr(value) if value is not None else "let"
            items[name] = Completion(name, "variable", _short(f"let {name} = {shown}"), name, start)
    for var in result.program.variables:
        items[var.name] = Completion(var.name, "variable", _short(f"{var.origin}: {var.value!r}"), var.name, start)
    for name, value in variables.items():
        items.setdefault(name, Completion(name, "variable", _short(f"--var/--vars: {value!r}"), name, start))
    return sorted(items.values(), key=lambda c: c.label)


def _references(result: Result | None, start: int) -> list[Completion]:
    """`@name` for every image and element the script can see (a library's too: mentioning
    it is what sends it), then raw `@ImageN`/`@ElementN` of what is bound now."""
    if result is None or result.program is None:
        return []
    bound = result.bound
    bindings = {b.name: b for b in (*bound.images, *bound.elements)} if bound else {}
    items: dict[str, Completion] = {}
    for statement in result.program.statements:
        if isinstance(statement, (ast.Image, ast.Element)):
            name = statement.name.value
            kind = "image" if isinstance(statement, ast.Image) else "element"
            binding = bindings.get(name)
            detail = f"{kind} → {binding.ref}" if binding else f"{kind} (sent once mentioned)"
            items.setdefault(name, Completion("@" + name, "reference", detail, "@" + name, start))
    raw = [
        Completion(b.ref, "reference", f"{b.kind} @{b.name}", b.ref, start)
        for b in (*(bound.images if bound else ()), *(bound.elements if bound else ()))
    ]
    return list(items.values()) + raw


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
