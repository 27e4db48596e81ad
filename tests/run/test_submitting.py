"""What is paid for: reuse, one job per request, the budget, and which queue items a
lost answer may be matched to. A real ledger file, a real sandbox behind the client."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from run_helpers import new_key, oxen, runner

from klingspec.run.jobs import Job
from klingspec.run.ledger import Ledger
from klingspec.run.states import RenderState
from klingspec.run.submitting import BudgetRefused, _enqueued, _matches, _not_before

BODY = {"model": "kling-video-o3-pro-reference-to-video", "prompt": "a cat", "duration": 5}


def a_job(tmp_path: Path, prompt: str = "a cat", model: str = BODY["model"], **extra: object) -> Job:
    body = dict(BODY, prompt=prompt, model=model, **extra)
    return Job.create(str(tmp_path / "s.kvs"), body, 1, f"sha256:{prompt}:{model}:{sorted(extra)}")


def test_one_job_per_distinct_request_and_a_finished_render_is_reused(tmp_path: Path, base_url: str) -> None:
    with Ledger(str(tmp_path / "l.sqlite")) as ledger, oxen(base_url, new_key()) as client:
        run = runner(client, ledger, base_url)
        cat, dog = a_job(tmp_path), a_job(tmp_path, "a dog")
        assert run.new_jobs([cat, cat, dog]) == [cat, dog]
        done = ledger.record_intent(
            request_hash=cat.request_hash,
            api_url=base_url,
            script=cat.script,
            model=cat.model,
            body=cat.body,
            generations=1,
            mode="queue",
            out_dir=cat.out_dir,
            estimate_usd="1.12",
        )
        ledger.set_state(done.id, RenderState.DONE)
        assert run.new_jobs([cat, dog]) == [dog]
        assert run.reusable(cat) is not None


def test_the_budget_counts_only_new_spend_and_refuses_an_unknown_price(tmp_path: Path, base_url: str) -> None:
    with Ledger(str(tmp_path / "l.sqlite")) as ledger, oxen(base_url, new_key()) as client:
        run = runner(client, ledger, base_url)
        jobs = [a_job(tmp_path), a_job(tmp_path, "a dog")]
        assert run.check_budget(jobs, Decimal("2.24")) == Decimal("2.24")
        with pytest.raises(BudgetRefused) as refused:
            run.check_budget(jobs, Decimal("2.23"))
        assert refused.value.needed == Decimal("2.24")
        with pytest.raises(BudgetRefused) as unknown:
            run.check_budget([a_job(tmp_path, "priceless", model="kling-video-o3-omni")], Decimal("1000"))
        assert unknown.value.needed is None


def test_the_budget_counts_audio_at_its_ceiling_and_renders_in_flight(tmp_path: Path, base_url: str) -> None:
    with Ledger(str(tmp_path / "l.sqlite")) as ledger, oxen(base_url, new_key()) as client:
        run = runner(client, ledger, base_url)
        loud = a_job(tmp_path, "a loud cat", generate_audio=True)
        assert (loud.estimate_usd, loud.ceiling_usd) == (Decimal("1.12"), Decimal("1.40"))  # 5 s x 0.224 / 0.28
        with pytest.raises(BudgetRefused):
            run.check_budget([loud], Decimal("1.39"))
        assert run.check_budget([loud], Decimal("1.40")) == Decimal("1.40")
        flying = ledger.record_intent(
            request_hash="sha256:flying",
            api_url=base_url,
            script="other.kvs",
            model=loud.model,
            body=loud.body,
            generations=2,
            mode="queue",
            out_dir=str(tmp_path),
            estimate_usd="2.24",
        )
        assert run.submitting.in_flight_usd() == Decimal("2.80")  # counted at its ceiling too
        with pytest.raises(BudgetRefused) as refused:
            run.check_budget([loud], Decimal("4.19"))
        assert refused.value.in_flight == Decimal("2.80")
        priceless = a_job(tmp_path, "x", model="kling-video-o3-omni")
        ledger.set_state(flying.id, RenderState.DONE)
        ledger.record_intent(
            request_hash="sha256:priceless",
            api_url=base_url,
            script="other.kvs",
            model=priceless.model,
            body=priceless.body,
            generations=1,
            mode="queue",
            out_dir=str(tmp_path),
            estimate_usd=None,
        )
        with pytest.raises(BudgetRefused) as unknown:  # an unknown price in flight is never $0
            run.check_budget([a_job(tmp_path)], Decimal("1000"))
        assert unknown.value.in_flight is None and "unknown amount already in flight" in str(unknown.value)


_ITEM = {"model_name": BODY["model"], "prompt": "a cat", "duration": 5, "enqueued_at": 1_000.5}
_SHOTS = [{"prompt": "a cat", "duration": 3}, {"prompt": "a dog", "duration": 2}]
_MULTI = {"model": BODY["model"], "multi_prompt": _SHOTS, "target_namespace": "acme-studio"}


@pytest.mark.parametrize(
    ("item", "body", "matches"),
    [
        (_ITEM, BODY, True),
        (_ITEM | {"status": "succeeded", "result_url": "https://x"}, BODY, True),  # fixed fields are not parameters
        ({k: v for k, v in _ITEM.items() if k != "model_name"} | {"model": BODY["model"]}, BODY, False),  # era B
        (_ITEM | {"model_name": "kling-v2-6"}, BODY, False),  # another model
        (_ITEM | {"prompt": "a dog"}, BODY, False),  # another prompt
        (_ITEM | {"duration": 10}, BODY, False),  # another duration
        (_ITEM | {"duration": None}, BODY, False),  # a body field the listing should echo but lacks
        ({k: v for k, v in _ITEM.items() if k != "duration"}, BODY, False),
        (_ITEM | {"seed": 7}, BODY, False),  # echoed only when submitted: we sent none
        (_ITEM | {"aspect_ratio": "16:9"}, BODY, False),
        (_ITEM | {"progress": 40}, BODY, True),  # an undocumented extra field is not a parameter
        (_ITEM | {"prompt": None, "multi_prompt": _SHOTS}, BODY, False),  # a multi-shot job, we sent one prompt
        # a multi-shot body: the shots must be echoed and equal; `prompt` is null;
        # `target_namespace` is never echoed
        ({"model_name": BODY["model"], "prompt": None, "multi_prompt": _SHOTS}, _MULTI, True),
        ({"model_name": BODY["model"], "prompt": None, "multi_prompt": _SHOTS[:1]}, _MULTI, False),
        ({"model_name": BODY["model"], "prompt": None}, _MULTI, False),  # shots not echoed
        ({"model_name": BODY["model"], "prompt": "a cat", "multi_prompt": _SHOTS}, _MULTI, False),
    ],
)
def test_a_lost_answer_matches_only_an_item_that_echoes_the_whole_request(
    tmp_path: Path, item: dict[str, object], body: dict[str, object], matches: bool
) -> None:
    job = Job.create(str(tmp_path / "s.kvs"), dict(body), 1, "sha256:x", Decimal("1"))
    assert _matches(item, job) is matches


class _Intent:
    """The one field of a ledger render the time rule reads: when its intent was recorded."""

    created_at = 1_000.6


@pytest.mark.parametrize(
    ("enqueued_at", "offset", "eligible"),
    [
        (1_000, 0.0, True),  # the intent's own second
        (999, 0.0, True),  # one second of margin
        (998, 0.0, False),  # another ledger's job, enqueued before our intent
        (1_030, 0.0, True),
        (1_029, 30.0, True),  # the API's clock runs 30 s ahead of ours
        (1_028, 30.0, False),
        (969, -30.0, True),  # ... or behind
        (968, -30.0, False),
        (881, None, True),  # no `Date` header ever seen: our clock, 120 s back
        (880, None, False),
        (None, 0.0, True),  # no timestamp: taken as recent rather than risk paying twice
    ],
)
def test_a_lost_answer_matches_only_a_job_enqueued_after_the_intent(
    enqueued_at: int | None, offset: float | None, eligible: bool
) -> None:
    item = _ITEM | {"enqueued_at": enqueued_at}
    assert (_enqueued(item) >= _not_before(_Intent(), offset)) is eligible  # type: ignore[arg-type]
