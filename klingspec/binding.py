"""Binding: names become API positions, and settings become typed values.

`@name` in a prompt becomes `@ImageN` or `@ElementN` by declaration order (including
declarations taken from `use`d files, at the place of the `use`), so reordering bindings
never breaks a prompt. Raw `@Image2` / `@Element1` are accepted and range-checked.
`@@` writes a literal `@`. Bindings taken from a `use`d library are sent only when a
prompt mentions them, so a shared library of many characters costs no slots.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from klingspec import ast
from klingspec.diagnostics import Diagnostic, Related, Suggestion, close_matches
from klingspec.loading import Program
from klingspec.source import Span
from klingspec.targets import Model, default_model_id
from klingspec.targets import model as lookup_model
from klingspec.templating import Expansion

if TYPE_CHECKING:  # images.py (and Pillow) load only for scripts that name a local file
    from klingspec.images import ImageFile, LocalImage

_MENTION = re.compile(r"@@|(?<![\w@])@([^\W\d]\w*)")
_RAW = re.compile(r"(Image|Element)([0-9]+)\Z")
ON_WORDS = {"on": True, "true": True, "yes": True, "off": False, "false": False, "no": False}
FORMAT_WORDS = {"url": "url", "b64": "b64_json", "b64_json": "b64_json"}


@dataclass(frozen=True)
class Binding:
    """A bound image or element: `@name` -> `@ImageN` / `@ElementN`."""

    kind: str  # "image" or "element"
    name: str
    index: int  # 1-based, per kind
    declaration: ast.Image | ast.Element

    @property
    def ref(self) -> str:
        return f"@{'Image' if self.kind == 'image' else 'Element'}{self.index}"


@dataclass(frozen=True)
class Mention:
    """One `@...` in a prompt, where it is in the script, and what it resolved to."""

    written: str
    span: Span
    binding: Binding | None


@dataclass(frozen=True)
class PromptPart:
    """A piece of a prompt as sent: plain text (`mention` None, `@@` already made `@`), or
    what one `@...` became (`@Image1` for `@cafe`; as written when it resolved to nothing)."""

    text: str
    mention: Mention | None = None


@dataclass(frozen=True)
class BoundShot:
    """A shot with its prompt as the API receives it and the mentions in it."""

    shot: ast.Shot
    prompt: str  # what the API receives: expanded, folded, @names rewritten
    mentions: tuple[Mention, ...]
    index: int  # 1-based position among the shots
    parts: tuple[PromptPart, ...] = ()  # `prompt` cut at its mentions: joined, they are `prompt`

    @property
    def seconds(self) -> Decimal:
        return self.shot.duration.seconds


@dataclass(frozen=True)
class SettingValue:
    """A setting after expansion: its key, its value as text, and where it was written."""

    key: str
    raw: str  # expanded text of the value
    statement: ast.Setting

    @property
    def span(self) -> Span:
        return self.statement.value.span


@dataclass(frozen=True)
class BoundScript:
    """The script with names resolved: what the checker checks and the compiler compiles."""

    program: Program
    expansion: Expansion
    settings: dict[str, SettingValue]
    images: tuple[Binding, ...]
    elements: tuple[Binding, ...]
    start: ast.Frame | None
    end: ast.Frame | None
    frames: tuple[ast.Frame, ...]
    shots: tuple[BoundShot, ...]
    duplicate_settings: tuple[ast.Setting, ...]
    library_ok: bool = False  # `check` of a declarations-only file: no shot needed
    partial: bool = False  # a file had syntax errors: set-level rules hold back
    # Local images, keyed by the identity of the URI literal that names them (images.py):
    # what each file holds, and, where an assets target is known, its upload.
    local_files: Mapping[int, ImageFile] = field(default_factory=dict)
    uploads: Mapping[int, LocalImage] = field(default_factory=dict)
    model_override: str | None = None  # `plan --compare` tries the script on another model
    project_model: str | None = None  # `model` of the project file (project.py)

    @property
    def model_id(self) -> str:
        """`plan --compare`'s model, else the script's `model`, else the project file's,
        else the default."""
        if self.model_override is not None:
            return self.model_override
        setting = self.settings.get("model")
        if setting:
            return setting.raw
        return self.project_model or default_model_id()

    @property
    def model(self) -> Model | None:
        return lookup_model(self.model_id)

    @property
    def total_seconds(self) -> Decimal:
        return sum((shot.seconds for shot in self.shots), Decimal(0))

    def uri(self, text: ast.Text) -> str:
        """What the body sends for a URI literal: its expansion, or a local image's URL."""
        upload = self.uploads.get(id(text))
        return upload.url if upload is not None else self.expansion[text]

    def uri_texts(self) -> Iterator[ast.Text]:
        """Every URI literal of what is sent: images, element views, then frames. A URI
        whose template failed is left out: its value is unknown, the failure is reported
        (at the template), and nothing is sent while an error stands."""
        for text in self._all_uri_texts():
            if not self.expansion.did_fail(text):
                yield text

    def _all_uri_texts(self) -> Iterator[ast.Text]:
        for binding in self.images:
            image = binding.declaration
            assert isinstance(image, ast.Image)  # `images` holds only image bindings
            yield image.uri
        for binding in self.elements:
            element = binding.declaration
            assert isinstance(element, ast.Element)  # `elements` holds only element bindings
            for element_field in element.fields:
                yield from element_field.uris
        for frame in self.frames:
            yield frame.uri

    def unique_uploads(self) -> tuple[LocalImage, ...]:
        """Each local image once (by content: two paths to one file are one upload), in
        the order the script first names them."""
        seen: dict[str, LocalImage] = {}
        for upload in self.uploads.values():
            seen.setdefault(upload.remote_path, upload)
        return tuple(seen.values())

    # typed settings, None where absent or invalid (the checker reports invalid ones)
    def audio(self) -> bool | None:
        setting = self.settings.get("audio")
        return ON_WORDS.get(setting.raw.lower()) if setting else None

    def response_format(self) -> str | None:
        setting = self.settings.get("format")
        return FORMAT_WORDS.get(setting.raw.lower()) if setting else None

    def generations(self) -> int:
        setting = self.settings.get("generations")
        if setting and setting.raw.isascii() and setting.raw.isdigit():
            return int(setting.raw)
        return 1


