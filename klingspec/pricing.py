"""Pricing: what a request will cost, before anything is spent. Pure Decimal arithmetic.

cost = price per second x total seconds of output x generations, with the price from
the model's capability matrix. A model without a known price gives `total=None`, never 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from klingspec.binding import BoundScript
from klingspec.targets import model as lookup_model

CENT = Decimal("0.01")


@dataclass(frozen=True)
class ShotCost:
    name: str
    line: int
    seconds: int
    cost: Decimal | None


@dataclass(frozen=True)
class Estimate:
    model: str
    shots: tuple[ShotCost, ...]
    seconds: int
    generations: int
    price_per_second: Decimal | None
    billing: str
    audio: bool

    @property
    def exact(self) -> Decimal | None:
        if self.price_per_second is None:
            return None
        return self.price_per_second * self.seconds * self.generations

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
            None if rate is None else rate * int(s.seconds),
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
