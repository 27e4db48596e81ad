"""checking.py: the API document's tables row by row, then every rule in RULES.

Sources: the model document of `kling-video-o3-pro-reference-to-video` (its Duration
Constraints and Errors tables) and the language design's "Rules the checker enforces", as
docs/language.md and the pages under docs/codes/ state them for users.
Everything runs through real files and the real pipeline.
"""

from __future__ import annotations

import json
import re

import pytest
from helpers import codes, errors, locate, only, run, where

from klingspec import checking
from klingspec.compiling import Request, validate
from klingspec.source import Source

A = "https://cdn.example.com/a.png"
B = "https://cdn.example.com/b.png"


def shots_script(durations: list[int]) -> str:
    """One `shot sN Ds "..."` line per duration, after a comment line."""
    lines = ["# duration table row"]
    for i, seconds in enumerate(durations, 1):
        lines.append(f'shot s{i} {seconds}s "scene number {i}"')
    return "\n".join(lines) + "\n"


# -- Duration Constraints table, one test per row ------------------------------------

DURATION_ROWS = [
    pytest.param([1], False, id="single-1s-fails"),
    pytest.param([2], False, id="single-2s-fails"),
    pytest.param([3], True, id="single-3s-works"),
    pytest.param([2, 1], True, id="two-2+1-works"),
    pytest.param([1, 1], False, id="two-1+1-fails"),
    pytest.param([15], True, id="single-15s-works"),
    pytest.param([5, 5, 5], True, id="three-5+5+5-works"),
    pytest.param([5, 5, 6], False, id="three-5+5+6-fails"),
]


@pytest.mark.parametrize("durations, works", DURATION_ROWS)
def test_duration_constraints_row(tmp_path, durations, works):
    text = shots_script(durations)
    result = run(tmp_path, text)
    if works:
        assert errors(result) == []
        body = result.request.body
        if len(durations) == 1:
            assert body["duration"] == durations[0]
            assert "multi_prompt" not in body
        else:
            assert [shot["duration"] for shot in body["multi_prompt"]] == durations
            assert "duration" not in body and "prompt" not in body
        assert result.estimate.seconds == sum(durations)
        return
    assert result.request is None
    assert errors(result) == ["KVS-total-duration"]
    diagnostic = only(result, "KVS-total-duration")
    total = sum(durations)
    if total > 15:
        # the shot whose duration pushes the running total past 15 s
        running, crossing = 0, None
        for i, seconds in enumerate(durations, 1):
            running += seconds
            if running > 15:
                crossing = i
                break
    else:
        crossing = len(durations)  # too short: the last shot is where to lengthen
    expected_line = crossing + 1  # line 1 is the comment
    line_text = text.split("\n")[expected_line - 1]
    column = line_text.index(f" {durations[crossing - 1]}s ") + 2
    assert where(diagnostic) == (expected_line, column, expected_line, column + len(f"{durations[crossing - 1]}s"))
    assert diagnostic.span.text == f"{durations[crossing - 1]}s"
    assert f"{total} s" in diagnostic.message


# -- Errors table, one test per row ---------------------------------------------------

BOTH_SCRIPTS = [
    'shot a 5s "one"\n',
    'shot 3 "unnamed"\n',
    'shot a 5s "one"\nshot b 5s "two"\n',
    'shot a 5s "one"\nshot b 5s "two"\nshot c 5s "three"\n',
    f'image cafe = "{A}"\naspect 9:16\naudio on\nshot a 4s "in @cafe"\nshot b 4 "again @cafe"\n',
    f'element hero {{\n  front "{A}"\n}}\nstart "{B}"\nshot a 15s "@hero walks"\n',
]


@pytest.mark.parametrize("text", BOTH_SCRIPTS, ids=[f"script-{i}" for i in range(len(BOTH_SCRIPTS))])
def test_errors_row_never_both_prompt_and_multi_prompt(tmp_path, text):
    """'Cannot provide both 'prompt' and 'multi_prompt'': compile never emits both."""
    result = run(tmp_path, text)
    assert errors(result) == [], codes(result)
    body = result.request.body
    assert ("prompt" in body) != ("multi_prompt" in body)
    shot_count = text.count("shot ")
    if shot_count == 1:
        assert "prompt" in body and "duration" in body
    else:
        assert len(body["multi_prompt"]) == shot_count
        assert "duration" not in body


def test_errors_row_both_prompt_and_multi_prompt_rejected_by_schema(tmp_path):
    """The schema agrees with the API: a hand-made body with both fails validation."""
    source = Source("both.kvs", 'shot a 5s "x"\n')
    model_span = source.span(0, 4)
    body = {
        "model": "kling-video-o3-pro-reference-to-video",
        "prompt": "x",
        "duration": 5,
        "multi_prompt": [{"prompt": "y", "duration": 5}],
    }
    problems = validate(Request(body["model"], body, 1, {"/model": model_span}))
    assert problems and {d.code for d in problems} == {"KVS-schema"}


@pytest.mark.parametrize(
    "text",
    ["", "# only a comment\n", "aspect 9:16\naudio on\n", f'image cafe = "{A}"\n'],
    ids=["empty", "comment", "settings-only", "declarations-only"],
)
def test_errors_row_neither_prompt_nor_multi_prompt(tmp_path, text):
    """'Either 'prompt' or 'multi_prompt' must be provided' -> KVS-no-shots."""
    result = run(tmp_path, text)
    assert result.request is None
    diagnostic = only(result, "KVS-no-shots")
    assert diagnostic.is_error
    assert "Either 'prompt' or 'multi_prompt' must be provided" in diagnostic.help


@pytest.mark.parametrize(
    "text, code",
    [
        ('shot a 5s "fine"\nshot b 5s\n', "KVS-syntax-eof"),
        ('shot a 5s "fine"\nshot b 5s\nshot c 5s "after"\n', "KVS-syntax-unexpected"),
    ],
    ids=["at-end", "in-the-middle"],
)
def test_errors_row_shot_missing_prompt_is_a_syntax_error(tmp_path, text, code):
    """'Field required' (multi_prompt item missing prompt): a shot without a prompt does not parse."""
    result = run(tmp_path, text)
    assert result.request is None
    diagnostic = only(result, code)
    assert diagnostic.span.start_position[0] == 2
    assert "a shot needs a prompt string after its duration" in diagnostic.message
    assert errors(result) == [code]  # no cascade (e.g. no total-duration from the lost shot)


