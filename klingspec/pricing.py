"""Pricing: what a request will cost, before anything is spent. Pure Decimal arithmetic.

cost = price per second x total seconds of output x generations, with the price from
the model's capability matrix. A model without a known price gives `None`, never 0.
This module is the only place money is computed: the plan, the run's confirmation and
budget, the saved plan and the summaries all take their figures from here and only
format them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from klingspec.binding import BoundScript
from klingspec.targets import model as lookup_model

CENT = Decimal("0.01")
DEFAULT_SHOT_SECONDS = 5  # the API's duration when a body gives none


def cost(price_per_second: Decimal | None, seconds: int, generations: int = 1) -> Decimal | None:
    """The one formula: price per second x seconds x generations; unknown price, unknown cost."""
    if price_per_second is None:
        return None
    return price_per_second * seconds * generations


def total(amounts: Iterable[Decimal | None]) -> Decimal | None:
    """The sum of several costs; one unknown makes the sum unknown (never counted as $0)."""
    result = Decimal(0)
    for amount in amounts:
        if amount is None:
            return None
        result += amount
    return result


def seconds_of(body: Mapping[str, Any]) -> int:
    """Seconds of video one generation of a request body makes (the API's default shot is 5 s)."""
    shots = body.get("multi_prompt")
    if isinstance(shots, list) and shots:
        return sum(int(s.get("duration", DEFAULT_SHOT_SECONDS)) for s in shots if isinstance(s, dict))
    return int(body.get("duration", DEFAULT_SHOT_SECONDS))


def cost_of_body(body: Mapping[str, Any], generations: int) -> Decimal | None:
    """What a compiled request body costs (a saved plan's bodies are priced by this)."""
    known = lookup_model(str(body.get("model", "")))
    return cost(known.price_per_second if known else None, seconds_of(body), generations)


@dataclass(frozen=True)
class ShotCost:
    """One shot's seconds and cost (None: the price is unknown)."""

    name: str
    line: int
    seconds: int
    cost: Decimal | None


@dataclass(frozen=True)
class Estimate:
    """A request's cost preview: per shot, in total, and the assumptions behind it."""

    model: str
    shots: tuple[ShotCost, ...]
    seconds: int
    generations: int
    price_per_second: Decimal | None
    billing: str
    audio: bool

    @property
    def exact(self) -> Decimal | None:
        return cost(self.price_per_second, self.seconds, self.generations)

    @property
    def per_generation(self) -> Decimal | None:
        """One video of all the shots (the plan table's footer)."""
        return cost(self.price_per_second, self.seconds)

    @property
    def total(self) -> Decimal | None:
        """Rounded to the cent, half up, as a bill would show it."""
        exact = self.exact
        return None if exact is None else exact.quantize(CENT, rounding=ROUND_HALF_UP)

    @property
    def assumptions(self) -> tuple[str, ...]:
        known = lookup_model(self.model)
        notes = [
            f"model {self.model}" + (f" (capability matrix {known.revision})" if known else ""),
            f"billed {self.billing}",
        ]
        if self.audio:
            notes.append(
                "audio on: "
                + (
                    known.audio_price_note
                    if known and known.audio_price_note
                    else "no separate audio price is documented"
                )
            )
        if self.price_per_second is None:
            notes.append("no published price for this model: the cost cannot be previewed")
        return tuple(notes)


def estimate(script: BoundScript) -> Estimate:
    known = script.model
    rate = known.price_per_second if known else None
    shots = tuple(
        ShotCost(
            s.shot.name.value if s.shot.name else f"#{s.index}",
            s.shot.span.start_position[0],
            int(s.seconds),
            cost(rate, int(s.seconds)),
        )
        for s in script.shots
    )
    return Estimate(
        script.model_id,
        shots,
        sum(s.seconds for s in shots),
        script.generations(),
        rate,
        known.billing if known else "per second of output video (assumed)",
        bool(script.audio()),
    )