def bind(program: Program, expansion: Expansion, *, library_ok: bool = False) -> tuple[BoundScript, list[Diagnostic]]:
    diagnostics: list[Diagnostic] = []
    settings: dict[str, SettingValue] = {}
    unknown: set[str] = set()  # settings whose value's template failed
    duplicates: list[ast.Setting] = []
    images: list[Binding] = []
    elements: list[Binding] = []
    names: dict[str, Binding] = {}
    frames: list[ast.Frame] = []
    shots: list[ast.Shot] = [s for s in program.statements if isinstance(s, ast.Shot)]
    mentioned = {m.group(1) for shot in shots for m in _MENTION.finditer(expansion[shot.prompt]) if m.group(1)}
    main = program.main.source
    for statement in program.statements:
        if isinstance(statement, ast.Setting):
            key = statement.key.value
            if key in unknown:
                continue  # the first one failed; a repeat is reported once it is fixed
            if key in settings:
                duplicates.append(statement)
                continue
            if isinstance(statement.value, ast.Text) and expansion.did_fail(statement.value):
                unknown.add(key)  # its template failed, and was reported: the value is not judged
                continue
            settings[key] = SettingValue(key, _setting_text(statement, expansion), statement)
        elif isinstance(statement, (ast.Image, ast.Element)):
            if statement.span.source is not main and statement.name.value not in mentioned:
                continue  # a library binding the script never mentions is not sent
            kind = "image" if isinstance(statement, ast.Image) else "element"
            group = images if kind == "image" else elements
            name = statement.name.value
            if _RAW.match(name):
                diagnostics.append(
                    Diagnostic.of(
                        "KVS-name-reserved",
                        statement.name.span,
                        f"`{name}` looks like a raw reference and cannot be a binding name",
                        "pick a descriptive name; raw `@ImageN`/`@ElementN` always mean positions",
                    )
                )
            if name in names:
                diagnostics.append(
                    Diagnostic.of(
                        "KVS-name-duplicate",
                        statement.name.span,
                        f"`{name}` is already bound",
                        "rename one of them; every @name must mean one thing",
                        related=[Related(names[name].declaration.name.span, "first bound here")],
                    )
                )
                continue  # the duplicate takes no slot
            binding = Binding(kind, name, len(group) + 1, statement)
            group.append(binding)
            names[name] = binding
        elif isinstance(statement, ast.Frame):
            frames.append(statement)
    negative = settings.get("negative")
    if negative is not None and isinstance(negative.statement.value, ast.Text):
        diagnostics.extend(_negative_references(negative.statement.value, expansion, names))
    bound_shots = []
    for index, shot in enumerate(shots, 1):
        parts, mentions, problems = _rewrite(
            shot.prompt, expansion, names, images, elements, any(f.partial for f in program.files)
        )
        diagnostics.extend(problems)
        bound_shots.append(BoundShot(shot, "".join(p.text for p in parts), mentions, index, parts))
    start = next((f for f in frames if f.kind == "start"), None)
    end = next((f for f in frames if f.kind == "end"), None)
    bound = BoundScript(
        program,
        expansion,
        settings,
        tuple(images),
        tuple(elements),
        start,
        end,
        tuple(frames),
        tuple(bound_shots),
        tuple(duplicates),
        library_ok,
        any(f.partial for f in program.files),
    )
    return bound, diagnostics


def _setting_text(statement: ast.Setting, expansion: Expansion) -> str:
    value = statement.value
    return expansion[value] if isinstance(value, ast.Text) else value.value


