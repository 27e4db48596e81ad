"""Request validation: the model's rules, in the order and with the words Oxen documents.

`model_error(body, spec)` runs `RULES`, a table of small checks, and returns the first
failure as the full message Oxen would show, or None. The sync endpoint answers with it
at once; the queue stores it as a failed generation's `error_message` (era C).

Oxen wraps the upstream provider's 422 text as "Getting model response error: 422 - …";
the fact sheet shows that wrapper for the prompt/multi_prompt errors, and the emulator uses
it for every model-parameter error so clients see one consistent shape.

Messages marked OWN WORDING below are not documented anywhere (fact sheet 3.2, 9); they
follow the pydantic style of the documented ones so they read like their neighbours.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from klingspec.sandbox.catalog import ASPECT_RATIOS, MODELS, RESPONSE_FORMATS, ModelSpec

UPSTREAM_PREFIX = "Getting model response error: 422 - "

# Documented messages (model document's Errors table; fact sheet 3.2).
BOTH_PROMPTS = "Value error, Cannot provide both 'prompt' and 'multi_prompt'."
NO_PROMPT = "Value error, Either 'prompt' or 'multi_prompt' must be provided."
FIELD_REQUIRED = "Field required"
SHOT_DURATION = "Input should be '1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12', '13', '14' or '15'"
TOO_SHORT = (
    "duration value '{total}' is invalid. Try using duration='5' instead, "
    "as duration support may vary by model and mode."
)
TOO_LONG = "Total shot duration ({total}s) exceeds maximum allowed ({maximum}s)."
NUM_GENERATIONS = "num_generations must be an integer between 1 and 4"
MODEL_NOT_FOUND = "Model not found: {name}"

Rule = Callable[[Mapping[str, Any], ModelSpec], "str | None"]


def model_error(body: Mapping[str, Any], spec: ModelSpec) -> str | None:
    """The first rule `body` breaks, as Oxen's full error text, or None if it is valid."""
    for rule in RULES:
        message = rule(body, spec)
        if message is not None:
            return UPSTREAM_PREFIX + message
    return None


def find_model(body: Mapping[str, Any]) -> tuple[ModelSpec | None, str]:
    """The served model the body names, and the name for a `Model not found` message."""
    name = body.get("model")
    return (MODELS.get(name) if isinstance(name, str) else None), str(name or "")


def num_generations_error(body: Mapping[str, Any]) -> str | None:
    """Checked at enqueue (fact sheet 4.1); absent or null means the default, 1."""
    value = body.get("num_generations")
    if value is None or (_is_int(value) and 1 <= value <= 4):
        return None
    return NUM_GENERATIONS


def num_generations(body: Mapping[str, Any]) -> int:
    return body.get("num_generations") or 1


def shots(body: Mapping[str, Any]) -> list[Any]:
    """The shots of a request: `multi_prompt`, or the single prompt as one shot.

    A single `prompt` + `duration` follows the same duration rules as a one-shot
    `multi_prompt` (INFERRED in fact sheet 2.3: same 3-15 range, same examples).
    """
    if _has_multi_prompt(body):
        return list(body["multi_prompt"])
    return [{"prompt": body.get("prompt"), "duration": body.get("duration")}]


def total_seconds(body: Mapping[str, Any], spec: ModelSpec) -> int:
    """Length of the video a valid body asks for; a shot without `duration` gets the default.

    A model without `duration` makes a video as long as its input video, which the sandbox
    does not measure: OWN, the body's `duration` if it is a usable integer, else the default.
    """
    if not spec.has_duration:
        value = body.get("duration")
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= spec.total_max:
            return value
        return spec.default_duration
    return sum(spec.default_duration if shot.get("duration") is None else shot["duration"] for shot in shots(body))


# --- the rules, in the fact sheet's order (section 8.2) ---------------------------------


# Every request field some Kling model takes (fact sheet 6). A body field from this set that
# the named model does not take is refused, pydantic's "extra forbidden" way (OWN: whether
# Oxen refuses or ignores such a field is UNKNOWN; refusing is the stricter reading). Other
# fields are ignored. `duration` is tolerated by the models whose output follows the input
# video (OWN: klingspec and other clients send it; the video length is taken from it).
KLING_FIELDS = frozenset(
    {
        "prompt", "multi_prompt", "duration", "negative_prompt", "aspect_ratio", "generate_audio",
        "input_image", "start_image_url", "tail_image_url", "elements", "input_video", "keep_audio",
        "keep_original_sound", "character_orientation", "video_mode", "resolution", "cfg_scale",
    }
)  # fmt: skip


