"""compiling.py: key order, the design sample's body, determinism, hashes, schema agreement."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
import os
import subprocess
import sys

import pytest
from helpers import codes, errors, locate, run, where, write

from klingspec import compiling
from klingspec.compiling import Request, validate

# The language design's sample, "A complete script", with `use "characters.kvs"` left out:
# the element is written inline, exactly as in the sample.
COMPLETE = '''# Two-shot teaser for a coffee brand.
model kling-video-o3-pro-reference-to-video   # the default; other Kling models later
aspect 9:16                                   # 16:9 (default) | 9:16 | 1:1
audio on                                      # generate_audio; default off
negative "blur, distort, low quality, text artifacts"
format url                                    # url (default) | b64  -> response_format
namespace aurora-studio                       # target_namespace; default: the key's user
generations 2                                 # num_generations, queue only, 1..4

let brand = "Aurora Coffee"
let mood  = "soft morning light, shallow depth of field"

image cafe   = "https://cdn.example.com/refs/cafe-interior.jpg"   # -> input_image[0], @Image1
image palette = "https://cdn.example.com/refs/palette.png"        # -> input_image[1], @Image2

element hero {                                 # -> elements[0], @Element1
  front "https://cdn.example.com/hero/front.png"            # frontal_image_url (required)
  refs  "https://cdn.example.com/hero/left.png",
        "https://cdn.example.com/hero/back.png"             # reference_image_urls (max 3)
}

start "https://cdn.example.com/frames/door.png"   # start_image_url
end   "https://cdn.example.com/frames/logo.png"   # tail_image_url; needs start

shot arrival 6s "@hero pushes open the door of @cafe, {{ mood }}, colours from @palette"
shot sip 5s """
    Close-up: @hero lifts a cup; steam curls up.
    The {{ brand | upper }} logo turns toward the camera.