def test_errors_row_shot_with_empty_prompt(tmp_path):
    """An empty prompt string is the same API error, caught after parsing."""
    text = 'shot a 5s "fine"\nshot b 5s ""\n'
    result = run(tmp_path, text)
    diagnostic = only(result, "KVS-prompt-empty")
    assert where(diagnostic) == locate(text, '""')
    assert "Field required" in diagnostic.help


@pytest.mark.parametrize("durations", [[2], [1, 1]], ids=["single-2s", "two-1+1"])
def test_errors_row_total_below_three(tmp_path, durations):
    result = run(tmp_path, shots_script(durations))
    diagnostic = only(result, "KVS-total-duration")
    assert "duration value '2' is invalid" in diagnostic.help


def test_errors_row_total_sixteen(tmp_path):
    text = shots_script([6, 10])
    result = run(tmp_path, text)
    diagnostic = only(result, "KVS-total-duration")
    assert "Total shot duration (16s) exceeds maximum allowed (15s)" in diagnostic.help
    assert where(diagnostic) == locate(text, "10s")
    assert diagnostic.label == "this shot brings the total to 16 s"


@pytest.mark.parametrize("seconds", [16, 20, 99])
def test_errors_row_single_shot_over_fifteen(tmp_path, seconds):
    text = f'shot long {seconds}s "too long"\n'
    result = run(tmp_path, text)
    assert errors(result) == ["KVS-shot-duration"]  # not also a total-duration error
    diagnostic = only(result, "KVS-shot-duration")
    assert where(diagnostic) == locate(text, f"{seconds}s")
    assert "Input should be '1', '2', ... or '15'" in diagnostic.help


@pytest.mark.parametrize("count, ok", [("0", False), ("1", True), ("4", True), ("5", False)])
def test_errors_row_num_generations(tmp_path, count, ok):
    text = f'generations {count}\nshot a 5s "x"\n'
    result = run(tmp_path, text)
    if ok:
        assert errors(result) == []
        assert result.request.generations == int(count)
        assert "num_generations" not in result.request.body
        return
    diagnostic = only(result, "KVS-generations")
    assert where(diagnostic) == (1, 13, 1, 14)
    assert "num_generations must be an integer between 1 and 4" in diagnostic.help


# -- one test per rule in RULES ----------------------------------------------------------

RULE_CODES = {
    "model_known": {"KVS-model-unknown"},
    "model_retired": {"KVS-model-retired"},
    "model_requirements": {"KVS-model-unsupported"},
    "start_required": {"KVS-start-required"},
    "price_known": {"KVS-price-unknown"},
    "setting_duplicates": {"KVS-setting-duplicate"},
    "aspect_ratio": {"KVS-aspect-ratio"},
    "aspect_with_frames": {"KVS-aspect-with-frames"},
    "resolution": {"KVS-setting-unknown-value"},
    "setting_words": {"KVS-setting-unknown-value"},
    "generations": {"KVS-generations"},
    "namespace": {"KVS-namespace"},
    "assets_setting": {"KVS-assets"},
    "has_shots": {"KVS-no-shots"},
    "prompts": {"KVS-prompt-empty", "KVS-prompt-length"},
    "whole_seconds": {"KVS-duration-fraction"},
    "shot_durations": {"KVS-shot-duration"},
    "total_duration": {"KVS-total-duration"},
    "shots_beyond_kling": {"KVS-shots-beyond-kling"},
    "reference_count": {"KVS-too-many-references"},
    "element_fields": {"KVS-element-front", "KVS-element-duplicate-field", "KVS-too-many-refs"},
    "frames": {"KVS-frame-duplicate", "KVS-end-without-start"},
    "frames_with_multishot": {"KVS-frames-with-multishot"},
    "uris": {"KVS-uri-scheme", "KVS-uri-invalid"},
    "fetchable_urls": {"KVS-url-http", "KVS-url-private", "KVS-url-page"},
    "unused_bindings": {"KVS-binding-unused"},
    "duplicate_uris": {"KVS-uri-duplicate"},
    "elements_mentioned": {"KVS-elements-unmentioned"},
    "image_formats": {"KVS-image-format", "KVS-image-format-unlisted"},
    "image_size_upstream": {"KVS-image-large"},
    "image_side_upstream": {"KVS-image-small"},
    "image_aspect_upstream": {"KVS-image-aspect"},
}


def test_every_rule_is_tested_here():
    """Adding a rule to RULES without a test below makes this fail."""
    assert {rule.__name__ for rule in checking.RULES} == set(RULE_CODES)
    assert len(checking.RULES) == len(set(checking.RULES))


def _rule_emits(tmp_path, rule_name: str, text: str) -> set[str]:
    """Run one rule alone on the bound script of `text` and return the codes it emits."""
    result = run(tmp_path, text, validate_schema=False)
    rule = getattr(checking, rule_name)
    model = result.bound.model or checking.lookup_model(checking.DEFAULT_MODEL)
    return {d.code for d in rule(result.bound, model)}


def test_rule_model_known(tmp_path):
    text = 'model kling-video-o3-pro-reference-to-vide\nshot a 5s "x"\n'
    result = run(tmp_path, text)
    diagnostic = only(result, "KVS-model-unknown")
    assert where(diagnostic) == locate(text, "kling-video-o3-pro-reference-to-vide")
    assert diagnostic.help == "did you mean `kling-video-o3-pro-reference-to-video`?"
    assert _rule_emits(tmp_path, "model_known", text) == {"KVS-model-unknown"}


def test_rule_model_known_accepts_every_listed_model(tmp_path):
    from klingspec.targets import known_ids

    for model_id in known_ids():
        result = run(tmp_path, f'model {model_id}\nstart "{A}"\nshot a 5s "x"\n')
        assert "KVS-model-unknown" not in codes(result), model_id


