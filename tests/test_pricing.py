"""pricing.py: Decimal cost previews; unknown prices are None, never 0."""

from __future__ import annotations

from decimal import Decimal

import pytest
from helpers import codes, errors, only, run

from klingspec import targets
from klingspec.pricing import Estimate


def test_documented_example_eleven_seconds_two_generations(tmp_path):
    result = run(tmp_path, 'generations 2\nshot arrival 6s "x"\nshot sip 5s "y"\n')
    e = result.estimate
    assert isinstance(e, Estimate)
    assert e.seconds == 11 and e.generations == 2
    assert e.price_per_second == Decimal("0.224")
    assert e.exact == Decimal("4.928")
    assert e.total == Decimal("4.93")
    assert isinstance(e.total, Decimal) and isinstance(e.exact, Decimal)
    assert [(s.name, s.line, s.seconds, s.cost) for s in e.shots] == [
        ("arrival", 2, 6, Decimal("1.344")),
        ("sip", 3, 5, Decimal("1.120")),
    ]


def test_default_five_second_video_costs_1_12(tmp_path):
    """The API document: 'A default 5-second video costs ~$1.12'."""
    assert run(tmp_path, 'shot a 5s "x"\n').estimate.total == Decimal("1.12")


def test_rounding_is_half_up_to_the_cent(tmp_path):
    # 0.224 * 3 = 0.672 -> 0.67 ; 0.224 * 7 = 1.568 -> 1.57 ; 0.224*15*4 = 13.44
    assert run(tmp_path, 'shot a 3s "x"\n').estimate.total == Decimal("0.67")
    assert run(tmp_path, 'shot a 7s "x"\n').estimate.total == Decimal("1.57")
    assert run(tmp_path, 'generations 4\nshot a 15s "x"\n').estimate.total == Decimal("13.44")


def test_no_float_drift(tmp_path):
    # 0.07 * 10 * 3 in floats is 2.1000000000000005
    e = run(tmp_path, 'model kling-video-v2-6-pro-text-to-video\ngenerations 3\nshot a 10s "x"\n').estimate
    assert e.exact == Decimal("2.100")
    assert str(e.total) == "2.10"


def test_unknown_price_is_none_not_zero(tmp_path):
    result = run(tmp_path, 'model kling-video-o3-omni\nshot a 5s "x"\n')
    assert errors(result) == []
    e = result.estimate
    assert e.price_per_second is None
    assert e.total is None and e.exact is None
    assert all(s.cost is None for s in e.shots)
    assert e.seconds == 5
    assert any("no published price" in note for note in e.assumptions)
    diagnostic = only(result, "KVS-price-unknown")
    assert diagnostic.severity == "warning"
    assert diagnostic.span.text == "kling-video-o3-omni"


@pytest.mark.parametrize(
    "model_id, price",
    [
        ("kling-video-v2-6-pro-text-to-video", "0.070"),
        ("kling-video-v2-6-pro-image-to-video", "0.070"),
        ("kling-video-o3-pro-image-to-video", "0.224"),
        ("kling-video-o3-pro-reference-to-video", "0.224"),
        ("kling-video-o3-pro-video-to-video-edit", "0.336"),
        ("kling-video-v3-pro-motion-control", "0.168"),
    ],
)
def test_documented_prices(model_id, price):
    """The 'Other Kling Models' table of the API document."""
    model = targets.model(model_id)
    assert model is not None
    assert model.price_per_second == Decimal(price)
    assert isinstance(model.price_per_second, Decimal)


def test_o3_omni_has_no_price():
    assert targets.model("kling-video-o3-omni").price_per_second is None


@pytest.mark.parametrize(
    "model_id, seconds, total",
    [
        ("kling-video-v2-6-pro-text-to-video", 10, "0.70"),
        ("kling-video-v2-6-pro-image-to-video", 5, "0.35"),
        ("kling-video-o3-pro-image-to-video", 15, "3.36"),
    ],
)
def test_estimate_uses_the_chosen_model(tmp_path, model_id, seconds, total):
    start = 'start "https://e.com/s.png"\n' if "image" in model_id else ""
    result = run(tmp_path, f'model {model_id}\n{start}shot a {seconds}s "x"\n')
    assert errors(result) == []
    assert result.estimate.model == model_id
    assert result.estimate.total == Decimal(total)


def test_audio_noted_in_assumptions(tmp_path):
    e = run(tmp_path, 'audio on\nshot a 5s "x"\n').estimate
    assert e.audio is True
    assert any("same rate with audio" in note for note in e.assumptions)
    assert e.total == Decimal("1.12")


def test_unnamed_shots_are_numbered(tmp_path):
    e = run(tmp_path, 'shot 5 "x"\nshot 5 "y"\n').estimate
    assert [s.name for s in e.shots] == ["#1", "#2"]
    assert codes(run(tmp_path, 'shot 5 "x"\n')) == []


# -- the one place money is computed ---------------------------------------------------


def test_cost_is_price_times_seconds_times_generations_and_unknown_stays_unknown():
    from decimal import Decimal

    from klingspec.pricing import cost

    assert cost(Decimal("0.224"), 11, 2) == Decimal("4.928")
    assert cost(None, 11, 2) is None


def test_a_total_with_one_unknown_is_unknown_never_zero():
    from decimal import Decimal

    from klingspec.pricing import total

    assert total([Decimal("1.10"), Decimal("2.20")]) == Decimal("3.30")
    assert total([Decimal("1.10"), None]) is None
    assert total([]) == Decimal(0)


def test_a_saved_body_is_priced_from_its_model_and_shots():
    from decimal import Decimal

    from klingspec.pricing import cost_of_body, seconds_of

    body = {"model": "kling-video-o3-pro-reference-to-video", "multi_prompt": [{"duration": 4}, {"duration": 6}]}
    assert seconds_of(body) == 10
    assert seconds_of({"prompt": "x"}) == 5  # the API's default shot
    rate = targets.model("kling-video-o3-pro-reference-to-video").price_per_second
    assert cost_of_body(body, 2) == rate * 10 * 2
    assert cost_of_body({"model": "no-such-model", "duration": 5}, 1) is None
    assert isinstance(rate, Decimal)
