"""pricing.py: Decimal cost previews; unknown prices are None, never 0."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from helpers import codes, errors, only, run

from klingspec import pricing, targets
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


def test_audio_without_a_published_price_previews_the_base_rate_and_budgets_the_ceiling(tmp_path):
    e = run(tmp_path, 'audio on\nshot a 5s "x"\n').estimate
    known = targets.model("kling-video-o3-pro-reference-to-video")
    assert e.audio is True and known.price_per_second_with_audio is None
    assert e.total == Decimal("1.12")  # 5 s x $0.224
    assert e.ceiling == (known.audio_price_ceiling * 5).quantize(Decimal("0.01")) == Decimal("1.40")
    assert e.quote.open
    note = next(n for n in e.assumptions if n.startswith("audio on"))
    assert "$0.28/s" in note and "fal" in note and "higher" in note


def test_audio_off_has_no_ceiling_above_the_preview(tmp_path):
    e = run(tmp_path, 'audio off\nshot a 5s "x"\n').estimate
    assert e.total == e.ceiling == Decimal("1.12") and not e.quote.open
    assert not any(n.startswith("audio") for n in e.assumptions)


def test_a_published_audio_price_is_the_preview_and_the_ceiling():
    known = replace(targets.model("kling-video-o3-pro-reference-to-video"), price_per_second_with_audio=Decimal("0.3"))
    rate = pricing.rate_of(known, audio=True)
    assert rate.per_second == rate.ceiling == Decimal("0.3") and rate.basis is None
    assert pricing.quote(rate, 5, 2) == pricing.Quote(Decimal("3.00"), Decimal("3.00"))


def test_audio_without_any_plausible_rate_has_an_unknown_ceiling():
    known = replace(targets.model("kling-video-o3-pro-reference-to-video"), audio_price_ceiling=None)
    rate = pricing.rate_of(known, audio=True)
    assert rate.per_second == Decimal("0.224") and rate.ceiling is None and "unknown" in (rate.basis or "")
    bill = pricing.quote(rate, 5, 1)
    assert bill.amount == Decimal("1.12") and bill.ceiling is None and bill.open
    assert pricing.usd_quote(bill) == "$1.12 (up to an unknown amount)"


@pytest.mark.parametrize("model_id", targets.known_ids())
def test_every_matrix_with_audio_and_a_price_says_what_audio_may_cost(model_id):
    known = targets.model(model_id)
    if known.audio and known.price_per_second is not None:
        assert known.price_per_second_with_audio is not None or (
            known.audio_price_ceiling is not None and known.audio_price_source
        )


def test_a_render_is_rounded_once_half_up_and_totals_add_rounded_bills():
    seven = pricing.charge(Decimal("0.224"), 7, 1)
    assert seven == Decimal("1.57")  # 1.568
    assert pricing.charge(Decimal("0.07"), 5, 1) == Decimal("0.35")
    assert pricing.charge(Decimal("0.0125"), 1, 1) == Decimal("0.01")  # half up, not half even
    assert pricing.charge(Decimal("0.015"), 1, 1) == Decimal("0.02")
    assert pricing.total([seven] * 3) == Decimal("4.71")  # not 4.704 rounded to 4.70
    assert pricing.usd(Decimal("4.705")) == "$4.71" and pricing.usd(None) == "unknown"


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


def test_a_saved_body_is_priced_from_its_model_shots_and_audio():
    from klingspec.pricing import Quote, quote_body, seconds_of

    body = {"model": "kling-video-o3-pro-reference-to-video", "multi_prompt": [{"duration": 4}, {"duration": 6}]}
    assert seconds_of(body) == 10
    assert seconds_of({"prompt": "x"}) == 5  # the API's default shot
    known = targets.model("kling-video-o3-pro-reference-to-video")
    assert quote_body(body, 2) == Quote(known.price_per_second * 20, known.price_per_second * 20)
    loud = quote_body(body | {"generate_audio": True}, 2)
    assert loud == Quote(Decimal("4.48"), known.audio_price_ceiling * 20)
    assert quote_body({"model": "no-such-model", "duration": 5}, 1) == Quote(None, None)


# -- prices by resolution (none published for any Kling model yet: synthetic matrices) ---


def _by_resolution(**prices) -> targets.Model:
    """The omni matrix with resolution prices it does not have today (dataclasses.replace)."""
    omni = targets.model("kling-video-o3-omni")
    assert omni.resolutions == ("720p", "1080p", "4k") and omni.default_resolution == "1080p"
    return replace(omni, **prices)


def test_omni_publishes_no_price_at_any_resolution():
    omni = targets.model("kling-video-o3-omni")
    assert omni.prices_by_resolution == () and omni.price_per_second_high_res is None
    for resolution in (None, "720p", "1080p", "4k"):
        assert pricing.rate_of(omni, audio=False, resolution=resolution) == pricing.Rate(None, None)


def test_a_price_by_resolution_comes_first():
    known = _by_resolution(
        price_per_second=Decimal("0.2"),
        prices_by_resolution=(("720p", Decimal("0.1")), ("4k", Decimal("0.5"))),
        price_per_second_high_res=Decimal("0.4"),
        high_res_resolutions=("4k",),
    )
    assert pricing.rate_of(known, False, "720p") == pricing.Rate(Decimal("0.1"), Decimal("0.1"))
    assert pricing.rate_of(known, False, "4k") == pricing.Rate(Decimal("0.5"), Decimal("0.5"))  # not high-res
    # 1080p: the base price, budgeted at the high-res one (which resolutions it covers is
    # klingspec's guess, not published)
    at_1080 = pricing.rate_of(known, False, "1080p")
    assert (at_1080.per_second, at_1080.ceiling) == (Decimal("0.2"), Decimal("0.4")) and at_1080.basis
    assert pricing.rate_of(known, False) == pricing.rate_of(known, False, "1080p")  # the default resolution


def test_the_high_res_price_is_for_the_high_res_resolutions_then_the_base_price():
    known = _by_resolution(
        price_per_second=Decimal("0.2"), price_per_second_high_res=Decimal("0.4"), high_res_resolutions=("4k",)
    )
    assert pricing.rate_of(known, False, "4k") == pricing.Rate(Decimal("0.4"), Decimal("0.4"))
    assert pricing.rate_of(known, False, "720p") == pricing.Rate(Decimal("0.2"), Decimal("0.2"))
    # the default resolution can be a high-res one
    assert pricing.rate_of(replace(known, default_resolution="4k"), False).per_second == Decimal("0.4")


def test_a_resolution_priced_alone_is_known_without_a_base_price():
    known = _by_resolution(prices_by_resolution=(("720p", Decimal("0.1")),))
    assert known.price_per_second is None
    assert pricing.rate_of(known, False, "720p").per_second == Decimal("0.1")
    assert pricing.rate_of(known, False, "1080p") == pricing.Rate(None, None)  # unknown, never $0
    assert pricing.quote(pricing.rate_of(known, False, "4k"), 5, 1) == pricing.Quote(None, None)


def test_a_high_res_resolution_without_its_price_has_an_unknown_ceiling():
    known = _by_resolution(price_per_second=Decimal("0.2"), high_res_resolutions=("4k",))
    rate = pricing.rate_of(known, False, "4k")
    assert rate.per_second == Decimal("0.2") and rate.ceiling is None and "4k" in (rate.basis or "")
    loud = pricing.rate_of(replace(known, audio_price_ceiling=Decimal("0.3")), True, "4k")
    assert loud.per_second == Decimal("0.2") and loud.ceiling is None and "4k" in (loud.basis or "")


def test_audio_at_a_priced_resolution_budgets_the_higher():
    known = _by_resolution(
        price_per_second=Decimal("0.2"),
        price_per_second_with_audio=Decimal("0.3"),
        prices_by_resolution=(("4k", Decimal("0.5")),),
    )
    assert pricing.rate_of(known, True, "1080p") == pricing.Rate(Decimal("0.3"), Decimal("0.3"))
    rate = pricing.rate_of(known, True, "4k")
    assert (rate.per_second, rate.ceiling) == (Decimal("0.3"), Decimal("0.5")) and rate.basis


def test_a_body_and_a_script_are_priced_at_their_resolution(tmp_path, monkeypatch):
    from klingspec import binding

    known = _by_resolution(price_per_second=Decimal("0.2"), prices_by_resolution=(("720p", Decimal("0.1")),))
    result = run(tmp_path, 'model kling-video-o3-omni\nresolution 720p\nshot a 5s "x"\n')
    bound = result.bound
    for module in (pricing, binding):
        monkeypatch.setattr(module, "lookup_model", lambda model_id: known)
    body = {"model": "kling-video-o3-omni", "prompt": "x", "duration": 5}
    assert pricing.quote_body(body, 1) == pricing.Quote(Decimal("1.00"), Decimal("1.00"))
    assert pricing.quote_body(body | {"resolution": "720p"}, 2) == pricing.Quote(Decimal("1.00"), Decimal("1.00"))
    estimate = pricing.estimate(bound)
    assert estimate.resolution == "720p" and estimate.total == Decimal("0.50")
    assert "resolution 720p: $0.1/s" in estimate.assumptions
    assert pricing.estimate(replace(bound, settings={})).total == Decimal("1.00")  # 1080p, the default
