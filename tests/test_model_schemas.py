"""Each model's published request schema: klingspec's built-in copy (schema/models/), the
matrix that must follow it, and the compiled bodies that must validate against it and
against the sandbox's own, independent copy (so a disagreement between the three shows).

Sources: fact sheet 5.2 (the dialect, the reconstructed reference-to-video schema) and 6.x
(each model's generated page).
"""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest
from helpers import codes, errors, locate, run, where

from klingspec import checking, compiling, targets
from klingspec.compiling import Request, compile_script, validate
from klingspec.sandbox.catalog import MODELS as SANDBOX

A = "https://cdn.example.com/a.png"
B = "https://cdn.example.com/b.png"
OMNI = "kling-video-o3-omni"
REF = "kling-video-o3-pro-reference-to-video"
# The models that need an input video, which a .kvs script cannot give yet: the checker
# refuses every script for them (KVS-model-unsupported), and their schemas require it
# (motion control also requires its character image, one `input_image` string, and
# `character_orientation`, which its page lists as required though it has a default).
NEEDS_VIDEO = {
    "kling-video-o3-pro-video-to-video-edit": {"input_video"},
    "kling-video-v3-pro-motion-control": {"input_video", "input_image", "character_orientation"},
}
# A script the checker accepts (or would, but for the input video) for each model.
SCRIPTS = {
    "kling-video-v2-6-pro-text-to-video": 'aspect 9:16\naudio on\nnegative "blur"\nshot a 10s "a door"\n',
    "kling-video-v2-6-pro-image-to-video": f'start "{A}"\naudio on\nshot a 5s "the door opens"\n',
    "kling-video-o3-pro-image-to-video": f'start "{A}"\nend "{B}"\naspect 1:1\nshot a 4s "the door opens"\n',
    REF: f'image cafe = "{A}"\nstart "{B}"\nnegative "blur"\naspect 9:16\nshot a 2s "@cafe"\nshot b 3s "two"\n',
    "kling-video-o3-pro-video-to-video-edit": f'image cafe = "{A}"\nshot a 5s "put @cafe behind the door"\n',
    "kling-video-v3-pro-motion-control": f'element hero {{\n  front "{A}"\n}}\nshot a 5s "@hero dances"\n',
    OMNI: f'image cafe = "{A}"\nelement hero {{\n  front "{B}"\n}}\naspect 9:16\nresolution 4k\naudio on\n'
    'shot a 5s "@hero walks into @cafe"\n',
}


def _validator(schema: dict):
    """The validator klingspec builds for a published schema (nullable honoured, Draft 4)."""
    validator = compiling._model_validator(compiling._canonical(schema))
    assert validator is not None
    return validator


def _missing(schema: dict, body: dict) -> tuple[set[str], list[str]]:
    """The required properties a body lacks, and every other failure, as messages."""
    missing, other = set(), []
    for error in _validator(schema).iter_errors(body):
        if error.validator == "required" and not error.absolute_path:
            missing.add(error.message.split("'")[1])
        else:
            other.append(f"{'/'.join(map(str, error.absolute_path))}: {error.message}")
    return missing, other


# -- the built-in schemas ----------------------------------------------------------------


def test_every_model_has_a_built_in_schema_and_the_sandbox_serves_every_model():
    for model_id in targets.known_ids():
        schema = targets.model_schema(model_id)
        assert schema is not None and schema == targets.builtin_schema(model_id), model_id
        assert schema["type"] == "object" and "properties" in schema
    assert targets.model_schema("no-such-model") is None
    assert set(SANDBOX) == set(targets.known_ids())


@pytest.mark.parametrize("model_id", targets.known_ids())
def test_each_built_in_schema_is_a_valid_schema_of_its_draft(model_id):
    from jsonschema import Draft4Validator

    schema = compiling._with_nullable(targets.model_schema(model_id))
    Draft4Validator.check_schema(schema)
    assert "$schema" not in schema  # the published dialect names no draft (fact sheet 5.2)


def test_the_reference_to_video_schema_is_the_one_reconstructed_in_the_fact_sheet():
    """5.2: no prompt, multi_prompt or duration; no `required`; basic = the three image fields."""
    schema = targets.model_schema(REF)
    assert set(schema["properties"]) == {
        "start_image_url",
        "tail_image_url",
        "input_image",
        "elements",
        "negative_prompt",
        "aspect_ratio",
        "generate_audio",
    }
    assert "required" not in schema
    assert schema["basic"] == ["start_image_url", "tail_image_url", "input_image"]


def test_the_omni_schema_is_its_published_page():
    """6.6 and 9 (additions): prompt required; no multi_prompt, no negative_prompt; resolution."""
    schema = targets.model_schema(OMNI)
    properties = schema["properties"]
    assert schema["required"] == ["prompt"]
    assert "multi_prompt" not in properties and "negative_prompt" not in properties
    assert properties["resolution"]["enum"] == ["1080p", "720p", "4k"]
    assert properties["resolution"]["default"] == "1080p"
    assert (properties["duration"]["minimum"], properties["duration"]["maximum"]) == (3, 15)
    assert "leave it out" in properties["aspect_ratio"]["description"].lower()


