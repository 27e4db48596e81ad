"""The emulator's model catalogue: which ids it serves, their limits and their model objects.

Deliberately independent of `klingspec.targets`: the sandbox stands in for the server,
so it keeps its own copy of the API's numbers (from the fact sheet) and a mistake in the
client's tables shows up as a disagreement in tests instead of being mirrored here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ASPECT_RATIOS = ("16:9", "9:16", "1:1")
RESPONSE_FORMATS = ("url", "b64_json")
_CREATED = 1775000000  # fixed catalogue timestamp (2026-04-01), like a real listing's


@dataclass(frozen=True)
class ModelSpec:
    """The facts the emulator enforces for one model.

    `price_per_second=None` means the price is not published; the model object then
    reports `cost_per_second: null` rather than inventing a number.
    """

    id: str
    display_name: str
    description: str
    price_per_second: float | None
    max_images_plus_elements: int
    max_images_plus_elements_with_video: int
    accepts_input_video: bool = False
    max_refs_per_element: int = 3
    prompt_max_chars: int = 512
    shot_max: int = 15
    total_min: int = 3
    total_max: int = 15
    default_duration: int = 5

    def model_object(self) -> dict[str, Any]:
        """The `GET /api/ai/models/:id` object, shaped like the documented example (5.1)."""
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
            "capabilities": {"input": ["text", "image"], "output": ["video"]},
            "pricing": {
                "method": "per_video_output_second",
                "cost_per_second": self.price_per_second,
                "cost_per_second_with_audio": self.price_per_second,
            },
            "fine_tuning": None,
            "deployments": [],
            "developer": {"name": "Kling AI", "logo": None},
            "source_model": None,
            "image_url": None,
            "released_at": "2026-04-01T00:00:00Z",
            "request_schema": _REQUEST_SCHEMA,
        }


# The schema reconstructed in fact sheet 5.2: prompt, multi_prompt and duration are absent
# from the published schema, so clients must not treat it as the source of those rules.
_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "basic": ["start_image_url", "tail_image_url", "input_image"],
    "properties": {
        "start_image_url": {"type": "string", "format": "uri"},
        "tail_image_url": {"type": "string", "format": "uri"},
        "input_image": {"type": "array", "items": {"type": "string"}},
        "elements": {"type": "array", "items": {"type": "object"}},
        "negative_prompt": {"type": "string"},
        "aspect_ratio": {"type": "string", "enum": ["9:16", "1:1", "16:9"], "default": "16:9"},
        "generate_audio": {"type": "boolean", "default": False},
    },
}

MODELS: dict[str, ModelSpec] = {
    spec.id: spec
    for spec in (
        ModelSpec(
            id="kling-video-o3-pro-reference-to-video",
            display_name="Kling Video O3 Pro Reference to Video",
            description="Reference-conditioned, multi-shot video from images + text",
            price_per_second=0.224,
            max_images_plus_elements=4,
            max_images_plus_elements_with_video=4,
        ),
        # Price unknown (fact sheet 6.6, 9): reported as null. Limits from its generated page:
        # 7 images + elements, 4 with an input video. multi_prompt is accepted (not in its
        # published schema; unknown upstream) so one script can target either id.
        ModelSpec(
            id="kling-video-o3-omni",
            display_name="Kling Video O3 Omni",
            description="Unified Kling O3 model (reference, edit, frames)",
            price_per_second=None,
            max_images_plus_elements=7,
            max_images_plus_elements_with_video=4,
            accepts_input_video=True,
        ),
    )
}