def test_rule_model_requirements_input_video(tmp_path):
    text = 'model kling-video-o3-pro-video-to-video-edit\nshot a 5s "x"\n'
    result = run(tmp_path, text)
    diagnostic = only(result, "KVS-model-unsupported")
    assert where(diagnostic) == locate(text, "kling-video-o3-pro-video-to-video-edit")
    assert "input_video" in diagnostic.message


def test_rule_model_requirements_single_prompt_model(tmp_path):
    text = 'model kling-video-v2-6-pro-text-to-video\nshot a 5s "x"\nshot b 5s "y"\n'
    result = run(tmp_path, text)
    diagnostic = only(result, "KVS-model-unsupported")
    assert where(diagnostic)[:2] == (3, 1)  # the second shot
    assert "2 shots" in diagnostic.message


@pytest.mark.parametrize(
    "model, line, needle",
    [
        ("kling-video-v2-6-pro-text-to-video", f'image cafe = "{A}"', "image cafe"),
        ("kling-video-v2-6-pro-text-to-video", f'start "{A}"', "start"),
        ("kling-video-v2-6-pro-image-to-video", f'start "{A}"\nend "{B}"', "end"),
        ("kling-video-o3-pro-image-to-video", "audio on", "audio on"),
        ("kling-video-v2-6-pro-image-to-video", "aspect 9:16", "aspect 9:16"),
        ("kling-video-o3-pro-image-to-video", 'negative "blur"', "negative"),
        ("kling-video-o3-omni", 'negative "blur"', "negative"),
        ("kling-video-o3-pro-reference-to-video", "resolution 1080p", "resolution"),
        ("kling-video-v2-6-pro-text-to-video", "resolution 720p", "resolution"),
    ],
    ids=["image", "start", "end", "audio", "aspect", "negative", "omni-negative", "resolution", "resolution-v2-6"],
)
def test_rule_model_requirements_features(tmp_path, model, line, needle):
    text = (
        f'model {model}\n{line}\nshot a 5s "x @cafe"\n' if "cafe" in line else f'model {model}\n{line}\nshot a 5s "x"\n'
    )
    result = run(tmp_path, text)
    diagnostic = only(result, "KVS-model-unsupported")
    line_no, column, _, _ = locate(text, needle)
    assert diagnostic.span.start_position == (line_no, column)


@pytest.mark.parametrize(
    "line, field",
    [('negative "blur"', "negative_prompt"), ("resolution 4k", "resolution"), ("audio on", "generate_audio")],
)
def test_rule_model_requirements_unsupported_setting_names_the_field_and_removes_the_line(tmp_path, line, field):
    model = "kling-video-o3-omni" if "negative" in line else "kling-video-o3-pro-image-to-video"
    text = f'model {model}\n{line}   # a comment\nshot a 5s "x"\n'
    diagnostic = only(run(tmp_path, text), "KVS-model-unsupported")
    assert "does not take" in diagnostic.message and model in diagnostic.message
    assert f"published request schema has no `{field}`" in diagnostic.help
    [fix] = diagnostic.suggestions
    assert fix.preferred and fix.replacement == ""
    fixed = text[: fix.span.start] + text[fix.span.end :]
    assert fixed == f'model {model}\nshot a 5s "x"\n'


def test_several_shots_on_omni_are_an_error_naming_a_multi_shot_model(tmp_path):
    """Oxen's schema for omni has no `multi_prompt`; klingspec invents no field for Kling's
    native multi-shot mode, so a second shot is a clear error before anything is sent."""
    text = 'model kling-video-o3-omni\nshot a 5s "one"\nshot b 5s "two"\nshot c 5s "three"\n'
    result = run(tmp_path, text)
    assert errors(result) == ["KVS-model-unsupported"]
    diagnostic = only(result, "KVS-model-unsupported")
    assert where(diagnostic) == locate(text, 'shot b 5s "two"')
    assert diagnostic.message == "`kling-video-o3-omni` takes a single prompt, but the script has 3 shots"
    assert "no `multi_prompt`" in diagnostic.help
    assert "use a multi-shot model such as `kling-video-o3-pro-reference-to-video`" in diagnostic.help
    assert result.request is None
    # the upstream multi-shot warnings are for multi-shot models only
    assert "KVS-shots-beyond-kling" not in codes(result) and "KVS-frames-with-multishot" not in codes(result)


def test_the_multi_shot_hint_names_a_model_that_takes_several_shots(monkeypatch):
    from klingspec.targets import model

    named = checking._multi_shot_model()
    assert named is not None and model(named).multi_prompt
    monkeypatch.setattr(checking, "DEFAULT_MODEL", "kling-video-o3-omni")  # a single-prompt default
    other = checking._multi_shot_model()
    assert other is not None and model(other).multi_prompt


def test_rule_model_requirements_audio_off_is_fine(tmp_path):
    text = 'model kling-video-o3-pro-image-to-video\naudio off\nshot a 5s "x"\n'
    assert "KVS-model-unsupported" not in codes(run(tmp_path, text))


def test_rule_setting_duplicates(tmp_path):
    text = 'aspect 9:16\naudio on\naspect 1:1\nshot a 5s "x"\n'
    result = run(tmp_path, text)
    diagnostic = only(result, "KVS-setting-duplicate")
    assert where(diagnostic) == locate(text, "aspect 1:1")
    assert [r.span.start_position for r in diagnostic.related] == [(1, 1)]
    # "the first one is used"
    assert run(tmp_path, text.replace("aspect 1:1\n", "")).bound.settings["aspect"].raw == "9:16"
    assert result.bound.settings["aspect"].raw == "9:16"


@pytest.mark.parametrize("value", ["4:3", "16:10", "916"])
def test_rule_aspect_ratio(tmp_path, value):
    text = f'aspect {value}\nshot a 5s "x"\n'
    diagnostic = only(run(tmp_path, text), "KVS-aspect-ratio")
    assert where(diagnostic) == locate(text, value)
    for ok in ("16:9", "9:16", "1:1"):
        assert "KVS-aspect-ratio" not in codes(run(tmp_path, f'aspect {ok}\nshot a 5s "x"\n'))


