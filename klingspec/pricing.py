"""Pricing: what a request will cost, before anything is spent. Pure Decimal arithmetic.

cost = price per second x total seconds of output x generations, with the price from
the model's capability matrix. A render's bill is that cost rounded half up to the cent,
once (`charge`); totals add bills, so a plan, a run's summary and the ledger agree to the
cent. A model without a known price gives `None`, never 0. Where the source leaves a price
open (audio on most models), a `Quote` carries the previewed amount and the highest
plausible one, which the budget and the confirmation use.

This module is the only place money is computed: the plan, the run's confirmation and
budget, the saved plan, the summaries, `ls --spend` and the editor all take their figures
from here and only format them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from klingspec.binding import BoundScript
from klingspec.targets import Model, default_reason
from klingspec.targets import model as lookup_model

CENT = Decimal("0.01")
DEFAULT_SHOT_SECONDS = 5  # the API's duration when a body gives none


def to_cents(amount: Decimal) -> Decimal:
    """The one rounding rule: half up, to the cent, once per render (a bill's line)."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def cost(price_per_second: Decimal | None, seconds: int, generations: int = 1) -> Decimal | None:
    """The one formula: price per second x seconds x generations; unknown price, unknown cost.
    Exact (a shot's share); `charge` rounds it for a whole render."""
    if price_per_second is None:
        return None
    return price_per_second * seconds * generations


def charge(price_per_second: Decimal | None, seconds: int, generations: int) -> Decimal | None:
    """What one render is billed: `cost`, rounded by `to_cents`. Every surface that shows a
    render's price shows this figure, and every total is a sum of them."""
    exact = cost(price_per_second, seconds, generations)
    return None if exact is None else to_cents(exact)


def total(amounts: Iterable[Decimal | None]) -> Decimal | None:
    """The sum of several costs; one unknown makes the sum unknown (never counted as $0)."""
    result = Decimal(0)
    for amount in amounts:
        if amount is None:
            return None
        result += amount
    return result


@dataclass(frozen=True)
class Rate:
    """The price of one second of one request's output.

    `per_second` is what the preview shows; `ceiling` is the highest plausible price, which
    the budget and the confirmation use. They differ only where the source leaves the price
    open (audio on a model whose audio price is not published); `basis` then says why.
    None: unknown, never $0.
    """

    per_second: Decimal | None
    ceiling: Decimal | None
    basis: str | None = None


def rate_of(known: Model | None, audio: bool, resolution: str | None = None) -> Rate:
    """The rate of a request to `known` (None: a model klingspec does not know), with or
    without `generate_audio`, at `resolution` (None: the model's default one)."""
    if known is None:
        return Rate(None, None)
    plain = resolution_rate(known, resolution)
    base = plain.per_second
    if base is None or not audio:
        return plain
    if known.price_per_second_with_audio is not None:
        with_audio = known.price_per_second_with_audio
        if plain.ceiling == base == known.price_per_second:
            return Rate(with_audio, with_audio)
        # One price with audio is published, and a resolution's own price: how the two
        # combine is not, so the budget counts the higher (or an unknown one).
        ceiling = None if plain.ceiling is None else max(with_audio, plain.ceiling)
        return Rate(
            with_audio,
            ceiling,
            f"audio on at a priced resolution: previewed at ${with_audio}/s (the price with audio); "
            "how it combines with the resolution's price is not published, so the budget counts "
            + (f"${ceiling}/s" if ceiling is not None else "an unknown amount"),
        )
    ceiling = known.audio_price_ceiling
    if ceiling is None:
        basis = "no price with audio is published and no other host's rate is known: the most it may cost is unknown"
    else:
        source = known.audio_price_source or "another host's rate"
        basis = (
            f"no price with audio is published: previewed at ${base}/s (the rate without audio), "
            f"at most ${ceiling}/s ({source}); the budget and the confirmation count the higher"
        )
    if plain.basis:  # a resolution without a published price as well
        basis = f"{plain.basis}; {basis}"
    top = None if ceiling is None or plain.ceiling is None else max(plain.ceiling, ceiling)
    return Rate(base, top, basis)


def resolution_rate(known: Model, resolution: str | None = None) -> Rate:
    """The rate without audio at `resolution` (None: the model's default): the price
    published for that resolution (`cost_per_second_by_resolution`), else the high-res price
    for a high-res resolution (`cost_per_second_high_res`), else the base price. A high-res
    resolution whose price is not published is previewed at the base price with an unknown
    ceiling (the budget refuses it). Unknown stays unknown, never $0."""
    chosen = resolution or known.default_resolution
    by_resolution = dict(known.prices_by_resolution)
    if chosen in by_resolution:
        return Rate(by_resolution[chosen], by_resolution[chosen])
    base = known.price_per_second
    high = known.price_per_second_high_res
    lowest = known.resolutions[0] if known.resolutions else None
    unlisted = chosen not in (None, lowest, *known.high_res_resolutions)  # not said to be high-res
    if high is not None and base is not None and high > base and unlisted:
        return Rate(
            base,
            high,
            f"a high-res price of ${high}/s is published without the resolutions it covers: "
            f"{chosen} is previewed at ${base}/s and budgeted at ${high}/s",
        )
    if chosen in known.high_res_resolutions:
        high = known.price_per_second_high_res
        if high is not None:
            return Rate(high, high)
        if base is not None:
            return Rate(
                base,
                None,
                f"no price at {chosen} is published: previewed at ${base}/s (the base rate); "
                "the most it may cost is unknown",
            )
    return Rate(base, base)


@dataclass(frozen=True)
class Quote:
    """One render's bill before it is sent: the previewed `amount` and the `ceiling` it may
    plausibly reach, each from `charge` (to the cent). None: unknown."""

    amount: Decimal | None
    ceiling: Decimal | None

    @property
    def open(self) -> bool:
        """The bill may be higher than the preview (the ceiling is above it, or unknown)."""
        return self.amount is None or self.ceiling != self.amount


def add(bills: Iterable[Quote]) -> Quote:
    """Several renders' bills together (each part by `total`: one unknown, all unknown)."""
    bills = list(bills)
    return Quote(total(b.amount for b in bills), total(b.ceiling for b in bills))


def usd_number(amount: Decimal | str | None) -> float | None:
    """An amount as a JSON number of USD, the way every JSON output writes one: `null` when
    it is unknown, never 0 (a ledger keeps its figures as text)."""
    return None if amount is None else float(amount)


def usd(amount: Decimal | None, unknown: str = "unknown") -> str:
    """`$3.36`: how every surface writes an amount (`unknown` when there is none, never $0)."""
    return unknown if amount is None else f"${to_cents(amount)}"


def usd_quote(bill: Quote, unknown: str = "unknown") -> str:
    """`$2.69`, or `$2.69 (up to $3.36)` when the bill may be higher than previewed."""
    if bill.amount is None:
        return unknown
    if not bill.open:
        return usd(bill.amount)
    return f"{usd(bill.amount)} (up to {usd(bill.ceiling, 'an unknown amount')})"


def quote(rate: Rate, seconds: int, generations: int) -> Quote:
    return Quote(charge(rate.per_second, seconds, generations), charge(rate.ceiling, seconds, generations))


def seconds_of(body: Mapping[str, Any]) -> int:
    """Seconds of video one generation of a request body makes (the API's default shot is 5 s)."""
    shots = body.get("multi_prompt")
    if isinstance(shots, list) and shots:
        return sum(int(s.get("duration", DEFAULT_SHOT_SECONDS)) for s in shots if isinstance(s, dict))
    return int(body.get("duration", DEFAULT_SHOT_SECONDS))


def quote_body(body: Mapping[str, Any], generations: int) -> Quote:
    """What a compiled request body will be billed (runs and saved plans are priced by this)."""
    known = lookup_model(str(body.get("model", "")))
    resolution = body.get("resolution")
    return quote(
        rate_of(known, body.get("generate_audio") is True, resolution if isinstance(resolution, str) else None),
        seconds_of(body),
        generations,
    )


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
    rate: Rate
    billing: str
    audio: bool
    defaulted: bool = False  # the script names no model: the plan says which and why
    resolution: str | None = None  # the one the body asks for, else the model's default

    @property
    def price_per_second(self) -> Decimal | None:
        return self.rate.per_second

    @property
    def exact(self) -> Decimal | None:
        return cost(self.rate.per_second, self.seconds, self.generations)

    @property
    def per_generation(self) -> Decimal | None:
        """One video of all the shots (the plan table's footer), exact."""
        return cost(self.rate.per_second, self.seconds)

    @property
    def quote(self) -> Quote:
        return quote(self.rate, self.seconds, self.generations)

    @property
    def total(self) -> Decimal | None:
        """The render's bill as previewed, to the cent (`charge`)."""
        return self.quote.amount

    @property
    def ceiling(self) -> Decimal | None:
        """The most the render may plausibly be billed, to the cent (the budget's figure)."""
        return self.quote.ceiling

    @property
    def assumptions(self) -> tuple[str, ...]:
        known = lookup_model(self.model)
        notes = [f"model {self.model}" + (f", {default_reason(self.model)}" if self.defaulted else "")]
        if known:
            notes.append(f"prices and limits from {known.facts}")
            if known.status == "retired":
                notes.append(f"{self.model} is retired: {known.status_note}")
        notes.append(f"billed {self.billing}")
        if self.price_per_second is None:
            notes.append("no published price for this model: the cost cannot be previewed")
        elif self.audio:
            notes.append("audio on: " + (self.rate.basis or f"${self.rate.per_second}/s with audio, as published"))
        if known is not None and self.resolution and (known.prices_by_resolution or known.high_res_resolutions):
            detail = self.rate.basis if self.rate.basis and not self.audio else f"${self.rate.per_second}/s"
            notes.append(f"resolution {self.resolution}: {detail}")
        return tuple(notes)


def estimate(script: BoundScript) -> Estimate:
    known = script.model
    audio = bool(script.audio())
    setting = script.settings.get("resolution")
    resolution = setting.raw if setting and known and setting.raw in known.resolutions else None
    rate = rate_of(known, audio, resolution)
    shots = tuple(
        ShotCost(
            s.shot.name.value if s.shot.name else f"#{s.index}",
            s.shot.span.start_position[0],
            int(s.seconds),
            cost(rate.per_second, int(s.seconds)),
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
        audio,
        defaulted="model" not in script.settings and script.model_override is None and script.project_model is None,
        resolution=resolution or (known.default_resolution if known else None),
    )