# -- the matrix follows the schema -------------------------------------------------------


@pytest.mark.parametrize("model_id", targets.known_ids())
def test_the_matrix_follows_the_models_schema(model_id):
    known = targets.model(model_id)
    properties = targets.model_schema(model_id)["properties"]
    if "prompt" in properties:  # the reference-to-video schema leaves the prompt fields out (5.2)
        assert known.multi_prompt == ("multi_prompt" in properties), "several shots need multi_prompt"
        assert "prompt" in targets.model_schema(model_id)["required"]
    assert known.negative_prompt == ("negative_prompt" in properties)
    assert known.audio == ("generate_audio" in properties)
    assert set(known.aspect_ratios) == set(properties.get("aspect_ratio", {}).get("enum", []))
    assert set(known.resolutions) == set(properties.get("resolution", {}).get("enum", []))
    assert known.default_resolution == properties.get("resolution", {}).get("default")
    assert known.elements == ("elements" in properties)
    image = properties.get("input_image", {})
    assert known.input_image == (image.get("type") == "array"), "reference images are an input_image array"
    if known.frames:
        assert known.start_key in properties
        assert known.start_key != "input_image" or image.get("type") == "string"
    assert known.tail_frame == ("tail_image_url" in properties)
    duration = properties.get("duration")
    if duration is not None and "enum" in duration:
        assert set(known.allowed_durations) == set(duration["enum"])
    elif duration is not None:
        assert duration["minimum"] <= known.total_min and known.total_max <= duration["maximum"]
        if not known.multi_prompt:
            assert known.shot_min >= duration["minimum"]
    assert set(known.requires) <= set(properties)


def test_only_the_omni_page_says_to_leave_the_aspect_ratio_out_with_frames():
    for model_id in targets.known_ids():
        aspect = targets.model_schema(model_id)["properties"].get("aspect_ratio", {})
        says = "only start/end frames" in aspect.get("description", "")
        assert targets.model(model_id).aspect_with_only_frames == (not says), model_id


# -- compiled bodies validate against the built-in and the sandbox schema ------------------


@pytest.mark.parametrize("model_id", sorted(SCRIPTS))
def test_a_valid_script_validates_against_both_copies_of_the_models_schema(tmp_path, model_id):
    assert set(SCRIPTS) == set(targets.known_ids())
    result = run(tmp_path, f"model {model_id}\n" + SCRIPTS[model_id])
    needs = NEEDS_VIDEO.get(model_id, set())
    if needs:
        assert errors(result) == ["KVS-model-unsupported"]  # the checker refuses it first
        body = compile_script(result.bound).body
    else:
        assert errors(result) == [], [(d.code, d.message) for d in result.diagnostics]
        assert "KVS-schema" not in codes(result) and "KVS-schema-model" not in codes(result)
        body = result.request.body
    for name, schema in (
        ("built-in", targets.model_schema(model_id)),
        ("sandbox", SANDBOX[model_id].request_schema()),
    ):
        missing, other = _missing(schema, body)
        assert other == [], (name, other)
        assert missing == needs, (name, missing)


def test_the_omni_body_sends_what_its_schema_names(tmp_path):
    result = run(tmp_path, f"model {OMNI}\n" + SCRIPTS[OMNI])
    body = result.request.body
    assert body["resolution"] == "4k" and body["aspect_ratio"] == "9:16" and body["prompt"]
    assert "multi_prompt" not in body and "negative_prompt" not in body
    properties = targets.model_schema(OMNI)["properties"]
    assert set(body) - {"model", "response_format", "target_namespace"} <= set(properties)


def test_a_frames_only_omni_script_validates_and_sends_no_aspect_ratio(tmp_path):
    result = run(tmp_path, f'model {OMNI}\nstart "{A}"\nend "{B}"\nshot a 5s "the door opens"\n')
    assert errors(result) == []
    body = result.request.body
    assert "aspect_ratio" not in body
    for schema in (targets.model_schema(OMNI), SANDBOX[OMNI].request_schema()):
        assert _missing(schema, body) == (set(), [])


def test_several_shots_on_omni_are_refused_before_compiling(tmp_path):
    result = run(tmp_path, f'model {OMNI}\nshot a 5s "one"\nshot b 5s "two"\n')
    assert errors(result) == ["KVS-model-unsupported"] and result.request is None
    # what would have been sent: multi_prompt, which omni's schema does not have and the
    # sandbox refuses
    body = compile_script(result.bound).body
    assert "multi_prompt" in body and "multi_prompt" not in targets.model_schema(OMNI)["properties"]
    from klingspec.sandbox.validation import model_error

    assert model_error(body, SANDBOX[OMNI]) is not None


# -- a body the schema refuses is the checker's bug, at the script's span ---------------------