def test_rule_setting_words(tmp_path):
    text = 'audio loud\nformat gif\nshot a 5s "x"\n'
    result = run(tmp_path, text)
    found = [d for d in result.diagnostics if d.code == "KVS-setting-unknown-value"]
    assert [where(d) for d in found] == [locate(text, "loud"), locate(text, "gif")]
    near = run(tmp_path, 'format ur\nshot a 5s "x"\n')
    assert only(near, "KVS-setting-unknown-value").help == "did you mean `url`?"


OMNI = "kling-video-o3-omni"


@pytest.mark.parametrize(
    "lines, wrong",
    [
        ([f'start "{A}"'], True),
        ([f'start "{A}"', f'end "{B}"'], True),
        ([f'end "{B}"'], True),  # also KVS-end-without-start
        ([f'start "{A}"', f'image cafe = "{B}"'], False),
        ([f'start "{A}"', f'element hero {{\n  front "{B}"\n}}'], False),
        ([], False),
    ],
    ids=["start", "start-end", "end-only", "start-image", "start-element", "no-frames"],
)
def test_rule_aspect_with_frames(tmp_path, lines, wrong):
    mention = " @cafe" if "cafe" in "".join(lines) else " @hero" if "hero" in "".join(lines) else ""
    text = f"model {OMNI}\naspect 9:16\n" + "".join(f"{line}\n" for line in lines) + f'shot a 5s "x{mention}"\n'
    result = run(tmp_path, text)
    found = [d for d in result.diagnostics if d.code == "KVS-aspect-with-frames"]
    if not wrong:
        assert found == [] and errors(result) == []
        assert result.request.body["aspect_ratio"] == "9:16"
        return
    [diagnostic] = found
    assert diagnostic.severity == "error"
    assert where(diagnostic) == locate(text, "aspect 9:16")
    assert "leave `aspect_ratio` out" in diagnostic.help
    assert [r.span.text.split()[0] for r in diagnostic.related] == [line.split()[0] for line in lines]
    [fix] = diagnostic.suggestions
    assert fix.preferred and text[: fix.span.start] + text[fix.span.end :] == text.replace("aspect 9:16\n", "")


def test_aspect_with_frames_is_fine_on_models_that_take_it(tmp_path):
    text = f'aspect 9:16\nstart "{A}"\nshot a 5s "x"\n'  # the reference-to-video model
    result = run(tmp_path, text)
    assert errors(result) == [] and result.request.body["aspect_ratio"] == "9:16"


def test_a_frames_only_omni_body_never_carries_an_aspect_ratio(tmp_path):
    """The compiler stays total: even past the error, `aspect_ratio` is not sent, and the
    default ratio is never sent either."""
    from klingspec.compiling import compile_script

    text = f'model {OMNI}\naspect 1:1\nstart "{A}"\nend "{B}"\nshot a 5s "x"\n'
    body = compile_script(run(tmp_path, text).bound).body
    assert "aspect_ratio" not in body and body["start_image_url"] == A
    body = run(tmp_path, text.replace("aspect 1:1\n", "")).request.body
    assert "aspect_ratio" not in body


@pytest.mark.parametrize("value", ["720p", "1080p", "4k"])
def test_rule_resolution_accepts_the_matrix_values(tmp_path, value):
    text = f'model {OMNI}\nresolution {value}\nshot a 5s "x"\n'
    result = run(tmp_path, text)
    assert errors(result) == []
    assert result.request.body["resolution"] == value


@pytest.mark.parametrize(
    "value, close",
    [("4K", "4k"), ("1080P", "1080p"), ("1080", "1080p"), ("720", "720p"), ("8k", None), ("huge", None)],
)
def test_rule_resolution(tmp_path, value, close):
    text = f'model {OMNI}\nresolution {value}\nshot a 5s "x"\n'
    result = run(tmp_path, text)
    diagnostic = only(result, "KVS-setting-unknown-value")
    assert where(diagnostic) == locate(text, value, 1 if value in OMNI else 0)
    assert f"does not offer resolution `{value}`" in diagnostic.message
    assert "`720p`, `1080p`, `4k` (`1080p` when absent)" in diagnostic.help
    if close is None:
        assert "did you mean" not in diagnostic.help and diagnostic.suggestions == ()
    else:
        assert diagnostic.help.startswith(f"did you mean `{close}`?")
        [fix] = diagnostic.suggestions
        assert (fix.span.text, fix.replacement) == (value, close)
    assert _rule_emits(tmp_path, "resolution", text) == {"KVS-setting-unknown-value"}


def test_rule_resolution_reads_the_values_from_the_model(tmp_path):
    from dataclasses import replace

    text = 'resolution 8k\nshot a 5s "x"\n'
    result = run(tmp_path, text, validate_schema=False)
    model = checking.lookup_model(checking.DEFAULT_MODEL)
    assert list(checking.resolution(result.bound, model)) == []  # told by model_requirements
    assert list(checking.resolution(result.bound, replace(model, resolutions=("8k",)))) == []
    [diagnostic] = checking.resolution(result.bound, replace(model, resolutions=("2k",)))
    assert "`2k`" in diagnostic.help


@pytest.mark.parametrize("value", ["0", "5", "two", "-1", "1.5"])
def test_rule_generations(tmp_path, value):
    text = f'shot a 5s "x"\ngenerations {value}\n'
    diagnostic = only(run(tmp_path, text), "KVS-generations")
    assert where(diagnostic) == locate(text, value, text.count(value) - 1)


@pytest.mark.parametrize(
    "value, ok",
    [("aurora-studio", True), ("org.name_1", True), ('"bad name"', False), ("-leading", False), ("a" * 65, False)],
)
def test_rule_namespace(tmp_path, value, ok):
    text = f'namespace {value}\nshot a 5s "x"\n'
    result = run(tmp_path, text)
    if ok:
        assert errors(result) == []
        assert result.request.body["target_namespace"] == value
    else:
        diagnostic = only(result, "KVS-namespace")
        assert diagnostic.span.start_position == (1, 11)


def test_rule_has_shots_position(tmp_path):
    text = "aspect 9:16\n\n# nothing else\n\n"
    diagnostic = only(run(tmp_path, text), "KVS-no-shots")
    assert diagnostic.span.start_position == (3, 15)  # end of the last non-blank text