def _rewrite(
    text: ast.Text,
    expansion: Expansion,
    names: dict[str, Binding],
    images: list[Binding],
    elements: list[Binding],
    partial: bool = False,
) -> tuple[tuple[PromptPart, ...], tuple[Mention, ...], list[Diagnostic]]:
    """Rewrite @names in the expanded prompt, as parts (joined: the prompt as sent); spans
    point into the script."""
    expanded = expansion[text]
    locate = _locator(text, expanded)
    out: list[PromptPart] = []
    mentions: list[Mention] = []
    problems: list[Diagnostic] = []
    last = 0
    binding: Binding | None
    for match in _MENTION.finditer(expanded):
        _plain(out, expanded[last : match.start()])
        last = match.end()
        if match.group(0) == "@@":
            _plain(out, "@")
            continue
        word = match.group(1)
        span = locate(match.start(), match.end())
        raw = _RAW.match(word)
        if word in names:
            binding = names[word]
            mentions.append(Mention(match.group(0), span, binding))
            out.append(PromptPart(binding.ref, mentions[-1]))
        elif raw:
            group = images if raw.group(1) == "Image" else elements
            index = int(raw.group(2))
            binding = group[index - 1] if 1 <= index <= len(group) else None
            if binding is None:
                kind = raw.group(1).lower()
                problems.append(
                    Diagnostic.of(
                        "KVS-ref-range",
                        span,
                        f"`@{word}` is out of range: the script binds {len(group)} {kind}"
                        f"{'s' if len(group) != 1 else ''}",
                        (
                            f"bind another {kind}, or use @{raw.group(1)}1"
                            if len(group) == 1
                            else f"bind another {kind}, or use @{raw.group(1)}1..@{raw.group(1)}{len(group)}"
                        )
                        if group
                        else f"declare an `{kind}` first",
                    )
                )
            mentions.append(Mention(match.group(0), span, binding))
            out.append(PromptPart(match.group(0), mentions[-1]))
        elif partial:
            # its binding may be on a line lost to a syntax error
            mentions.append(Mention(match.group(0), span, None))
            out.append(PromptPart(match.group(0), mentions[-1]))
        else:
            close = close_matches(word, list(names), n=1)
            hint = (
                f"did you mean `@{close[0]}`?"
                if close
                else 'bind it with `image NAME = "https://..."` or an `element` block; write `@@` for a literal @'
            )
            # a fix only where the script spells the name out (not where a template made it)
            fix = [Suggestion.did_you_mean(span, f"@{close[0]}")] if close and span.text == match.group(0) else []
            problems.append(
                Diagnostic.of(
                    "KVS-name-unbound", span, f"`@{word}` is not bound", hint, label="unbound name", suggestions=fix
                )
            )
            mentions.append(Mention(match.group(0), span, None))
            out.append(PromptPart(match.group(0), mentions[-1]))
    _plain(out, expanded[last:])
    return tuple(out), tuple(mentions), problems


def _plain(parts: list[PromptPart], text: str) -> None:
    """Add plain text to the parts, joined to the plain text before it (`@@` is no cut)."""
    if not text:
        return
    if parts and parts[-1].mention is None:
        parts[-1] = PromptPart(parts[-1].text + text)
    else:
        parts.append(PromptPart(text))


def _negative_references(text: ast.Text, expansion: Expansion, names: Mapping[str, Binding]) -> Iterator[Diagnostic]:
    """`@name` (or a raw `@Image1`) in the negative prompt: it is sent as written (only
    shot prompts have their @-references resolved), so the model reads the word, not the
    image."""
    expanded = expansion[text]
    locate = _locator(text, expanded)
    for match in _MENTION.finditer(expanded):
        word = match.group(1)
        if not word:
            continue  # `@@`
        bound = names.get(word)
        replaced = f"; here `@{word}` is not replaced by `{bound.ref}`" if bound is not None else ""
        if _RAW.match(word):
            replaced = f"; in the negative prompt `@{word}` is plain text"
        yield Diagnostic.of(
            "KVS-negative-reference",
            locate(match.start(), match.end()),
            f"`@{word}` in the negative prompt is sent as written",
            f"only shot prompts resolve @-references{replaced}, so say in words what to avoid",
            label="not resolved here",
        )


def _locator(text: ast.Text, expanded: str) -> Callable[[int, int], Span]:
    """Map a range of the expanded prompt back to the script: exact when templating left
    the literal as it was; otherwise the n-th occurrence of the same `@word` in the
    literal, else the whole literal."""
    if expanded == text.literal:
        return text.span_of
    return lambda start, end: _nth_occurrence(text, expanded, start, end)


def _nth_occurrence(text: ast.Text, expanded: str, start: int, end: int) -> Span:
    word = expanded[start:end]
    nth = expanded.count(word, 0, start)
    position = -1
    for _ in range(nth + 1):
        position = text.literal.find(word, position + 1)
        if position == -1:
            return text.span
    return text.span_of(position, position + len(word))