def _compiled(tmp_path, text: str) -> Request:
    result = run(tmp_path, text)
    assert errors(result) == [], [(d.code, d.message) for d in result.diagnostics]
    return result.request


def test_a_hand_built_body_the_model_schema_refuses_is_reported_at_the_script_span(tmp_path):
    text = f'model {OMNI}\nresolution 720p\nshot a 5s "x"\n'
    request = _compiled(tmp_path, text)
    body = copy.deepcopy(request.body)
    body["duration"] = 2  # klingspec's API schema takes 1..30; omni's own takes 3..15
    body["resolution"] = "8k"
    problems = validate(Request(request.model, body, 1, request.pointers))
    by_code = sorted((d.code, d.message.split(":")[0], where(d)) for d in problems)
    assert by_code == [
        ("KVS-schema", "the request body does not match the API schema at /resolution", locate(text, "720p")),
        (
            "KVS-schema-model",
            f"the request body does not match `{OMNI}`'s published request schema at /duration",
            locate(text, "5s"),
        ),
        (
            "KVS-schema-model",
            f"the request body does not match `{OMNI}`'s published request schema at /resolution",
            locate(text, "720p"),
        ),
    ]
    assert all(d.is_error and "checker gap" in (d.help or "") for d in problems)


def test_a_missing_required_field_is_reported_at_the_model_setting(tmp_path):
    text = f'model {OMNI}\nshot a 5s "x"\n'
    request = _compiled(tmp_path, text)
    body = {k: v for k, v in request.body.items() if k != "prompt"}
    problems = [d for d in validate(dataclasses.replace(request, body=body)) if d.code == "KVS-schema-model"]
    assert [(where(d), "'prompt' is a required property" in d.message) for d in problems] == [
        (locate(text, OMNI), True)
    ]


def test_a_checker_gap_reaches_the_user_as_the_model_schema_code(tmp_path, monkeypatch):
    """Take the duration rules out of the checker: the schema catches the 2 s omni shot, and
    the pipeline reports it at the shot's duration as klingspec's bug."""
    rules = tuple(r for r in checking.RULES if r not in (checking.shot_durations, checking.total_duration))
    monkeypatch.setattr(checking, "RULES", rules)
    text = f'model {OMNI}\nshot a 2s "x"\n'
    result = run(tmp_path, text)
    assert errors(result) == ["KVS-schema-model"]
    [problem] = [d for d in result.diagnostics if d.code == "KVS-schema-model"]
    assert where(problem) == locate(text, "2s")
    assert "/duration" in problem.message and "checker gap" in problem.help


# -- the dialect and the cache ----------------------------------------------------------


def test_nullable_allows_null_and_only_there():
    schema = targets.model_schema(OMNI)
    assert _missing(schema, {"prompt": "x", "input_image": None, "start_image_url": None}) == (set(), [])
    _, other = _missing(schema, {"prompt": "x", "resolution": None})
    assert other and other[0].startswith("resolution:")
    assert compiling._with_nullable({"type": "string", "enum": ["a"], "nullable": True}) == {
        "type": ["string", "null"],
        "enum": ["a", None],
        "nullable": True,
    }


def test_oxen_ui_keywords_are_ignored_and_exclusive_minimum_reads_as_openapi_3_0():
    schema = {
        "type": "object",
        "basic": ["n"],
        "properties": {"n": {"type": "integer", "minimum": 3, "exclusiveMinimum": True, "x-order": 0}},
    }
    validator = _validator(schema)
    assert not validator.is_valid({"n": 3}) and validator.is_valid({"n": 4})


def test_a_schema_that_names_its_draft_is_read_in_that_draft():
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "properties": {"n": {"exclusiveMinimum": 3}}}
    validator = _validator(schema)
    assert not validator.is_valid({"n": 3}) and validator.is_valid({"n": 4})


def test_an_invalid_published_schema_is_not_used():
    assert compiling._model_validator(compiling._canonical({"type": 12})) is None


def test_validators_are_compiled_once_per_schema_and_the_source_is_pluggable(tmp_path, monkeypatch):
    request = _compiled(tmp_path, f'model {OMNI}\nshot a 5s "x"\n')
    validate(request)
    before = compiling._model_validator.cache_info()
    validate(request)
    after = compiling._model_validator.cache_info()
    assert (after.hits, after.misses) == (before.hits + 1, before.misses)
    # another source of schemas (a synced catalogue) is used as soon as it answers
    synced = {"type": "object", "required": ["prompt", "seed"], "properties": {"seed": {"type": "integer"}}}
    monkeypatch.setattr(compiling, "model_schema", lambda model_id: synced)
    [problem] = validate(request)
    assert problem.code == "KVS-schema-model" and "'seed' is a required property" in problem.message
    monkeypatch.setattr(compiling, "model_schema", lambda model_id: None)
    assert validate(request) == []


def test_the_built_in_schemas_are_json_files_named_by_model():
    from klingspec.resources import read_text

    for model_id in targets.known_ids():
        assert json.loads(read_text("schema", f"models/{model_id}.json")) == targets.model_schema(model_id)