def test_rule_has_shots_library_ok_for_check_only(tmp_path):
    library = f'let mood = "dusk"\nimage cafe = "{A}"\n'
    assert "KVS-no-shots" not in codes(run(tmp_path, library, library_ok=True))
    assert "KVS-no-shots" in codes(run(tmp_path, library, library_ok=False))
    # a file with settings is not a library even for check
    assert "KVS-no-shots" in codes(run(tmp_path, "aspect 9:16\n", library_ok=True))


def test_rule_prompts_length_boundary(tmp_path):
    ok = run(tmp_path, f'shot a 5s "{"x" * 512}"\n')
    assert errors(ok) == [] and len(ok.request.body["prompt"]) == 512
    text = f'shot a 5s "{"x" * 513}"\n'
    diagnostic = only(run(tmp_path, text), "KVS-prompt-length")
    assert where(diagnostic) == locate(text, '"' + "x" * 513 + '"')
    assert "513" in diagnostic.message and "512" in diagnostic.message
    assert "cut 1 character " in diagnostic.help


def test_rule_prompts_length_counts_after_rewriting(tmp_path):
    # 512 characters as written, but "@hero" -> "@Element1" makes it 516
    prompt = "y" * 506 + " @hero"
    text = f'element hero {{\n  front "{A}"\n}}\nshot a 5s "{prompt}"\n'
    diagnostic = only(run(tmp_path, text), "KVS-prompt-length")
    assert "516" in diagnostic.message


def test_rule_prompts_length_counts_after_templates(tmp_path):
    text = "let n = 600\nshot a 5s \"{{ 'z' * n }}\"\n"
    assert "KVS-prompt-length" in codes(run(tmp_path, text))


def test_rule_prompts_empty_after_expansion(tmp_path):
    text = 'let blank = "   "\nshot a 5s "{{ blank }}"\n'
    diagnostic = only(run(tmp_path, text), "KVS-prompt-empty")
    assert where(diagnostic) == locate(text, '"{{ blank }}"')


def test_rule_prompts_emits_both_codes(tmp_path):
    text = f'shot a 5s ""\nshot b 5s "{"q" * 600}"\n'
    assert _rule_emits(tmp_path, "prompts", text) == {"KVS-prompt-empty", "KVS-prompt-length"}


def test_rule_whole_seconds(tmp_path):
    text = 'shot a 2.5s "x"\nshot b 5s "y"\n'
    result = run(tmp_path, text)
    diagnostic = only(result, "KVS-duration-fraction")
    assert where(diagnostic) == locate(text, "2.5s")
    assert diagnostic.help == "use 2s or 3s"
    assert "KVS-total-duration" not in codes(result)


@pytest.mark.parametrize("seconds", ["0", "0s", "-3s"])
def test_rule_shot_durations_below_one(tmp_path, seconds):
    text = f'shot a {seconds} "x"\nshot b 5s "y"\n'
    diagnostic = only(run(tmp_path, text), "KVS-shot-duration")
    assert where(diagnostic) == locate(text, seconds)


def test_rule_shot_durations_allowed_list(tmp_path):
    text = 'model kling-video-v2-6-pro-text-to-video\nshot a 7s "x"\n'
    diagnostic = only(run(tmp_path, text), "KVS-shot-duration")
    assert where(diagnostic) == locate(text, "7s")
    assert "5s, 10s" in diagnostic.help
    assert errors(run(tmp_path, text.replace("7s", "10s"))) == []


def test_rule_total_duration_lists_shots(tmp_path):
    text = 'shot arrival 6s "x"\nshot sip 10s "y"\n'
    diagnostic = only(run(tmp_path, text), "KVS-total-duration")
    assert diagnostic.message == "shots add up to 16 s; the API allows at most 15 s"
    assert diagnostic.help.startswith("arrival 6 s + sip 10 s; shorten")


def test_rule_reference_count(tmp_path):
    lines = [f'image i{n} = "https://cdn.example.com/{n}.png"' for n in range(1, 4)]
    lines += [f'element e{n} {{\n  front "https://cdn.example.com/e{n}.png"\n}}' for n in (1, 2)]
    mentions = " ".join(f"@i{n}" for n in range(1, 4)) + " @e1 @e2"
    text = "\n".join(lines) + f'\nshot a 5s "{mentions}"\n'
    diagnostic = only(run(tmp_path, text), "KVS-too-many-references")
    assert where(diagnostic) == locate(text, "e2")  # binding number 5
    assert "3 images + 2 elements = 5" in diagnostic.message
    four = text.replace('element e2 {\n  front "https://cdn.example.com/e2.png"\n}\n', "").replace(" @e2", "")
    assert "KVS-too-many-references" not in codes(run(tmp_path, four))


def test_rule_element_fields_front_missing(tmp_path):
    text = f'element hero {{\n  refs "{A}"\n}}\nshot a 5s "@hero"\n'
    diagnostic = only(run(tmp_path, text), "KVS-element-front")
    assert where(diagnostic) == locate(text, "hero")


def test_rule_element_fields_duplicate(tmp_path):
    text = f'element hero {{\n  front "{A}"\n  front "{B}"\n}}\nshot a 5s "@hero"\n'
    diagnostic = only(run(tmp_path, text), "KVS-element-duplicate-field")
    assert where(diagnostic) == locate(text, f'front "{B}"')
    two = f'element hero {{\n  front "{A}", "{B}"\n}}\nshot a 5s "@hero"\n'
    diagnostic = only(run(tmp_path, two), "KVS-element-duplicate-field")
    assert where(diagnostic) == locate(two, f'"{B}"')


def test_rule_element_fields_too_many_refs(tmp_path):
    uris = [f'"https://cdn.example.com/r{n}.png"' for n in range(1, 5)]
    text = (
        f'element hero {{\n  front "{A}"\n  refs {", ".join(uris[:2])},\n       {", ".join(uris[2:])}\n}}\n'
        'shot a 5s "@hero"\n'
    )
    diagnostic = only(run(tmp_path, text), "KVS-too-many-refs")
    assert where(diagnostic) == locate(text, uris[3])
    three = text.replace(", " + uris[3], "")
    result = run(tmp_path, three)
    assert errors(result) == []
    assert len(result.request.body["elements"][0]["reference_image_urls"]) == 3


