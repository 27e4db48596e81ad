"""The emulator's model catalogue: which ids it serves, their limits and their model objects.

Deliberately independent of `klingspec.targets` and `klingspec/models/*.toml`: the
sandbox stands in for the server, so it keeps its own copy of the API's numbers (from the
fact sheet, sections 5, 6 and 9) and a mistake in the client's tables shows up as a
disagreement in tests instead of being mirrored here.

RECONSTRUCTED: no Kling `request_schema` is published in Oxen's docs (fact sheet 9). Each
schema below is rebuilt from the model's generated page (fact sheet 6.x): the fields, types,
enums, defaults, `required` and `basic` are the page's; `x-order` is the page's field
order; `renderType`, `nullable`, `format: uri` on items and `x-media-references` follow the
dialect seen on other Oxen models (fact sheet 5.2) and are OWN where the page is silent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ASPECT_RATIOS = ("16:9", "9:16", "1:1")
RESPONSE_FORMATS = ("url", "b64_json")
_CREATED = 1775000000  # fixed catalogue timestamp (2026-04-01), like a real listing's

REF = "kling-video-o3-pro-reference-to-video"
OMNI = "kling-video-o3-omni"
# The O3 Pro ids whose generated pages Oxen deleted on 2026-07-27 (fact sheet 9, additions).
# Whether they still run is UNKNOWN. OWN: the default catalogue still lists and runs them
# (klingspec's default model is one of them); `SandboxConfig(retired=RETIRED_2026_07_27)`
# emulates the catalogue after the switch.
RETIRED_2026_07_27 = frozenset(
    {
        "kling-video-o3-pro-image-to-video",
        REF,
        "kling-video-o3-pro-video-to-video-edit",
    }
)


@dataclass(frozen=True)
class ModelSpec:
    """The facts the emulator enforces for one model.

    `price_per_second=None` means the price is not published; the model object then
    reports `cost_per_second: null` rather than inventing a number. The audio and high-res
    prices are published by no Oxen source (fact sheet 9: Oxen's audio price is UNKNOWN), so
    `cost_per_second_with_audio` / `cost_per_second_high_res` appear only when set here.

    `fields` are the request fields the model takes besides `model`; `required` those it
    needs. A known Kling field outside `fields` is refused (see validation.py).
    """

    id: str
    display_name: str
    description: str
    price_per_second: float | None
    properties: dict[str, dict[str, Any]]
    required: tuple[str, ...] = ("prompt",)
    basic: tuple[str, ...] = ("prompt",)
    unpublished: tuple[str, ...] = ()  # accepted though not in the published schema
    price_with_audio: float | None = None
    price_high_res: float | None = None
    max_images_plus_elements: int = 0
    max_images_plus_elements_with_video: int = 0
    accepts_input_video: bool = False
    multi_prompt: bool = False
    max_refs_per_element: int = 3
    max_elements: int | None = None
    prompt_max_chars: int = 512
    shot_max: int = 15
    total_min: int = 3
    total_max: int = 15
    durations: tuple[int, ...] | None = None  # an enum of totals (v2.6: 5 or 10)
    has_duration: bool = True  # False: the output follows the input video
    default_duration: int = 5
    string_image: bool = False  # `input_image` is one URI string, not an array
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(self.properties) | frozenset(self.unpublished)

    def request_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "object", "title": "Input"}
        if self.required:
            schema["required"] = list(self.required)
        schema["basic"] = list(self.basic)
        schema["properties"] = {
            name: prop | {"x-order": order} for order, (name, prop) in enumerate(self.properties.items())
        }
        return schema

    def pricing(self, price: float | None) -> dict[str, Any]:
        pricing: dict[str, Any] = {"method": "per_video_output_second", "cost_per_second": price}
        if self.price_with_audio is not None:
            pricing["cost_per_second_with_audio"] = self.price_with_audio
        if self.price_high_res is not None:
            pricing["cost_per_second_high_res"] = self.price_high_res
        return pricing

    def model_object(self, price: float | None = None) -> dict[str, Any]:
        """The `GET /api/ai/models/:id` object, shaped like the documented example (5.1).

        `price` overrides `cost_per_second` (`SandboxConfig.prices`, `/_sandbox/catalog`).
        """
        inputs = ["text"] + (["image"] if {"input_image", "start_image_url"} & self.fields else [])
        inputs += ["video"] if self.accepts_input_video else []
        return {
            "id": self.id,
            "object": "model",
            "created": _CREATED,
            "owned_by": "oxen",
            "display_name": self.display_name,
            "description": self.description,
            "summary": self.description,
            "model_type": "base",
            "endpoint": "/videos/generate",
            "capabilities": {"input": inputs, "output": ["video"]},
            "pricing": self.pricing(self.price_per_second if price is None else price),
            "fine_tuning": None,
            "deployments": [],
            "developer": {"name": "Kling AI", "logo": None},
            "source_model": None,
            "image_url": None,
            "released_at": "2026-04-01T00:00:00Z",
            "request_schema": self.request_schema(),
        }


# --- schema pieces (RECONSTRUCTED, see the module docstring) --------------------------------


def _prompt(refs: bool = False) -> dict[str, Any]:
    prop: dict[str, Any] = {"type": "string", "description": "Text prompt describing the video"}
    if refs:  # OWN: the @Image1 / @Element1 references in the dialect of fact sheet 5.2
        prop["x-media-references"] = {
            "groups": [
                {"field": "input_image", "pattern": "Image {n}"},
                {"field": "elements", "pattern": "Element {n}"},
            ]
        }
    return prop


def _uri(description: str, render: str = "image-url") -> dict[str, Any]:
    return {"type": "string", "format": "uri", "renderType": render, "nullable": True, "description": description}


def _uris(description: str, max_items: int | None = None) -> dict[str, Any]:
    prop: dict[str, Any] = {
        "type": "array",
        "nullable": True,
        "items": {"type": "string", "format": "uri", "renderType": "image-url"},
        "description": description,
    }
    if max_items is not None:
        prop["maxItems"] = max_items
    return prop


_ELEMENTS = {
    "type": "array",
    "nullable": True,
    "items": {
        "type": "object",
        "required": ["frontal_image_url"],
        "properties": {
            "frontal_image_url": {"type": "string", "format": "uri", "renderType": "image-url"},
            "reference_image_urls": {
                "type": "array",
                "maxItems": 3,
                "items": {"type": "string", "format": "uri", "renderType": "image-url"},
            },
        },
    },
    "description": "Optional element references. Use @Element1, @Element2, etc. in the prompt to refer to them.",
}
_ASPECT = {"type": "string", "enum": ["16:9", "9:16", "1:1"], "default": "16:9", "description": "Video aspect ratio"}
_NEGATIVE = {"type": "string", "nullable": True, "description": "Text describing what to avoid in the generated video."}
_AUDIO = {"type": "boolean", "default": False, "description": "Whether to generate native audio for the video."}


def _duration(minimum: int, maximum: int) -> dict[str, Any]:
    return {"type": "integer", "default": 5, "minimum": minimum, "maximum": maximum}


MODELS: dict[str, ModelSpec] = {
    spec.id: spec
    for spec in (
        # 6.1: prompt required; duration one of 5, 10; cfg_scale 0-10.
        ModelSpec(
            id="kling-video-v2-6-pro-text-to-video",
            display_name="Kling Video v2.6 Pro Text to Video",
            description="Simple text-to-video, 1080p, bilingual voice",
            price_per_second=0.070,
            properties={
                "prompt": _prompt(),
                "negative_prompt": _NEGATIVE,
                "aspect_ratio": _ASPECT,
                "duration": {"type": "integer", "default": 5, "enum": [5, 10]},
                "generate_audio": _AUDIO,
                "cfg_scale": {"type": "number", "default": 0.5, "minimum": 0, "maximum": 10},
            },
            durations=(5, 10),
            total_min=5,
            total_max=10,
        ),
        # 6.2: the page lists input_image (one string) as optional; OWN: required, the
        # stricter reading (the model animates an image). No aspect_ratio in its schema.
        ModelSpec(
            id="kling-video-v2-6-pro-image-to-video",
            display_name="Kling Video v2.6 Pro Image to Video",
            description="Animate a single image, 1080p, 5 or 10 s",
            price_per_second=0.070,
            properties={
                "prompt": _prompt(),
                "input_image": _uri("The image to animate. Must be jpeg, png, gif, or webp"),
                "negative_prompt": _NEGATIVE,
                "duration": {"type": "integer", "default": 5, "enum": [5, 10]},
                "generate_audio": _AUDIO,
            },
            required=("prompt", "input_image"),
            basic=("prompt", "input_image"),
            string_image=True,
            durations=(5, 10),
            total_min=5,
            total_max=10,
        ),
        # 6.3: prompt and input_image (one string, the start frame) required; duration 3-15.
        ModelSpec(
            id="kling-video-o3-pro-image-to-video",
            display_name="Kling Video O3 Pro Image to Video",
            description="Higher quality image animation (image + text)",
            price_per_second=0.224,
            properties={
                "prompt": _prompt() | {"description": "Text prompt describing the motion or action for the video"},
                "input_image": _uri("The start frame of the video"),
                "tail_image_url": _uri("The end frame of the video"),
                "duration": _duration(3, 15),
                "aspect_ratio": _ASPECT,
            },
            required=("prompt", "input_image"),
            basic=("prompt", "input_image"),
            string_image=True,
            shot_max=15,
        ),
        # 5.2 (the reconstructed schema, kept as published: no prompt/multi_prompt/duration,
        # no required, basic = the three image fields); those three are accepted unpublished.
        ModelSpec(
            id=REF,
            display_name="Kling Video O3 Pro Reference to Video",
            description="Reference-conditioned, multi-shot video from images + text",
            price_per_second=0.224,
            properties={
                "start_image_url": _uri(
                    "The first frame of the video. The model will try to extend the contents of this frame."
                ),
                "tail_image_url": _uri(
                    "The last frame of the video. Requires start frame to be configured. "
                    "The model will try to fill in between the frames."
                ),
                "input_image": _uris(
                    "Reference images for style/appearance. Use @Image1, @Image2, etc. in the prompt to refer "
                    "to them. Maximum 4 total (elements + reference images) when using video."
                ),
                "elements": _ELEMENTS,
                "negative_prompt": _NEGATIVE,
                "aspect_ratio": _ASPECT,
                "generate_audio": _AUDIO,
            },
            required=(),
            basic=("start_image_url", "tail_image_url", "input_image"),
            unpublished=("prompt", "multi_prompt", "duration"),
            multi_prompt=True,
            max_images_plus_elements=4,
            max_images_plus_elements_with_video=4,
        ),
        # 6.4: prompt and input_video required; no duration or aspect (output follows the input).
        ModelSpec(
            id="kling-video-o3-pro-video-to-video-edit",
            display_name="Kling Video O3 Pro Video to Video Edit",
            description="Edit an existing video",
            price_per_second=0.336,
            properties={
                "prompt": _prompt(refs=True) | {"description": "Edit instructions"},
                "input_video": _uri(
                    "MP4/MOV, 3-15s, 720-3840px, max 200MB. Output duration matches input.", "video-url"
                ),
                "input_image": _uris("Reference images. Use @Image1, @Image2, etc. in the prompt."),
                "elements": _ELEMENTS,
                # The default follows the newest schema (2026-07-18: true; fact sheet 6.4 conflict).
                "keep_audio": {
                    "type": "boolean",
                    "default": True,
                    "description": "Keep the original audio from the source video",
                },
            },
            required=("prompt", "input_video"),
            basic=("prompt", "input_video"),
            accepts_input_video=True,
            has_duration=False,
            max_images_plus_elements=4,
            max_images_plus_elements_with_video=4,
        ),
        # 6.5: prompt, input_image (string), input_video, character_orientation required;
        # at most 1 element, only with character_orientation 'video'.
        ModelSpec(
            id="kling-video-v3-pro-motion-control",
            display_name="Kling Video v3 Pro Motion Control",
            description="Cost-effective mode for motion transfer",
            price_per_second=0.168,
            properties={
                "prompt": _prompt(),
                "input_image": _uri("The characters and background come from this image"),
                "input_video": _uri(
                    "Reference motion video (mp4/mov): min 3 s; max 10 s with character_orientation "
                    "'image', 30 s with 'video'",
                    "video-url",
                ),
                "character_orientation": {"type": "string", "enum": ["video", "image"], "default": "video"},
                "keep_original_sound": {"type": "boolean", "default": True},
                "elements": _ELEMENTS | {"maxItems": 1},
            },
            required=("prompt", "input_image", "input_video", "character_orientation"),
            basic=("prompt", "input_image", "input_video"),
            accepts_input_video=True,
            string_image=True,
            has_duration=False,
            max_elements=1,
            max_images_plus_elements=1,
            max_images_plus_elements_with_video=1,
            total_max=30,
            shot_max=30,
        ),
        # 6.6 and 9 (additions): prompt required; no multi_prompt, no negative_prompt; 7 images +
        # elements, 4 with a video; generate_audio off with a video. Price not published.
        ModelSpec(
            id=OMNI,
            display_name="Kling Video O3 Omni",
            description="Unified Kling O3 model (reference, edit, frames)",
            price_per_second=None,
            properties={
                "prompt": _prompt(refs=True),
                "input_image": _uris("Reference images; 7 with elements in total, 4 when an input video is set"),
                "input_video": _uri("A video to edit or to reference", "video-url"),
                "video_mode": {"type": "string", "enum": ["edit", "reference"], "default": "edit"},
                "start_image_url": _uri("The first frame of the video"),
                "tail_image_url": _uri("The last frame of the video. Requires a start frame."),
                "elements": _ELEMENTS,
                "resolution": {"type": "string", "enum": ["1080p", "720p", "4k"], "default": "1080p"},
                "duration": _duration(3, 15) | {"description": "Ignored for video edit"},
                "aspect_ratio": _ASPECT,
                "generate_audio": _AUDIO | {"description": "Must be off when a video is provided"},
                "keep_audio": {"type": "boolean", "default": True},
            },
            required=("prompt",),
            basic=("prompt", "input_image", "input_video"),
            accepts_input_video=True,
            max_images_plus_elements=7,
            max_images_plus_elements_with_video=4,
        ),
    )
}
