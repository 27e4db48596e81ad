"""Facts about each target model, read from its capability matrix (`models/<id>.toml`).

The checker, the pricer and the editor's hovers read every API number from here; no
other module types a limit, an enum or a price. One TOML file per model, versioned by
its `revision`, so a change in the API is a one-file diff.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import cache
from typing import Any

from klingspec import catalogue
from klingspec.catalogue import Catalogue, Listed
from klingspec.resources import MODELS, read_text

# The default when a script names no model, unless the facts in use retire it (then its
# successor: `default_model_id`). The one Kling model on Oxen that takes several shots and
# has a published price; README, "Which model".
DEFAULT_MODEL = "kling-video-o3-pro-reference-to-video"
STATUSES = ("documented", "live", "retired", "unknown")
PRICING_METHOD = "per_video_output_second"  # how Kling video models are priced (fact sheet 5.1)
MAX_PRICE = Decimal(1000)  # USD per second: a published price at or above it is not believed
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
    # Where the model stands: `documented` (the built-in matrix, from Oxen's docs), `live`
    # (listed by the synced catalogue) or `retired` (the synced catalogue lacks it or marks
    # it deprecated, or the built-in matrix says so); `status_note` says why, and
    # `replaced_by` names the successor where one is known.
    status_note: str | None = None
    replaced_by: str | None = None
    # Where the facts come from: the built-in matrix, or the catalogue synced at
    # `synced_at` (Unix seconds) from `synced_from`, laid over it.
    synced_at: float | None = None
    synced_from: str | None = None

    @property
    def facts(self) -> str:
        """Where the checker's numbers for this model come from, as the plan says it."""
        built_in = f"the built-in matrix {self.revision}"
        if self.synced_at is None:
            return f"{built_in} (no synced catalogue)"
        when, age = catalogue.when(self.synced_at), catalogue.age(self.synced_at)
        return f"the catalogue synced from {self.synced_from} {when} ({age}) over {built_in}"

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
    return tuple(sorted(name.removesuffix(".toml") for name in os.listdir(MODELS) if name.endswith(".toml")))


def model(model_id: str) -> Model | None:
    """The facts the checker and the pricer use for `model_id`: the built-in capability
    matrix with the synced catalogue laid over it (`overlay`), or None when klingspec has
    no matrix for it."""
    return facts_of(model_id, catalogue.load())


def default_model_id() -> str:
    """The model of a script that names none: `DEFAULT_MODEL`, or, when the facts in use
    retire it, its successor (`kling-video-o3-omni` for the O3 Pro ids) unless that is
    retired too."""
    chosen, seen = DEFAULT_MODEL, {DEFAULT_MODEL}
    while (facts := model(chosen)) and facts.status == "retired" and facts.replaced_by not in (None, *seen):
        chosen = str(facts.replaced_by)
        seen.add(chosen)
    final = model(chosen)
    # A successor that is retired as well is no better: keep the documented default (the
    # checker warns at the first shot that it is retired).
    return chosen if final is not None and final.status != "retired" else DEFAULT_MODEL


def default_reason(model_id: str) -> str:
    """Why `model_id` is the default, as `plan` states it."""
    if model_id == DEFAULT_MODEL:
        return "the default (several shots, a published price)"
    return f"the default (the successor of {DEFAULT_MODEL}, retired)"


@cache
def facts_of(model_id: str, synced: Catalogue | None) -> Model | None:
    """The matrix of `model_id` with `synced` laid over it (the matrix alone without one):
    what `model` gives for the catalogue on disk, and `models sync` for the fetched one."""
    matrix = builtin(model_id)
    if matrix is None or synced is None:
        return matrix
    return overlay(matrix, synced)


@cache
def builtin(model_id: str) -> Model | None:
    """The built-in capability matrix of `model_id` alone, or None when klingspec does not know it."""
    if model_id not in known_ids():
        return None
    with open(os.path.join(MODELS, f"{model_id}.toml"), encoding="utf-8") as matrix:
        data = tomllib.loads(matrix.read())
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
        status_note=data.get("status_note"),
        replaced_by=data.get("replaced_by"),
        resolutions=tuple(settings.get("resolutions", ())),
        default_resolution=settings.get("default_resolution"),
        prices_by_resolution=tuple((r, Decimal(p)) for r, p in data.get("prices_by_resolution", {}).items()),
        price_per_second_high_res=Decimal(high_res) if high_res is not None else None,
        high_res_resolutions=tuple(data.get("high_res_resolutions", ())),
        aspect_with_only_frames=settings.get("aspect_ratio_with_only_frames", True),
    )


