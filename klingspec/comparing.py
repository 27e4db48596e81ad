"""`plan --compare`: the same script priced on other models, with what each would refuse.

Each model is tried by running the whole pipeline with the model swapped
(`Options.model`), so the checker's own rules say what a model rejects (elements on a
text-to-video model, several shots on a one-prompt model): nothing is guessed here. Money
comes from `pricing`, like every other figure.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from klingspec import targets
from klingspec.diagnostics import Diagnostic
from klingspec.pipeline import Options, run_pipeline
from klingspec.pricing import Quote, estimate


@dataclass(frozen=True)
class Trial:
    """One model tried on the script: what it would cost and what it would refuse."""

    model: str
    own: bool  # the model the script itself targets
    status: str  # documented, live, retired, unknown (no matrix)
    seconds: int
    quote: Quote | None  # None: nothing to price (no shots, or an unknown model)
    errors: tuple[Diagnostic, ...]
    warnings: tuple[Diagnostic, ...]

    @property
    def valid(self) -> bool:
        """The model would take the script: known, not retired, and no error."""
        return self.status not in ("unknown", "retired") and not self.errors

    @property
    def priced(self) -> bool:
        return self.quote is not None and self.quote.amount is not None


def wanted(spec: str) -> tuple[str, ...]:
    """`--compare` as written: model ids separated by commas, or `all` for every model
    klingspec has a matrix for. Order kept, repeats dropped."""
    ids: list[str] = []
    for word in (w.strip() for w in spec.split(",")):
        for model_id in targets.known_ids() if word == "all" else (word,) if word else ():
            if model_id not in ids:
                ids.append(model_id)
    return tuple(ids)


def compare(path: str, options: Options, models: Iterable[str]) -> list[Trial]:
    """The script's own model first, then each of `models` (valid ones first, cheapest
    first), each checked and priced."""
    own = run_pipeline(path, options)
    own_id = own.bound.model_id if own.bound else targets.default_model_id()
    others = [_trial(m, own_id, path, options) for m in models if m != own_id]
    return [_trial(own_id, own_id, path, options), *sorted(others, key=_rank)]


def _rank(trial: Trial) -> tuple[bool, Decimal, str]:
    """Valid models first, cheapest first (an unknown price last), then by id."""
    amount = trial.quote.ceiling if trial.quote is not None else None
    return (not trial.valid, amount if amount is not None else Decimal("Infinity"), trial.model)


def _trial(model_id: str, own_id: str, path: str, options: Options) -> Trial:
    result = run_pipeline(path, replace(options, model=model_id))
    model = targets.model(model_id)
    bound = result.bound
    priced = estimate(bound) if bound is not None and bound.shots else None  # unknown model: unknown price
    return Trial(
        model=model_id,
        own=model_id == own_id,
        status=model.status if model else "unknown",
        seconds=priced.seconds if priced else 0,
        quote=priced.quote if priced else None,
        errors=tuple(d for d in result.diagnostics if d.severity == "error"),
        warnings=tuple(d for d in result.diagnostics if d.severity == "warning"),
    )


def cheapest(trials: Sequence[Trial]) -> Trial | None:
    """The valid model with the lowest known bill (at its ceiling, then as previewed)."""
    priced = [(t, t.quote) for t in trials if t.valid and t.quote is not None and t.quote.amount is not None]
    ranked = [(q.ceiling if q.ceiling is not None else Decimal("Infinity"), q.amount, t) for t, q in priced]
    return min(ranked, key=lambda r: (r[0], r[1]), default=(None, None, None))[2]