def test_rule_element_fields_emits_all_codes(tmp_path):
    refs = ", ".join(f'"https://cdn.example.com/r{n}.png"' for n in range(4))
    text = f'element a {{\n  refs {refs}\n}}\nelement b {{\n  front "{A}"\n  front "{B}"\n}}\nshot a 5s "@a @b"\n'
    assert _rule_emits(tmp_path, "element_fields", text) == RULE_CODES["element_fields"]


def test_rule_frames_end_without_start(tmp_path):
    text = f'end "{A}"\nshot a 5s "x"\n'
    diagnostic = only(run(tmp_path, text), "KVS-end-without-start")
    assert where(diagnostic) == locate(text, f'end "{A}"')


def test_rule_frames_duplicate(tmp_path):
    text = f'start "{A}"\nstart "{B}"\nshot a 5s "x"\n'
    diagnostic = only(run(tmp_path, text), "KVS-frame-duplicate")
    assert where(diagnostic) == locate(text, f'start "{B}"')
    assert diagnostic.related[0].span.start_position == (1, 1)


# -- rules Oxen leaves open: Kling's own API (1 to 6 shots, no frames with multi-shot) ----


def _matrix(model_id: str) -> dict:
    """A capability matrix read straight from its TOML file, not through targets.py."""
    import tomllib

    from klingspec.resources import models_dir

    return tomllib.loads((models_dir() / f"{model_id}.toml").read_text(encoding="utf-8"))


def _multi_shot_models() -> list[str]:
    from klingspec.targets import known_ids

    return [m for m in known_ids() if _matrix(m)["prompt"]["multi_prompt"]]


def test_upstream_multi_shot_rules_live_in_the_matrix_of_multi_shot_models_only():
    from klingspec.targets import known_ids, model

    assert len(_multi_shot_models()) >= 1  # reference-to-video (omni takes one prompt: its schema)
    for model_id in known_ids():
        data, facts = _matrix(model_id), model(model_id)
        assert facts is not None
        if data["prompt"]["multi_prompt"]:
            assert data["multi_shot"] == {"max_shots_upstream": 6, "frames_upstream": False}, model_id
            assert (facts.max_shots_upstream, facts.frames_with_shots_upstream) == (6, False)
        else:
            assert "multi_shot" not in data, model_id
            assert (facts.max_shots_upstream, facts.frames_with_shots_upstream) == (None, True)


@pytest.mark.parametrize("model_id", _multi_shot_models())
@pytest.mark.parametrize("count", [1, 2, 5, 6, 7, 8, 12])
def test_rule_shots_beyond_kling(tmp_path, model_id, count):
    lines = [f"model {model_id}"] + [f'shot s{i} 1s "scene number {i}"' for i in range(1, count + 1)]
    text = "\n".join(lines) + "\n"
    result = run(tmp_path, text)
    found = [d for d in result.diagnostics if d.code == "KVS-shots-beyond-kling"]
    assert set(errors(result)) <= {"KVS-total-duration"}  # 1 or 2 one-second shots are too short
    if count <= 6:
        assert found == []
        return
    assert len(found) == 1, "one warning per request, not one per extra shot"
    diagnostic = found[0]
    assert diagnostic.severity == "warning"
    assert where(diagnostic) == locate(text, 'shot s7 1s "scene number 7"')
    assert diagnostic.label == "shot number 7"
    assert f"{count} shots" in diagnostic.message and "at most 6" in diagnostic.message
    assert "Kling's own API" in diagnostic.help and "Oxen" in diagnostic.help
    assert result.request is not None, "a warning never stops compile"
    assert len(result.request.body["multi_prompt"]) == count


def test_rule_shots_beyond_kling_reads_the_limit_from_the_model(tmp_path):
    from dataclasses import replace

    text = "".join(f'shot s{i} 2s "scene number {i}"\n' for i in range(1, 5))
    result = run(tmp_path, text, validate_schema=False)
    model = checking.lookup_model(checking.DEFAULT_MODEL)
    assert model is not None
    assert list(checking.shots_beyond_kling(result.bound, model)) == []
    (diagnostic,) = checking.shots_beyond_kling(result.bound, replace(model, max_shots_upstream=3))
    assert where(diagnostic) == locate(text, 'shot s4 2s "scene number 4"')
    assert "at most 3" in diagnostic.message
    assert list(checking.shots_beyond_kling(result.bound, replace(model, max_shots_upstream=None))) == []


def test_rule_shots_beyond_kling_not_for_single_prompt_models(tmp_path):
    text = "model kling-video-v2-6-pro-text-to-video\n" + "".join(f'shot s{i} 5s "n{i}"\n' for i in range(1, 8))
    result = run(tmp_path, text)
    assert "KVS-model-unsupported" in errors(result)
    assert "KVS-shots-beyond-kling" not in codes(result)


@pytest.mark.parametrize("model_id", _multi_shot_models())
@pytest.mark.parametrize(
    "frames, shots, warned_at",
    [
        (["start"], 1, None),
        (["start", "end"], 1, None),
        (["start"], 2, "start"),
        (["end"], 2, "end"),
        (["start", "end"], 3, "start"),
        (["end", "start"], 4, "start"),
        ([], 3, None),
    ],
    ids=["start-1", "start-end-1", "start-2", "end-2", "start-end-3", "end-above-start-4", "none-3"],
)
def test_rule_frames_with_multishot(tmp_path, model_id, frames, shots, warned_at):
    uris = {"start": A, "end": B}
    lines = [f"model {model_id}"] + [f'{kind} "{uris[kind]}"' for kind in frames]
    lines += [f'shot s{i} 3s "scene number {i}"' for i in range(1, shots + 1)]
    text = "\n".join(lines) + "\n"
    result = run(tmp_path, text)
    found = [d for d in result.diagnostics if d.code == "KVS-frames-with-multishot"]
    assert set(errors(result)) <= {"KVS-end-without-start"}
    if warned_at is None:
        assert found == []
        return
    assert len(found) == 1, "one warning per request, whatever the number of frames and shots"
    diagnostic = found[0]
    assert diagnostic.severity == "warning"
    assert where(diagnostic) == locate(text, f'{warned_at} "{uris[warned_at]}"')
    assert f"{shots} shots" in diagnostic.message
    others = [kind for kind in frames if kind != warned_at]
    assert [r.span.text for r in diagnostic.related] == [f'{kind} "{uris[kind]}"' for kind in others]
    assert "Kling's own API" in diagnostic.help and "Oxen" in diagnostic.help
    if "start" in frames:
        assert result.request is not None, "a warning never stops compile"