def model_fields(body: Mapping[str, Any], spec: ModelSpec) -> str | None:
    for name in body:
        if name not in KLING_FIELDS or name in spec.fields or body[name] is None:
            continue
        if name == "duration" and not spec.has_duration:
            continue
        return f"{name}: Extra inputs are not permitted"  # OWN WORDING (pydantic's)
    return None


def required_fields(body: Mapping[str, Any], spec: ModelSpec) -> str | None:
    for name in spec.required:
        if name != "prompt" and body.get(name) in (None, "", []):
            return FIELD_REQUIRED  # documented for input_video (fact sheet 6.4)
    if spec.string_image and "input_image" in body and not isinstance(body["input_image"], str):
        return "input_image: Input should be a valid string"  # OWN WORDING
    return None


def prompt_xor_multi_prompt(body: Mapping[str, Any], spec: ModelSpec) -> str | None:
    if not spec.multi_prompt:
        # One prompt, required (fact sheet 6): pydantic's text for a missing field.
        if not _has_prompt(body):
            return FIELD_REQUIRED
        if not isinstance(body["prompt"], str):
            return "prompt: Input should be a valid string"  # OWN WORDING
        return None
    if "multi_prompt" in body and body["multi_prompt"] is not None and not isinstance(body["multi_prompt"], list):
        return "multi_prompt: Input should be a valid list"  # OWN WORDING
    has_prompt, has_multi = _has_prompt(body), _has_multi_prompt(body)
    if has_prompt and has_multi:
        return BOTH_PROMPTS
    if not has_prompt and not has_multi:  # an empty multi_prompt counts as absent
        return NO_PROMPT
    return None


def shot_prompts(body: Mapping[str, Any], spec: ModelSpec) -> str | None:
    for shot in shots(body):
        if not isinstance(shot, Mapping):
            return "multi_prompt: Input should be a valid dictionary"  # OWN WORDING
        if shot.get("prompt") is None:
            return FIELD_REQUIRED
        if not isinstance(shot["prompt"], str):
            return "prompt: Input should be a valid string"  # OWN WORDING
    return None


def duration_enum(body: Mapping[str, Any], spec: ModelSpec) -> str | None:
    value = body.get("duration")
    if spec.durations is not None and value is not None and value not in spec.durations:
        # OWN WORDING (pydantic's literal text); v2.6 takes 5 or 10 (fact sheet 6.1, 6.2)
        return "duration: Input should be " + " or ".join(f"'{d}'" for d in spec.durations)
    return None


def shot_durations(body: Mapping[str, Any], spec: ModelSpec) -> str | None:
    if not spec.has_duration:
        return None
    # Integers only: Oxen's docs always send integers, and a strict emulator catches a
    # client that sends "5" (whether Oxen accepts strings is UNKNOWN, fact sheet 2.3).
    for shot in shots(body):
        value = shot.get("duration")
        if value is not None and not (_is_int(value) and 1 <= value <= spec.shot_max):
            return SHOT_DURATION
    return None


def total_duration(body: Mapping[str, Any], spec: ModelSpec) -> str | None:
    if not spec.has_duration:
        return None
    total = total_seconds(body, spec)
    if total < spec.total_min:
        return TOO_SHORT.format(total=total)
    if total > spec.total_max:
        return TOO_LONG.format(total=total, maximum=spec.total_max)
    return None


def prompt_length(body: Mapping[str, Any], spec: ModelSpec) -> str | None:
    for shot in shots(body):
        if len(shot["prompt"]) > spec.prompt_max_chars:
            # OWN WORDING (undocumented; pydantic's max_length text)
            return f"prompt: String should have at most {spec.prompt_max_chars} characters"
    return None


def tail_needs_start(body: Mapping[str, Any], spec: ModelSpec) -> str | None:
    start = body.get("start_image_url") or (spec.string_image and body.get("input_image"))
    if body.get("tail_image_url") and not start:
        return "tail_image_url requires start_image_url"  # OWN WORDING
    return None


