"""`klingspec models sync`: fetch the API's model catalogue and keep it for check and plan.

The listing (`GET /ai/models`) says which models exist; each Kling video model's detail
(`GET /ai/models/{id}`) carries its `pricing` and `request_schema`. The whole result is
built in memory and written in one atomic step (`catalogue.save`), so a sync that fails
half-way (a network fault, an error status, an answer that is not a catalogue) leaves the
previous cache as it was.

`changes` compares the facts the checker would use after the sync with the built-in
matrices (and with the previous sync), model by model: the report `models sync` prints.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from klingspec import catalogue, targets
from klingspec.catalogue import Catalogue, Listed
from klingspec.run.client import ApiError

if TYPE_CHECKING:
    from klingspec.run.client import OxenClient
    from klingspec.targets import Model


class SyncFailed(Exception):
    """The catalogue could not be fetched; the cache on disk is untouched."""


def fetch(client: OxenClient, clock: Callable[[], float] = time.time) -> Catalogue:
    """The catalogue as the API answers it now (nothing is written)."""
    try:
        response = client.models_listing()
        listing = response.json()
    except ApiError as error:
        raise SyncFailed(f"the model listing failed: {error}") from None
    except ValueError:
        raise SyncFailed("the model listing is not JSON") from None
    data = listing.get("data") if isinstance(listing, dict) else None
    if not isinstance(data, list):
        raise SyncFailed("the model listing has no `data` list")
    objects = [m for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]
    details: dict[str, Listed] = {}
    for summary in objects:
        if not catalogue.is_kling_video(summary):
            continue
        model_id = summary["id"]
        try:
            detail = client.model(model_id)
        except ApiError as error:
            raise SyncFailed(f"the detail of {model_id} failed: {error}") from None
        details[model_id] = Listed(model_id, detail)
    return Catalogue(
        api_url=client.api_url,
        fetched_at=clock(),
        etag=response.headers.get("etag"),
        sha256=hashlib.sha256(response.content).hexdigest(),
        listed=frozenset(m["id"] for m in objects),
        models=details,
    )


@dataclass(frozen=True)
class Change:
    """One difference in what klingspec would use for a model."""

    model: str
    what: str  # "new", "gone", or the fact that changed ("price per second", ...)
    before: str
    after: str

    def line(self) -> str:
        if self.what == "new":
            return f"{self.model}: new in the catalogue ({self.after}); klingspec has no capability matrix for it"
        if self.what == "gone":
            return f"{self.model}: {self.after}"
        return f"{self.model}: {self.what} {self.before} -> {self.after}"

    def as_json(self) -> dict[str, str]:
        return {"model": self.model, "what": self.what, "before": self.before, "after": self.after}


def _money(value: Decimal | None) -> str:
    return "unpublished" if value is None else f"${value.normalize():f}/s"


def _words(values: Iterable[object]) -> str:
    return ", ".join(str(v) for v in values) or "none"


def _durations(m: Model) -> str:
    return _words(m.allowed_durations) if m.allowed_durations else f"{m.total_min}-{m.total_max} s"


# The facts a sync can move: (label, the value compared, how it is shown).
FACTS: tuple[tuple[str, Callable[[Model], object], Callable[[Model], str]], ...] = (
    ("price per second", lambda m: m.price_per_second, lambda m: _money(m.price_per_second)),
    (
        "price per second with audio",
        lambda m: m.price_per_second_with_audio,
        lambda m: _money(m.price_per_second_with_audio),
    ),
    (
        "high-res price per second",
        lambda m: m.price_per_second_high_res,
        lambda m: _money(m.price_per_second_high_res),
    ),
    (
        "prices by resolution",
        lambda m: m.prices_by_resolution,
        lambda m: _words(f"{r} {_money(p)}" for r, p in m.prices_by_resolution),
    ),
    ("aspect ratios", lambda m: frozenset(m.aspect_ratios), lambda m: _words(m.aspect_ratios)),
    ("resolutions", lambda m: frozenset(m.resolutions), lambda m: _words(m.resolutions)),
    ("default resolution", lambda m: m.default_resolution, lambda m: m.default_resolution or "none"),
    ("default aspect ratio", lambda m: m.default_aspect_ratio, lambda m: m.default_aspect_ratio or "none"),
    ("durations", _durations, _durations),
    ("default duration", lambda m: m.default_duration, lambda m: f"{m.default_duration} s"),
)


Facts = Callable[[str], "Model | None"]  # a model id -> the facts some source gives


def changes(before: Facts, after: Facts, synced: Catalogue) -> list[Change]:
    """What differs between the facts `before` and `after` give for every model klingspec
    knows (a price, an enum, a limit, a model gone), plus the catalogue's Kling video
    models klingspec has no matrix for. A model becoming `live` is no change: the
    catalogue confirms what the matrix says."""
    found: list[Change] = []
    for model_id in targets.known_ids():
        old, new = before(model_id), after(model_id)
        if old is None or new is None:
            continue
        if new.status == "retired" and old.status != "retired":
            found.append(Change(model_id, "gone", old.status, f"retired: {new.status_note}"))
            continue
        if old.status == "retired" and new.status != "retired":
            found.append(Change(model_id, "status", "retired", new.status))
        for label, value, shown in FACTS:
            if value(old) != value(new):
                found.append(Change(model_id, label, shown(old), shown(new)))
    for model_id in sorted(set(synced.models) - set(targets.known_ids())):
        found.append(Change(model_id, "new", "", synced.models[model_id].summary or "no summary"))
    return found


def sync(
    client: OxenClient, where: str | None = None, clock: Callable[[], float] = time.time, name: str | None = None
) -> SyncResult:
    """Fetch the catalogue, report what changed, then save it over the previous one (so
    a report that cannot be made saves nothing). `name` is how the plan will name the
    source (the sandbox's loopback URL changes every run)."""
    previous = catalogue.load(where)
    fresh = fetch(client, clock)
    if name is not None:
        fresh = replace(fresh, api_url=name)
    if not fresh.listed & set(targets.known_ids()):
        raise SyncFailed(
            f"the listing names none of klingspec's {len(targets.known_ids())} models "
            f"({len(fresh.listed)} listed): not believed to be the whole catalogue"
        )
    against_builtin = changes(targets.builtin, lambda i: targets.facts_of(i, fresh), fresh)
    since_last = (
        changes(lambda i: targets.facts_of(i, previous), lambda i: targets.facts_of(i, fresh), fresh)
        if previous
        else None
    )
    saved = catalogue.save(fresh, where)
    return SyncResult(fresh, saved, against_builtin, since_last, previous)


@dataclass(frozen=True)
class SyncResult:
    catalogue: Catalogue
    path: str
    against_builtin: list[Change]
    since_last: list[Change] | None  # None: there was no previous sync
    previous: Catalogue | None

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "api_url": self.catalogue.api_url,
            "fetched_at": self.catalogue.fetched_at,
            "etag": self.catalogue.etag,
            "sha256": self.catalogue.sha256,
            "models": sorted(self.catalogue.models),
            "changes": [c.as_json() for c in self.against_builtin],
            "since_last_sync": None if self.since_last is None else [c.as_json() for c in self.since_last],
        }


def dumps(result: SyncResult) -> str:
    return json.dumps(result.as_json(), indent=2)