def test_rule_frames_with_multishot_reads_the_rule_from_the_model(tmp_path):
    from dataclasses import replace

    text = f'start "{A}"\nshot a 3s "x"\nshot b 3s "y"\n'
    result = run(tmp_path, text, validate_schema=False)
    model = checking.lookup_model(checking.DEFAULT_MODEL)
    assert model is not None
    assert len(list(checking.frames_with_multishot(result.bound, model))) == 1
    allowed = replace(model, frames_with_shots_upstream=True)
    assert list(checking.frames_with_multishot(result.bound, allowed)) == []


@pytest.mark.parametrize(
    "uri, code",
    [
        ("file:///home/me/cafe.png", "KVS-uri-scheme"),
        ("data:image/png;base64,iVBORw0KGgo=", "KVS-uri-scheme"),
        ("//cdn.example.com/a.png", "KVS-uri-scheme"),
        ("ftp://example.com/a.png", "KVS-uri-scheme"),
        ("https://cdn.example.com/my cafe.png", "KVS-uri-invalid"),
        ("https:///nohost.png", "KVS-uri-invalid"),
    ],
    ids=["file", "data", "scheme-relative", "ftp", "space", "no-host"],
)
def test_rule_uris(tmp_path, uri, code):
    text = f'image cafe = "{uri}"\nshot a 5s "@cafe"\n'
    diagnostic = only(run(tmp_path, text), code)
    assert where(diagnostic) == locate(text, f'"{uri}"')


def test_rule_uris_http_and_https_accepted(tmp_path):
    text = 'image a = "http://example.com/a.png"\nimage b = "HTTPS://Example.com/b.png"\nshot s 5s "@a @b"\n'
    assert errors(run(tmp_path, text)) == []  # http:// warns (KVS-url-http), but is not an error


def test_rule_uris_checked_in_elements_and_frames(tmp_path):
    text = (
        'element hero {\n  front "ftp://a.example.com/hero.png"\n  refs "file:///x.png"\n}\n'
        'start "data:image/png;base64,AAAA"\nshot a 5s "@hero"\n'
    )
    found = [where(d) for d in run(tmp_path, text).diagnostics if d.code == "KVS-uri-scheme"]
    assert found == [
        locate(text, '"ftp://a.example.com/hero.png"'),
        locate(text, '"file:///x.png"'),
        locate(text, '"data:image/png;base64,AAAA"'),
    ]


def test_rule_fetchable_urls(tmp_path):
    """Warnings (compile still works), at the string, in images, elements and frames;
    tests/test_media_urls.py tests each kind of URL."""
    text = (
        'image a = "http://cdn.example.com/a.png"\n'
        'element hero {\n  front "https://192.168.1.20/front.png"\n}\n'
        'start "https://github.com/o/r/blob/main/door.png"\n'
        'shot s 5s "@a @hero"\n'
    )
    result = run(tmp_path, text)
    found = [(d.code, where(d)) for d in result.diagnostics]
    assert found == [
        ("KVS-url-http", locate(text, '"http://cdn.example.com/a.png"')),
        ("KVS-url-private", locate(text, '"https://192.168.1.20/front.png"')),
        ("KVS-url-page", locate(text, '"https://github.com/o/r/blob/main/door.png"')),
    ]
    assert {d.severity for d in result.diagnostics} == {"warning"}
    assert result.ok and result.request is not None
    assert _rule_emits(tmp_path, "fetchable_urls", text) == {"KVS-url-http", "KVS-url-private", "KVS-url-page"}


def test_rule_unused_bindings(tmp_path):
    text = f'image cafe = "{A}"\nimage palette = "{B}"\nshot a 5s "@cafe"\n'
    result = run(tmp_path, text)
    diagnostic = only(result, "KVS-binding-unused")
    assert diagnostic.severity == "warning"
    assert where(diagnostic) == locate(text, "palette")
    assert result.ok and result.request is not None  # a warning does not stop compile


def test_rule_duplicate_uris(tmp_path):
    text = f'image cafe = "{A}"\nimage copy = "{A}"\nshot a 5s "@cafe @copy"\n'
    result = run(tmp_path, text)
    diagnostic = only(result, "KVS-uri-duplicate")
    assert diagnostic.severity == "warning"
    assert where(diagnostic) == locate(text, f'"{A}"', 1)
    assert diagnostic.related[0].span.start_position == locate(text, f'"{A}"')[:2]


def test_rule_elements_mentioned(tmp_path):
    text = f'element hero {{\n  front "{A}"\n}}\nshot a 5s "@hero walks"\nshot b 5s "an empty street"\n'
    result = run(tmp_path, text)
    diagnostic = only(result, "KVS-elements-unmentioned")
    assert diagnostic.severity == "warning"
    assert where(diagnostic) == locate(text, '"an empty street"')
    assert result.request is not None


def test_check_reports_every_problem_in_one_run(tmp_path):
    text = f'aspect 4:3\ngenerations 9\nend "{A}"\nimage x = "ftp://a.example.com/cafe.png"\nshot a 2.5s "@x @ghost"\nshot b 0s ""\n'
    found = set(codes(run(tmp_path, text)))
    assert {
        "KVS-aspect-ratio",
        "KVS-generations",
        "KVS-end-without-start",
        "KVS-uri-scheme",
        "KVS-duration-fraction",
        "KVS-shot-duration",
        "KVS-prompt-empty",
        "KVS-name-unbound",
    } <= found


def test_every_emitted_code_is_catalogued(tmp_path):
    from klingspec.codes import CODES

    emitted = set().union(*RULE_CODES.values())
    assert emitted <= set(CODES)
    for code in emitted:
        assert CODES[code].severity in ("error", "warning")