def aspect_ratio(body: Mapping[str, Any], spec: ModelSpec) -> str | None:
    value = body.get("aspect_ratio")
    if value is not None and value not in ASPECT_RATIOS:
        return "aspect_ratio: Input should be '16:9', '9:16' or '1:1'"  # OWN WORDING
    return None


def element_fields(body: Mapping[str, Any], spec: ModelSpec) -> str | None:
    for index, element in enumerate(_list(body.get("elements"))):
        if not isinstance(element, Mapping) or not element.get("frontal_image_url"):
            return FIELD_REQUIRED  # pydantic's text for the missing frontal_image_url
        refs = _list(element.get("reference_image_urls"))
        if len(refs) > spec.max_refs_per_element:
            # OWN WORDING (undocumented)
            return (
                f"elements[{index}].reference_image_urls: at most "
                f"{spec.max_refs_per_element} images per element (got {len(refs)})"
            )
    return None


def image_count(body: Mapping[str, Any], spec: ModelSpec) -> str | None:
    # Each element counts once, whatever its reference images: the walkthrough's
    # "4 total images across all elements and input_image references" (fact sheet 2.4).
    count = len(_list(body.get("input_image"))) + len(_list(body.get("elements")))
    limit = (
        spec.max_images_plus_elements_with_video
        if spec.accepts_input_video and body.get("input_video")
        else spec.max_images_plus_elements
    )
    if count > limit:
        # OWN WORDING (undocumented)
        return f"At most {limit} images are allowed across input_image and elements (got {count})"
    return None


def audio_with_video(body: Mapping[str, Any], spec: ModelSpec) -> str | None:
    if spec.accepts_input_video and body.get("input_video") and body.get("generate_audio"):
        return "generate_audio must be false when input_video is provided"  # OWN WORDING
    return None


def enum_fields(body: Mapping[str, Any], spec: ModelSpec) -> str | None:
    for name, prop in spec.properties.items():
        value = body.get(name)
        if value is None or name in ("aspect_ratio", "duration"):
            continue
        if "enum" in prop and value not in prop["enum"]:
            # OWN WORDING (pydantic's literal text)
            return f"{name}: Input should be " + " or ".join(f"'{v}'" for v in prop["enum"])
        if prop.get("type") == "boolean" and not isinstance(value, bool):
            return f"{name}: Input should be a valid boolean"  # OWN WORDING
        if prop.get("type") == "number" and not (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and prop["minimum"] <= value <= prop["maximum"]
        ):
            # OWN WORDING
            return f"{name}: Input should be a number from {prop['minimum']} to {prop['maximum']}"
    return None


def elements_need_video_orientation(body: Mapping[str, Any], spec: ModelSpec) -> str | None:
    # Motion control: elements "only when character_orientation is 'video'" (fact sheet 6.5).
    orientation = body.get("character_orientation", "video")
    if "character_orientation" in spec.properties and _list(body.get("elements")) and orientation != "video":
        return "elements are only supported when character_orientation is 'video'"  # OWN WORDING
    return None


def response_format(body: Mapping[str, Any], spec: ModelSpec) -> str | None:
    value = body.get("response_format")
    if value is not None and value not in RESPONSE_FORMATS:
        return "response_format: Input should be 'url' or 'b64_json'"  # OWN WORDING
    return None


RULES: tuple[Rule, ...] = (
    model_fields,
    prompt_xor_multi_prompt,
    required_fields,
    shot_prompts,
    duration_enum,
    shot_durations,
    total_duration,
    prompt_length,
    tail_needs_start,
    aspect_ratio,
    element_fields,
    image_count,
    audio_with_video,
    enum_fields,
    elements_need_video_orientation,
    response_format,
)


# --- helpers -----------------------------------------------------------------------------


def _has_prompt(body: Mapping[str, Any]) -> bool:
    # An empty string counts as absent, like an empty multi_prompt.
    return body.get("prompt") not in (None, "")


def _has_multi_prompt(body: Mapping[str, Any]) -> bool:
    value = body.get("multi_prompt")
    return isinstance(value, list) and len(value) > 0


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
