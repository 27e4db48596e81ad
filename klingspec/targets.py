"""Facts about each target model, read from its capability matrix (`models/<id>.toml`).

The checker, the pricer and the editor's hovers read every API number from here; no
other module types a limit, an enum or a price. One TOML file per model, versioned by
its `revision`, so a change in the API is a one-file diff.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

from klingspec.resources import models_dir, read_text

DEFAULT_MODEL = "kling-video-o3-pro-reference-to-video"
_PRICES = ("price_per_second", "price_per_second_with_audio", "audio_price_ceiling")  # USD per second, as text


@dataclass(frozen=True)
class Model:
    """One model's capability matrix: the API's numbers, enums and price, as the checker uses them."""

    id: str
    revision: str
    summary: str
    price_per_second: Decimal | None
    billing: str
    status: str
    requires: tuple[str, ...]
    prompt_max_chars: int
    multi_prompt: bool
    shot_min: int
    shot_max: int
    total_min: int
    total_max: int
    allowed_durations: tuple[int, ...]
    default_duration: int
    max_images_plus_elements: int
    max_refs_per_element: int
    elements: bool
    input_image: bool
    frames: bool
    tail_frame: bool
    start_key: str
    requires_start: bool
    aspect_ratios: tuple[str, ...]
    default_aspect_ratio: str | None
    audio: bool
    negative_prompt: bool
    response_formats: tuple[str, ...]
    generations_min: int
    generations_max: int
    # With `generate_audio`: the published price, or else the highest plausible one and
    # where it comes from (the budget assumes it; the preview says so).
    price_per_second_with_audio: Decimal | None = None
    audio_price_ceiling: Decimal | None = None
    audio_price_source: str | None = None
    # Limits of several shots that Oxen's page leaves open but Kling's own API and other
    # hosts state ([multi_shot]); the checker warns past them. None / True: nothing stated.
    max_shots_upstream: int | None = None
    frames_with_shots_upstream: bool = True
    # Local images ([images]). `image_formats`: what the model takes (others are errors);
    # `image_formats_unlisted`: documented for another Kling model on Oxen but not this
    # one (a warning). The `_upstream` limits are those other hosts of the same models
    # publish (Kling's own API, fal), checked as warnings; `image_limits_source` says where
    # they come from. None: nothing stated.
    image_formats: tuple[str, ...] = ("png", "jpeg", "webp")
    image_formats_unlisted: tuple[str, ...] = ()
    image_max_bytes_upstream: int | None = None
    image_min_side_upstream: int | None = None
    image_aspect_range_upstream: tuple[Decimal, Decimal] | None = None  # width / height, low and high
    image_limits_source: str | None = None
    # Output resolution ([settings] `resolutions`, `default_resolution`): the values the
    # `resolution` setting takes; empty for a model whose schema has no `resolution`.
    resolutions: tuple[str, ...] = ()
    default_resolution: str | None = None
    # Prices that depend on the resolution, where the model's `pricing` publishes them
    # (`cost_per_second_by_resolution`; `cost_per_second_high_res` for the resolutions in
    # `high_res_resolutions`). USD per second, without audio. Empty / None: none published.
    prices_by_resolution: tuple[tuple[str, Decimal], ...] = ()
    price_per_second_high_res: Decimal | None = None
    high_res_resolutions: tuple[str, ...] = ()
    # False where the model's page says to leave `aspect_ratio` out when the only images
    # are start/end frames (the frames give the shape): klingspec then never sends it.
    aspect_with_only_frames: bool = True


@cache
def known_ids() -> tuple[str, ...]:
    return tuple(sorted(p.name.removesuffix(".toml") for p in models_dir().iterdir() if p.name.endswith(".toml")))


@cache
def model(model_id: str) -> Model | None:
    """The capability matrix of `model_id`, or None when klingspec does not know it."""
    if model_id not in known_ids():
        return None
    data = tomllib.loads((models_dir() / f"{model_id}.toml").read_text(encoding="utf-8"))
    prompt, duration, refs, settings = (data[k] for k in ("prompt", "duration", "references", "settings"))
    multi_shot = data.get("multi_shot", {})
    images = data.get("images", {})
    aspect = images.get("aspect_range_upstream")
    price, with_audio, ceiling = (data.get(k) for k in _PRICES)
    high_res = data.get("price_per_second_high_res")
    return Model(
        id=data["id"],
        revision=data["revision"],
        summary=data["summary"],
        price_per_second=Decimal(price) if price is not None else None,
        billing=data["billing"],
        status=data["status"],
        requires=tuple(data.get("requires", ())),
        prompt_max_chars=prompt["max_chars"],
        multi_prompt=prompt["multi_prompt"],
        shot_min=duration["shot_min"],
        shot_max=duration["shot_max"],
        total_min=duration["total_min"],
        total_max=duration["total_max"],
        allowed_durations=tuple(duration.get("allowed", ())),
        default_duration=duration["default"],
        max_images_plus_elements=refs["max_images_plus_elements"],
        max_refs_per_element=refs["max_refs_per_element"],
        elements=refs["elements"],
        input_image=refs["input_image"],
        frames=refs["frames"],
        tail_frame=refs.get("tail_frame", refs["frames"]),
        start_key=refs.get("start_key", "start_image_url"),
        requires_start=refs.get("requires_start", False),
        aspect_ratios=tuple(settings["aspect_ratios"]),
        default_aspect_ratio=settings.get("default_aspect_ratio"),
        audio=settings["audio"],
        negative_prompt=settings["negative_prompt"],
        response_formats=tuple(settings["response_formats"]),
        generations_min=settings["generations_min"],
        generations_max=settings["generations_max"],
        price_per_second_with_audio=Decimal(with_audio) if with_audio is not None else None,
        audio_price_ceiling=Decimal(ceiling) if ceiling is not None else None,
        audio_price_source=data.get("audio_price_source"),
        max_shots_upstream=multi_shot.get("max_shots_upstream"),
        frames_with_shots_upstream=multi_shot.get("frames_upstream", True),
        image_formats=tuple(images.get("formats", ("png", "jpeg", "webp"))),
        image_formats_unlisted=tuple(images.get("formats_unlisted", ())),
        image_max_bytes_upstream=images.get("max_bytes_upstream"),
        image_min_side_upstream=images.get("min_side_upstream"),
        image_aspect_range_upstream=(_ratio(aspect[0]), _ratio(aspect[1])) if aspect else None,
        image_limits_source=images.get("limits_source"),
        resolutions=tuple(settings.get("resolutions", ())),
        default_resolution=settings.get("default_resolution"),
        prices_by_resolution=tuple((r, Decimal(p)) for r, p in data.get("prices_by_resolution", {}).items()),
        price_per_second_high_res=Decimal(high_res) if high_res is not None else None,
        high_res_resolutions=tuple(data.get("high_res_resolutions", ())),
        aspect_with_only_frames=settings.get("aspect_ratio_with_only_frames", True),
    )


def _ratio(written: str) -> Decimal:
    """`"1:2.5"` -> 0.4: a ratio as written in a matrix, as width / height."""
    width, _, height = written.partition(":")
    return Decimal(width) / Decimal(height)


def model_schema(model_id: str) -> dict[str, Any] | None:
    """The published request schema of `model_id` (`request_schema` of `GET /ai/models/{id}`)
    that compiled bodies are validated against, or None when klingspec has none.

    The one place the schema comes from: today klingspec's built-in copy,
    `schema/models/<id>.json` (reconstructed from Oxen's generated pages, fact sheet 5.2 and
    6.x). A synced catalogue slots in here, preferring its schema over the built-in one.
    The dict is shared: callers must not change it.
    """
    return builtin_schema(model_id)


@cache
def builtin_schema(model_id: str) -> dict[str, Any] | None:
    """klingspec's built-in copy of `model_id`'s published request schema, or None."""
    if model_id not in known_ids():
        return None
    import json

    try:
        schema: dict[str, Any] = json.loads(read_text("schema", f"models/{model_id}.json"))
    except FileNotFoundError:
        return None
    return schema