def test_warnings_do_not_block_and_errors_do(tmp_path):
    warn = run(tmp_path, f'image cafe = "{A}"\nshot a 5s "x"\n')
    assert warn.ok and warn.warnings == 1 and warn.errors == 0
    assert json.loads(warn.request.json)["prompt"] == "x"


# -- checker gaps found while writing these tests -----------------------------------------


def test_end_frame_on_model_whose_start_is_input_image(tmp_path):
    """o3-pro image-to-video takes its start frame as `input_image` and an optional
    `tail_image_url` (fact sheet 6.3): start + end compile, and the schema agrees."""
    text = f'model kling-video-o3-pro-image-to-video\nstart "{A}"\nend "{B}"\nshot a 5s "x"\n'
    result = run(tmp_path, text)
    assert codes(result) == []
    assert result.request.body == {
        "model": "kling-video-o3-pro-image-to-video",
        "prompt": "x",
        "duration": 5,
        "input_image": A,
        "tail_image_url": B,
    }


def test_image_to_video_needs_its_image(tmp_path):
    text = 'model kling-video-v2-6-pro-image-to-video\nshot a 5s "x"\n'
    result = run(tmp_path, text)
    diagnostic = only(result, "KVS-start-required")
    assert where(diagnostic) == locate(text, 'shot a 5s "x"')
    assert result.request is None
    assert _rule_emits(tmp_path, "start_required", text) == {"KVS-start-required"}


def test_generations_unicode_digit(tmp_path):
    text = 'generations ¹\nshot a 5s "x"\n'
    diagnostic = only(run(tmp_path, text), "KVS-generations")
    assert where(diagnostic) == locate(text, "¹")


@pytest.mark.parametrize("uri", ["http://[e.com/i.png", "https://e.com]/i.png"])
def test_rule_uris_unbalanced_bracket_in_host(tmp_path, uri):
    text = f'image i = "{uri}"\nshot a 5s "@i"\n'
    diagnostic = only(run(tmp_path, text), "KVS-uri-invalid")
    assert where(diagnostic) == locate(text, f'"{uri}"')


def test_rule_model_retired(tmp_path):
    from klingspec import catalogue, targets

    retired = "kling-video-v2-6-pro-text-to-video"
    text = f'model {retired}\nshot a 5s "x"\n'
    assert _rule_emits(tmp_path, "model_retired", text) == set()  # documented: no warning
    ids = [i for i in targets.known_ids() if i != retired]
    models = {i: catalogue.Listed(i, {"id": i}) for i in ids}
    catalogue.save(catalogue.Catalogue("http://api", 1.8e9, None, "0" * 64, frozenset(ids), models))
    diagnostic = only(run(tmp_path, text), "KVS-model-retired")
    assert diagnostic.severity == "warning" and where(diagnostic) == locate(text, retired)
    assert "no longer lists it" in diagnostic.message
    assert diagnostic.help == "choose a model `klingspec models` lists as live"  # no successor known
    assert diagnostic.suggestions == ()
    assert _rule_emits(tmp_path, "model_retired", 'shot a 5s "x"\n') == set()  # the default is never retired


def test_a_built_in_retired_status_warns_without_a_sync(tmp_path, monkeypatch):
    from dataclasses import replace

    from klingspec import targets

    ref = targets.builtin("kling-video-o3-pro-reference-to-video")
    assert ref is not None and ref.status == "documented" and ref.replaced_by == "kling-video-o3-omni"
    retired = replace(ref, status="retired", status_note="the matrix says so")
    original = targets.builtin
    monkeypatch.setattr(targets, "builtin", lambda i: retired if i == ref.id else original(i))
    targets.facts_of.cache_clear()
    try:
        text = f'model {ref.id}\nshot a 5s "x"\n'
        diagnostic = only(run(tmp_path, text), "KVS-model-retired")
        assert diagnostic.message.endswith("is retired: the matrix says so")
        assert [s.replacement for s in diagnostic.suggestions] == ["kling-video-o3-omni"]
        assert targets.default_model_id() == "kling-video-o3-omni"
    finally:
        targets.facts_of.cache_clear()


def test_rule_price_known(tmp_path):
    text = 'model kling-video-o3-omni\nshot a 5s "x"\n'
    result = run(tmp_path, text)
    diagnostic = only(result, "KVS-price-unknown")
    assert diagnostic.severity == "warning"
    assert where(diagnostic) == locate(text, "kling-video-o3-omni")
    assert result.ok and result.estimate.total is None
    assert _rule_emits(tmp_path, "price_known", text) == {"KVS-price-unknown"}
    assert _rule_emits(tmp_path, "price_known", 'shot a 5s "x"\n') == set()


def test_an_unknown_model_never_suggests_an_unpriced_one_first(tmp_path):
    for written in ("kling-video-o3-pro", "kling-o3", "veo-3"):
        diagnostic = only(run(tmp_path, f'model {written}\nshot a 5s "x"\n'), "KVS-model-unknown")
        assert diagnostic.suggestions == () and "did you mean" not in (diagnostic.help or "")
        prices = re.findall(r"\(([^)]*)\)", diagnostic.help)
        assert prices[0].startswith("$") and prices.count("no published price") <= 1
        assert prices[-1] == "no published price" or "no published price" not in prices


def test_a_slip_of_the_keys_is_still_corrected(tmp_path):
    diagnostic = only(run(tmp_path, 'model kling-video-o3-pro-refrence-to-video\nshot a 5s "x"\n'), "KVS-model-unknown")
    assert [s.replacement for s in diagnostic.suggestions] == ["kling-video-o3-pro-reference-to-video"]


def test_a_refused_element_brings_no_advice_about_its_refs(tmp_path):
    text = (
        "model kling-video-v2-6-pro-text-to-video\n"
        'element hero {\n  front "https://a.example.com/f.jpg"\n  refs "https://a.example.com/s.jpg"\n}\n'
        'element villain {\n  front "https://a.example.com/v.jpg"\n}\n'
        'shot a 5s "@hero walks"\n'
    )
    diagnostics = run(tmp_path, text).diagnostics
    assert [(d.code, d.message) for d in diagnostics] == [
        ("KVS-model-unsupported", "`kling-video-v2-6-pro-text-to-video` does not take elements")
    ]
