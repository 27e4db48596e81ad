"""Compiling: a checked script becomes the API's JSON request body.

Keys come in one fixed order and the JSON is written the same way every time, so the
same script always compiles to the same bytes and a content hash identifies a render.
Settings the script does not set are left out (the API applies its defaults); settings it
does set are written even when they equal the default, so the body says what the author
said. A side map from JSON pointers to script spans lets a schema failure point at the
script.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

from klingspec import ast
from klingspec.binding import BoundScript
from klingspec.diagnostics import Diagnostic
from klingspec.resources import read_text
from klingspec.source import Span
from klingspec.targets import Model, default_model_id, model_schema
from klingspec.targets import model as lookup_model

if TYPE_CHECKING:  # jsonschema is imported on first use
    from jsonschema import Draft202012Validator, ValidationError
    from jsonschema.protocols import Validator

SCHEMA_FILE = "request.schema.json"


@dataclass(frozen=True)
class Request:
    """One request body and what the runner needs beside it."""

    model: str
    body: dict[str, Any]
    generations: int
    pointers: dict[str, Span]

    @property
    def json(self) -> str:
        """The body as the API receives it and `compile` prints it."""
        return to_json(self.body)

    @property
    def content_hash(self) -> str:
        """sha256 of the canonical body plus the generation count: one render's identity."""
        return request_hash(self.body, self.generations)


def to_json(body: dict[str, Any]) -> str:
    import json  # imported where used: `check` compiles but never serialises

    return json.dumps(body, indent=2, ensure_ascii=False) + "\n"