def overlay(matrix: Model, synced: Catalogue) -> Model:
    """`matrix` with what the synced catalogue says of the model laid over it.

    Taken: whether it is listed (else retired), its `pricing`, and from its
    `request_schema` the enums, defaults and bounds of `aspect_ratio` and `duration`. A
    field the schema leaves out removes nothing: the published schemas omit `prompt`,
    `multi_prompt` and `duration` for some models (fact sheet 5.2).
    """
    stamp = {"synced_at": synced.fetched_at, "synced_from": synced.api_url}
    listed = synced.get(matrix.id)
    if listed is None and matrix.id in synced.listed:  # listed, but not as a video model: no detail
        return replace(matrix, status="live", status_note=None, **stamp)  # type: ignore[arg-type]
    if listed is None or listed.deprecated:
        why = "lists it as deprecated" if listed else "no longer lists it"
        note = f"the catalogue synced {synced.when()} {why}"
        return replace(matrix, status="retired", status_note=note, **stamp)  # type: ignore[arg-type]
    changes: dict[str, Any] = {"status": "live", "status_note": None, **stamp}
    changes |= _prices(listed)
    props = listed.properties()
    aspect = props.get("aspect_ratio", {})
    if _strings(aspect.get("enum")):
        changes["aspect_ratios"] = _same_order(_strings(aspect["enum"]), matrix.aspect_ratios)
        default = aspect.get("default")
        changes["default_aspect_ratio"] = default if default in changes["aspect_ratios"] else None
    changes |= _durations(matrix, props.get("duration", {}))
    resolution = props.get("resolution", {})
    if _strings(resolution.get("enum")):
        changes["resolutions"] = _same_order(_strings(resolution["enum"]), matrix.resolutions)
        default = resolution.get("default")
        changes["default_resolution"] = default if default in changes["resolutions"] else None
    return replace(matrix, **changes)


def _prices(listed: Listed) -> dict[str, Any]:
    """The published per-second prices, where the object has them (null: not published,
    and the built-in figure stands)."""
    found: dict[str, Any] = {}
    method = listed.pricing.get("method")
    if method is not None and method != PRICING_METHOD:  # priced some other way: not per second
        return found
    for key, field_name in (
        ("cost_per_second", "price_per_second"),
        ("cost_per_second_with_audio", "price_per_second_with_audio"),
        ("cost_per_second_high_res", "price_per_second_high_res"),
    ):
        price = price_of(listed.pricing.get(key))
        if price is not None:
            found[field_name] = price
    if "price_per_second_with_audio" in found:  # a published audio price replaces the ceiling
        found |= {"audio_price_ceiling": None, "audio_price_source": None}
    by_resolution = listed.pricing.get("cost_per_second_by_resolution")
    if isinstance(by_resolution, dict):
        prices = tuple((str(r), p) for r, v in sorted(by_resolution.items()) if (p := price_of(v)) is not None)
        if prices:
            found["prices_by_resolution"] = prices
    return found


def price_of(value: Any) -> Decimal | None:
    """A published USD-per-second price, or None for anything that is not one: null, a
    boolean, text that is no number, and any amount outside (0, 1000). A zero is a
    placeholder, not a free model (an unknown price is never shown as $0), and nothing
    klingspec targets costs $1000 a second."""
    if not isinstance(value, int | float | str) or isinstance(value, bool):
        return None
    try:
        price = Decimal(str(value))
    except ArithmeticError:
        return None
    return price if price.is_finite() and 0 < price < MAX_PRICE else None


def _durations(matrix: Model, duration: Mapping[str, Any]) -> dict[str, Any]:
    """Total duration bounds from the schema's `duration`: an enum of totals, or a range."""
    found: dict[str, Any] = {}
    enum = duration.get("enum")
    allowed = tuple(sorted({v for v in enum if _seconds(v) is not None})) if isinstance(enum, list) else ()
    if allowed:
        found |= {"allowed_durations": allowed, "total_min": allowed[0], "total_max": allowed[-1]}
    low, high = _seconds(duration.get("minimum")), _seconds(duration.get("maximum"))
    if low is not None and high is not None and low > high:  # a range that holds nothing: not believed
        low = high = None
    if low is not None:
        found["total_min"] = low
    if high is not None:
        found["total_max"] = high
        found["shot_max"] = min(matrix.shot_max, high)
    default = _seconds(duration.get("default"))
    if default is not None:
        found["default_duration"] = default
    return found


def _seconds(value: Any) -> int | None:
    """A whole number of seconds a schema may state (1 s to an hour), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 3600 else None


def _same_order(values: tuple[str, ...], known: tuple[str, ...]) -> tuple[str, ...]:
    """`values` in the matrix's order where the matrix has them (an enum is a set; its order
    in a schema says nothing), then any new ones as listed."""
    return tuple(v for v in known if v in values) + tuple(v for v in values if v not in known)


def _strings(values: Any) -> tuple[str, ...]:
    return tuple(v for v in values if isinstance(v, str)) if isinstance(values, list) else ()


def _ratio(written: str) -> Decimal:
    """`"1:2.5"` -> 0.4: a ratio as written in a matrix, as width / height."""
    width, _, height = written.partition(":")
    return Decimal(width) / Decimal(height)


def model_schema(model_id: str) -> dict[str, Any] | None:
    """The published request schema of `model_id` (`request_schema` of `GET /ai/models/{id}`)
    that compiled bodies are validated against, or None when klingspec has none.

    The one place the schema comes from: the synced catalogue's, where `klingspec models
    sync` fetched one, else klingspec's built-in copy, `schema/models/<id>.json`
    (reconstructed from Oxen's generated pages, fact sheet 5.2 and 6.x). The dict is
    shared: callers must not change it.
    """
    synced = catalogue.load()
    listed = synced.get(model_id) if synced else None
    if listed is not None and listed.schema is not None and isinstance(listed.schema.get("properties"), dict):
        return dict(listed.schema)
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