"""
'''

# The body the design shows under "Compiles to (keys in a fixed order)", typed in from it.
COMPLETE_BODY = {
    "model": "kling-video-o3-pro-reference-to-video",
    "multi_prompt": [
        {
            "prompt": "@Element1 pushes open the door of @Image1, soft morning light, shallow depth of field, "
            "colours from @Image2",
            "duration": 6,
        },
        {
            "prompt": "Close-up: @Element1 lifts a cup; steam curls up. The AURORA COFFEE logo turns toward the "
            "camera.",
            "duration": 5,
        },
    ],
    "input_image": ["https://cdn.example.com/refs/cafe-interior.jpg", "https://cdn.example.com/refs/palette.png"],
    "elements": [
        {
            "frontal_image_url": "https://cdn.example.com/hero/front.png",
            "reference_image_urls": ["https://cdn.example.com/hero/left.png", "https://cdn.example.com/hero/back.png"],
        }
    ],
    "start_image_url": "https://cdn.example.com/frames/door.png",
    "tail_image_url": "https://cdn.example.com/frames/logo.png",
    "negative_prompt": "blur, distort, low quality, text artifacts",
    "aspect_ratio": "9:16",
    "generate_audio": True,
    "response_format": "url",
    "target_namespace": "aurora-studio",
}

KEY_ORDER = [
    "model",
    "prompt",
    "duration",
    "multi_prompt",
    "input_image",
    "elements",
    "start_image_url",
    "tail_image_url",
    "negative_prompt",
    "aspect_ratio",
    "generate_audio",
    "response_format",
    "target_namespace",
]


def _body(tmp_path, text, **kw):
    result = run(tmp_path, text, **kw)
    assert errors(result) == [], [(d.code, d.message) for d in result.diagnostics]
    return result.request


def test_complete_script_compiles_to_the_documented_body(tmp_path):
    request = _body(tmp_path, COMPLETE)
    parsed = json.loads(request.json)
    assert parsed == COMPLETE_BODY
    assert list(parsed) == list(COMPLETE_BODY)  # top-level key order
    for shot in parsed["multi_prompt"]:
        assert list(shot) == ["prompt", "duration"]
    assert list(parsed["elements"][0]) == ["frontal_image_url", "reference_image_urls"]
    assert request.generations == 2 and "num_generations" not in parsed
    assert request.model == "kling-video-o3-pro-reference-to-video"


def test_complete_script_has_no_diagnostic_but_the_upstream_frames_warning(tmp_path):
    """The design's sample gives start and end frames with two shots, which Kling's own API
    refuses (Oxen's page is silent): one warning, at `start`, and the body still compiles."""
    result = run(tmp_path, COMPLETE)
    assert codes(result) == ["KVS-frames-with-multishot"]
    assert where(result.diagnostics[0]) == locate(COMPLETE, 'start "https://cdn.example.com/frames/door.png"')
    assert result.request is not None


def test_key_order_follows_the_sample_whatever_the_script_order(tmp_path):
    # statements written in roughly reverse order of the body's keys
    text = """namespace studio
format b64
audio off
aspect 1:1
negative "blur"
end "https://e.com/end.png"
start "https://e.com/start.png"
element hero {
  refs "https://e.com/r.png"
  front "https://e.com/f.png"
}
image cafe = "https://e.com/cafe.png"
shot a 4s "@hero at @cafe"
model kling-video-o3-pro-reference-to-video
"""
    body = json.loads(_body(tmp_path, text).json)
    present = [k for k in KEY_ORDER if k in body]
    assert list(body) == present
    assert present == [
        "model",
        "prompt",
        "duration",
        "input_image",
        "elements",
        "start_image_url",
        "tail_image_url",
        "negative_prompt",
        "aspect_ratio",
        "generate_audio",
        "response_format",
        "target_namespace",
    ]
    assert list(body["elements"][0]) == ["frontal_image_url", "reference_image_urls"]


def test_single_shot_is_prompt_and_duration(tmp_path):
    body = _body(tmp_path, 'shot only 7s "a lighthouse at dusk"\n').body
    assert body == {"model": "kling-video-o3-pro-reference-to-video", "prompt": "a lighthouse at dusk", "duration": 7}
    assert isinstance(body["duration"], int)


def test_unnamed_shot_and_bare_duration(tmp_path):
    body = _body(tmp_path, 'shot 4 "no name, no unit"\n').body
    assert body["prompt"] == "no name, no unit" and body["duration"] == 4


def test_shot_order_is_script_order(tmp_path):
    text = 'shot z 3s "first"\nshot a 4s "second"\nshot m 5s "third"\n'
    body = _body(tmp_path, text).body
    assert [(s["prompt"], s["duration"]) for s in body["multi_prompt"]] == [("first", 3), ("second", 4), ("third", 5)]


def test_settings_omitted_when_not_set(tmp_path):
    body = _body(tmp_path, 'shot a 5s "x"\n').body
    for key in (
        "negative_prompt",
        "aspect_ratio",
        "generate_audio",
        "response_format",
        "target_namespace",
        "input_image",
        "elements",
        "start_image_url",
        "tail_image_url",
        "num_generations",
    ):
        assert key not in body


@pytest.mark.parametrize(
    "setting, key, value",
    [
        ("aspect 16:9", "aspect_ratio", "16:9"),
        ("aspect 1:1", "aspect_ratio", "1:1"),
        ("audio off", "generate_audio", False),
        ("audio on", "generate_audio", True),
        ("format url", "response_format", "url"),
        ("format b64", "response_format", "b64_json"),
        ('negative "blur, distort, and low quality"', "negative_prompt", "blur, distort, and low quality"),
        ("namespace aurora-studio", "target_namespace", "aurora-studio"),
        ("model kling-video-o3-pro-reference-to-video", "model", "kling-video-o3-pro-reference-to-video"),
    ],
)
def test_settings_written_when_set_even_at_default(tmp_path, setting, key, value):
    body = _body(tmp_path, f'{setting}\nshot a 5s "x"\n').body
    assert body[key] == value
    assert type(body[key]) is type(value)


def test_templated_setting_value(tmp_path):
    body = _body(tmp_path, 'let avoid = "text"\nnegative "blur, {{ avoid }}"\nshot a 5s "x"\n').body
    assert body["negative_prompt"] == "blur, text"


def test_image_to_video_start_key(tmp_path):
    text = 'model kling-video-o3-pro-image-to-video\nstart "https://e.com/frame.png"\nshot a 5s "x"\n'
    body = _body(tmp_path, text).body
    assert body["input_image"] == "https://e.com/frame.png"
    assert "start_image_url" not in body


def test_output_is_byte_identical_across_runs(tmp_path):
    first = run(tmp_path, COMPLETE).request.json
    second = run(tmp_path, COMPLETE).request.json
    copy_path = write(tmp_path, COMPLETE, "elsewhere/copy.kvs")
    third = compiling.compile_script(run(tmp_path, COMPLETE).bound).json
    from klingspec.pipeline import run_pipeline

    fourth = run_pipeline(copy_path).request.json
    assert first.encode() == second.encode() == third.encode() == fourth.encode()
    assert first.endswith("}\n")


def test_output_is_byte_identical_across_processes(tmp_path):
    """Different hash seeds must not change key order or bytes (no set/dict-order leaks)."""
    path = write(tmp_path, COMPLETE)
    outputs = []
    for seed in ("1", "2", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        done = subprocess.run(
            [sys.executable, "-m", "klingspec", "compile", path], capture_output=True, env=env, timeout=60
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1] == outputs[2]
    assert json.loads(outputs[0]) == COMPLETE_BODY


def test_non_ascii_written_as_is(tmp_path):
    request = _body(tmp_path, 'shot a 5s "café — 東京の朝"\n')
    assert "café — 東京の朝" in request.json
    assert "\\u" not in request.json


def test_content_hash_is_stable_and_well_formed(tmp_path):
    a = run(tmp_path, COMPLETE).request.content_hash
    b = run(tmp_path, COMPLETE).request.content_hash
    assert a == b
    assert a.startswith("sha256:") and len(a) == len("sha256:") + 64
    int(a.removeprefix("sha256:"), 16)


def test_content_hash_ignores_comments_and_layout(tmp_path):
    plain = 'aspect 9:16\nshot a 5s "x"\n'
    dressed = '# a comment\n\naspect   9:16   # why\n\n\nshot   a   5   "x"  # done\n'
    assert run(tmp_path, plain).request.content_hash == run(tmp_path, dressed).request.content_hash


def test_content_hash_sensitive_to_generations(tmp_path):
    hashes = {n: run(tmp_path, f'generations {n}\nshot a 5s "x"\n').request.content_hash for n in (1, 2, 3, 4)}
    assert len(set(hashes.values())) == 4
    # leaving generations out means 1
    assert run(tmp_path, 'shot a 5s "x"\n').request.content_hash == hashes[1]


@pytest.mark.parametrize(
    "change", ['shot a 5s "y"\n', 'shot a 6s "x"\n', 'aspect 1:1\nshot a 5s "x"\n', 'audio off\nshot a 5s "x"\n']
)
def test_content_hash_sensitive_to_body(tmp_path, change):
    base = run(tmp_path, 'shot a 5s "x"\n').request
    other = run(tmp_path, change).request
    assert base.body != other.body
    assert base.content_hash != other.content_hash


def test_content_hash_is_sha256_of_canonical_body_and_generations(tmp_path):
    request = run(tmp_path, COMPLETE).request
    canonical = json.dumps(
        {"body": COMPLETE_BODY, "num_generations": 2}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert request.content_hash == "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


# -- schema agreement -------------------------------------------------------------------


def _valid_scripts():
    """A spread of scripts the checker accepts: shot counts x bindings x frames x settings."""
    shot_sets = [["5"], ["3"], ["15"], ["2", "1"], ["5", "5", "5"], ["1", "1", "1", "1", "1", "1"]]
    binding_sets = [
        ([], []),
        (["cafe"], []),
        ([], ["hero"]),
        (["cafe", "palette"], ["hero", "villain"]),
    ]
    frame_sets = ["", 'start "https://e.com/s.png"\n', 'start "https://e.com/s.png"\nend "https://e.com/e.png"\n']
    setting_sets = [
        "",
        "aspect 9:16\naudio on\nformat b64\n",
        'negative "x"\nnamespace my.org\ngenerations 4\nmodel kling-video-o3-pro-reference-to-video\n',
    ]
    for shots, (images, elements), frames, settings in itertools.product(
        shot_sets, binding_sets, frame_sets, setting_sets
    ):
        lines = [settings]
        lines += [f'image {n} = "https://e.com/{n}.png"\n' for n in images]
        for n in elements:
            lines.append(
                f'element {n} {{\n  front "https://e.com/{n}-f.png"\n'
                f'  refs "https://e.com/{n}-1.png", "https://e.com/{n}-2.png"\n}}\n'
            )
        lines.append(frames)
        mention = " ".join(f"@{n}" for n in images + elements)
        for i, seconds in enumerate(shots):
            lines.append(f'shot s{i} {seconds}s "shot {i} {mention}"\n')
        yield "".join(lines)


def test_schema_accepts_every_valid_script(tmp_path):
    from jsonschema import Draft202012Validator

    from klingspec.resources import read_text

    validator = Draft202012Validator(json.loads(read_text("schema", "request.schema.json")))
    count = 0
    for text in _valid_scripts():
        result = run(tmp_path, text)
        assert errors(result) == [], (text, [(d.code, d.message) for d in result.diagnostics])
        assert "KVS-schema" not in codes(result) and "KVS-schema-model" not in codes(result)
        assert list(validator.iter_errors(result.request.body)) == []
        count += 1
    assert count == 6 * 4 * 3 * 3


def _compiled(tmp_path, text):
    result = run(tmp_path, text)
    assert errors(result) == []
    return result.request


def _with_body(request: Request, mutate) -> Request:
    body = copy.deepcopy(request.body)
    mutate(body)
    return dataclasses.replace(request, body=body)


def test_schema_violation_too_long_prompt_maps_to_prompt_span(tmp_path):
    text = 'aspect 9:16\nshot a 5s "short"\n'
    request = _compiled(tmp_path, text)
    problems = validate(_with_body(request, lambda b: b.update(prompt="p" * 513)))
    assert [d.code for d in problems] == ["KVS-schema"]
    assert where(problems[0]) == locate(text, '"short"')
    assert "/prompt" in problems[0].message


def test_schema_violation_in_multi_prompt_maps_to_that_shot(tmp_path):
    text = 'shot a 5s "one"\nshot b 5s "two"\nshot c 5s "three"\n'
    request = _compiled(tmp_path, text)

    def mutate(body):
        body["multi_prompt"][1]["prompt"] = "q" * 600

    problems = validate(_with_body(request, mutate))
    assert len(problems) == 1
    assert where(problems[0]) == locate(text, '"two"')
    assert "/multi_prompt/1/prompt" in problems[0].message


def test_schema_violation_shot_duration_maps_to_duration(tmp_path):
    text = 'shot a 5s "one"\nshot b 7s "two"\n'
    request = _compiled(tmp_path, text)

    def mutate(body):
        body["multi_prompt"][1]["duration"] = 31

    problems = validate(_with_body(request, mutate))
    assert [where(d) for d in problems] == [locate(text, "7s")]


def test_schema_violation_bad_enum_maps_to_setting(tmp_path):
    text = 'shot a 5s "x"\naspect 9:16\n'
    request = _compiled(tmp_path, text)
    problems = validate(_with_body(request, lambda b: b.update(aspect_ratio="4:3")))
    # klingspec's API schema and the model's published schema both refuse it, at the setting
    assert [(d.code, where(d)) for d in problems] == [
        ("KVS-schema", locate(text, "9:16")),
        ("KVS-schema-model", locate(text, "9:16")),
    ]
    assert "`kling-video-o3-pro-reference-to-video`'s published request schema at /aspect_ratio" in (
        problems[1].message
    )


def test_schema_violation_bad_uri_maps_to_binding(tmp_path):
    text = 'image cafe = "https://e.com/cafe.png"\nimage p = "https://e.com/p.png"\nshot a 5s "@cafe @p"\n'
    request = _compiled(tmp_path, text)

    def mutate(body):
        body["input_image"][1] = "relative/p.png"

    problems = validate(_with_body(request, mutate))
    assert [where(d) for d in problems] == [locate(text, '"https://e.com/p.png"')]


def test_schema_violation_unknown_key_maps_to_model_fallback(tmp_path):
    text = 'model kling-video-o3-pro-reference-to-video\nshot a 5s "x"\n'
    request = _compiled(tmp_path, text)
    problems = validate(_with_body(request, lambda b: b.update(num_generations=2)))
    assert len(problems) == 1 and problems[0].code == "KVS-schema"
    assert where(problems[0]) == locate(text, "kling-video-o3-pro-reference-to-video")


def test_schema_violation_tail_without_start(tmp_path):
    text = 'start "https://e.com/s.png"\nend "https://e.com/e.png"\nshot a 5s "x"\n'
    request = _compiled(tmp_path, text)
    problems = validate(_with_body(request, lambda b: b.pop("start_image_url")))
    assert [d.code for d in problems] == ["KVS-schema"]
    assert problems[0].span.source.name.endswith("main.kvs")


def test_schema_violation_both_prompt_forms(tmp_path):
    request = _compiled(tmp_path, 'shot a 5s "one"\nshot b 5s "two"\n')
    problems = validate(_with_body(request, lambda b: b.update(prompt="extra")))
    assert problems and all(d.code == "KVS-schema" and d.is_error for d in problems)


def test_validate_passes_the_real_body(tmp_path):
    assert validate(_compiled(tmp_path, COMPLETE)) == []