def request_hash(body: dict[str, Any], generations: int) -> str:
    import json

    canonical = json.dumps(
        {"body": body, "num_generations": generations}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def compile_script(script: BoundScript) -> Request:
    """Build the body. Assumes `check` found no errors (it stays total if it did)."""
    model = script.model or lookup_model(default_model_id())
    assert model is not None  # the default model ships with klingspec
    body: dict[str, Any] = {}
    pointers: dict[str, Span] = {}
    settings = script.settings

    def put(pointer: str, value: Any, span: Span) -> None:
        keys = pointer.strip("/").split("/")
        target = body
        for key in keys[:-1]:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if isinstance(target, list):
            target.append(value)
        else:
            target[keys[-1]] = value
        pointers[pointer] = span

    main = script.program.main.source
    put("/model", script.model_id, settings["model"].span if "model" in settings else main.span(0))
    if len(script.shots) == 1:
        shot = script.shots[0]
        put("/prompt", shot.prompt, shot.shot.prompt.span)
        put("/duration", int(shot.seconds), shot.shot.duration.span)
    elif script.shots:
        put("/multi_prompt", [], script.shots[0].shot.span.cover(script.shots[-1].shot.span))
        for i, shot in enumerate(script.shots):
            put(f"/multi_prompt/{i}", {}, shot.shot.span)
            put(f"/multi_prompt/{i}/prompt", shot.prompt, shot.shot.prompt.span)
            put(f"/multi_prompt/{i}/duration", int(shot.seconds), shot.shot.duration.span)
    if script.images:
        put("/input_image", [], script.images[0].declaration.span)
        for i, binding in enumerate(script.images):
            image = binding.declaration
            assert isinstance(image, ast.Image)  # `images` holds only image bindings
            put(f"/input_image/{i}", script.uri(image.uri), image.uri.span)
    if script.elements:
        put("/elements", [], script.elements[0].declaration.span)
        for i, binding in enumerate(script.elements):
            element = binding.declaration
            assert isinstance(element, ast.Element)  # `elements` holds only element bindings
            put(f"/elements/{i}", {}, element.span)
            for front in element.all("front")[:1]:
                put(f"/elements/{i}/frontal_image_url", script.uri(front.uris[0]), front.uris[0].span)
            refs = [u for field in element.all("refs") for u in field.uris]
            if refs:
                put(f"/elements/{i}/reference_image_urls", [], element.all("refs")[0].span)
                for j, uri in enumerate(refs):
                    put(f"/elements/{i}/reference_image_urls/{j}", script.uri(uri), uri.span)
    if script.start:
        put("/" + model.start_key, script.uri(script.start.uri), script.start.uri.span)
    if script.end:
        put("/tail_image_url", script.uri(script.end.uri), script.end.uri.span)
    if "negative" in settings:
        put("/negative_prompt", settings["negative"].raw, settings["negative"].span)
    if "aspect" in settings and not _frames_only(script, model):
        put("/aspect_ratio", settings["aspect"].raw, settings["aspect"].span)
    if "resolution" in settings:
        put("/resolution", settings["resolution"].raw, settings["resolution"].span)
    if "audio" in settings and script.audio() is not None:
        put("/generate_audio", script.audio(), settings["audio"].span)
    if "format" in settings and script.response_format():
        put("/response_format", script.response_format(), settings["format"].span)
    if "namespace" in settings:
        put("/target_namespace", settings["namespace"].raw, settings["namespace"].span)
    return Request(script.model_id, body, script.generations(), pointers)


def _frames_only(script: BoundScript, model: Model) -> bool:
    """A body whose only images are start/end frames, for a model whose page says to leave
    `aspect_ratio` out then (checked as KVS-aspect-with-frames; never sent)."""
    return (
        not model.aspect_with_only_frames
        and (script.start is not None or script.end is not None)
        and not script.images
        and not script.elements
    )


@cache
def _validator() -> Draft202012Validator:
    import json

    from jsonschema import Draft202012Validator

    schema = json.loads(read_text("schema", SCHEMA_FILE))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def validate(request: Request) -> list[Diagnostic]:
    """Validate the body against schema/request.schema.json, then against the model's
    published request schema (`targets.model_schema`); map failures to the script.

    A failure here means the checker missed something: it is reported as KVS-schema (or
    KVS-schema-model) at the nearest span the body came from, never as a traceback.
    """
    problems = [
        _problem(
            request,
            error,
            "KVS-schema",
            "the request body does not match the API schema",
        )
        for error in sorted(_validator().iter_errors(request.body), key=lambda e: list(e.absolute_path))
    ]
    schema = model_schema(request.model)
    checker = _model_validator(_canonical(schema)) if schema is not None else None
    if checker is not None:
        problems += [
            _problem(
                request,
                error,
                "KVS-schema-model",
                f"the request body does not match `{request.model}`'s published request schema",
            )
            for error in sorted(checker.iter_errors(request.body), key=lambda e: list(e.absolute_path))
        ]
    return problems


def _problem(request: Request, error: ValidationError, code: str, what: str) -> Diagnostic:
    error = _deepest(error)
    pointer = "/" + "/".join(str(p) for p in error.absolute_path)
    return Diagnostic.of(
        code,
        _nearest(request.pointers, pointer),
        f"{what} at {pointer}: {error.message}",
        "this is a klingspec checker gap; please report it with this script",
    )


def _canonical(schema: dict[str, Any]) -> str:
    import json

    return json.dumps(schema, sort_keys=True, separators=(",", ":"))


@lru_cache(maxsize=32)
def _model_validator(canonical: str) -> Validator | None:
    """A validator for one model's schema, compiled once per schema text (a synced schema
    that changes gets its own). The published schemas are OpenAPI-3.0-flavoured JSON
    Schema: no `$schema`, so Draft 4 (the base of OpenAPI 3.0's Schema Object; boolean
    `exclusiveMinimum` and all) unless the schema names its draft; `nullable: true` is
    honoured by allowing null; Oxen's UI keywords (`basic`, `x-order`, `renderType`,
    `x-media-references`) are unknown keywords, which JSON Schema ignores; `format` is an
    annotation, as in every draft without a format checker. A schema that is not valid for
    its draft gives None: that is the publisher's mistake, not the script's."""
    import json

    from jsonschema import Draft4Validator, SchemaError, validators

    schema = _with_nullable(json.loads(canonical))
    cls = validators.validator_for(schema, default=Draft4Validator)
    try:
        cls.check_schema(schema)
    except SchemaError:
        return None
    validator: Validator = cls(schema)
    return validator


def _with_nullable(node: Any) -> Any:
    """OpenAPI's `nullable: true` as JSON Schema: null joins the `type` (and the `enum`)."""
    if isinstance(node, list):
        return [_with_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _with_nullable(value) for key, value in node.items()}
    if node.get("nullable") is True:
        kind = node.get("type")
        if isinstance(kind, str):
            node["type"] = [kind, "null"]
        elif isinstance(kind, list) and "null" not in kind:
            node["type"] = [*kind, "null"]
        if isinstance(node.get("enum"), list) and None not in node["enum"]:
            node["enum"] = [*node["enum"], None]
    return node


def _deepest(error: ValidationError) -> ValidationError:
    """For anyOf/oneOf failures, the alternative's error that reaches furthest into the
    body (an `input_image` item, not the whole array)."""
    while error.context:
        error = max(error.context, key=lambda e: len(e.absolute_path))
    return error


def _nearest(pointers: dict[str, Span], pointer: str) -> Span:
    while pointer not in pointers and pointer.count("/") > 1:
        pointer = pointer.rsplit("/", 1)[0]
    return pointers.get(pointer) or pointers["/model"]
