"""runner.py `run_chained`: a job made from another's outcome starts as soon as that outcome
arrives, in the same pool, against the real sandbox over loopback (no mocked functions).

Where a render must stay in flight for a while, its worker is held in `on_event` until
something else has happened (with a long timeout that only a broken scheduler reaches):
orderings and counts are asserted, never durations.
"""

from __future__ import annotations

import _thread
import threading
from decimal import Decimal

import pytest
from run_helpers import job, new_key, oxen, runner, script, shots, stats

from klingspec.run.ledger import Ledger
from klingspec.run.runner import Event, Job, Outcome

HOLD = 30  # seconds a held worker waits at most: reached only when the scheduler is wrong


def _jobs(tmp_path, *names: str) -> list[Job]:
    """One job per name, each its own request (the name is in the prompt)."""
    return [job(script(tmp_path, shots(prompt=f"A {name} paper boat"), f"{name}.kvs")) for name in names]


def _render_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("render")}


class Log:
    """Every event as (kind, script stem), in the order the workers reported them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, str]] = []

    def add(self, event: Event) -> None:
        with self.lock:
            self.events.append((event.kind, event.job.stem))

    def index(self, kind: str, stem: str) -> int:
        return self.events.index((kind, stem))


def test_a_chained_job_starts_while_an_unrelated_render_is_still_in_flight(sandbox_with, tmp_path):
    """No stage barrier: `b` (made from `a`'s outcome) is submitted and even finished while
    `slow`, given alongside `a`, is still in flight. A runner that waited for all of
    `first` before calling `then` would hold `slow` for HOLD seconds and fail here."""
    slow, a, b = _jobs(tmp_path, "slow", "a", "b")
    log, chain_done, held = Log(), threading.Event(), []

    def on_event(event: Event) -> None:
        log.add(event)
        if event.job is b and event.kind == "done":
            chain_done.set()
        if event.job is slow and event.kind == "submitted":  # slow stays in flight until b is done
            held.append(chain_done.wait(HOLD))

    calls: list[tuple[str, str]] = []

    def then(done: Job, outcome: Outcome) -> list[Job]:
        calls.append((done.stem, outcome.state))
        return [b] if done is a else []

    with sandbox_with() as url:
        with Ledger(str(tmp_path / "l.sqlite")) as ledger, oxen(url, new_key()) as client:
            r = runner(client, ledger, url, concurrency=2, on_event=on_event)
            outcomes = r.run_chained([slow, a], then)
        requests = stats(url)["requests"]
    assert held == [True]
    assert [o.job for o in outcomes] == [slow, a, b]  # the order the jobs were given
    assert all(o.job is j for o, j in zip(outcomes, (slow, a, b), strict=True))
    assert [o.state for o in outcomes] == ["done"] * 3 and not any(o.reused for o in outcomes)
    assert log.index("submitted", "b") < log.index("done", "slow"), log.events
    assert calls == [("a", "done"), ("b", "done"), ("slow", "done")]  # once per job, as outcomes arrived
    assert requests["POST /api/ai/queue"] == 3
    assert requests["GET /api/events"] == 1  # one listener for the whole call


def test_chained_jobs_share_the_concurrency_bound(sandbox_with, tmp_path):
    """Three chains of two with `concurrency=2`: the first two renders are held until both
    are in flight (so the bound is reached), and no more than two are ever in flight or
    ever rendered by distinct worker threads, the chained ones included."""
    bound = 2
    heads = _jobs(tmp_path, "head0", "head1", "head2")
    tails = dict(zip((id(h) for h in heads), _jobs(tmp_path, "tail0", "tail1", "tail2"), strict=True))
    lock, together = threading.Lock(), threading.Barrier(bound, timeout=HOLD)
    counts = {"in flight": 0, "most": 0, "submits": 0}
    threads: set[str] = set()

    def on_event(event: Event) -> None:
        with lock:
            threads.add(threading.current_thread().name)
            if event.kind == "submit":
                counts["in flight"] += 1
                counts["submits"] += 1
                counts["most"] = max(counts["most"], counts["in flight"])
            elif event.kind in ("done", "failed"):
                counts["in flight"] -= 1
            wait_for_the_other = event.kind == "submit" and counts["submits"] <= bound
        if wait_for_the_other:
            together.wait()  # broken (a failed outcome) unless `bound` renders overlap

    def then(done: Job, outcome: Outcome) -> list[Job]:
        return [tails[id(done)]] if id(done) in tails else []

    with sandbox_with() as url:
        with Ledger(str(tmp_path / "l.sqlite")) as ledger, oxen(url, new_key()) as client:
            r = runner(client, ledger, url, concurrency=bound, on_event=on_event)
            outcomes = r.run_chained(heads, then)
        requests = stats(url)["requests"]
    assert [o.state for o in outcomes] == ["done"] * 6, [o.error for o in outcomes]
    assert [o.job.stem for o in outcomes[:3]] == ["head0", "head1", "head2"]
    assert sorted(o.job.stem for o in outcomes[3:]) == ["tail0", "tail1", "tail2"]
    assert counts["most"] == bound and counts["in flight"] == 0
    assert len(threads) == bound, threads
    assert requests["POST /api/ai/queue"] == 6


def test_duplicates_across_batches_are_rendered_once(sandbox_with, tmp_path):
    """`then(a)` returns a copy of `b` (still in flight: it waits for b's outcome) and a copy
    of `a` (finished: its outcome at once). Two renders are sent; every copy gets its
    original's files, marked reused with nothing spent, and its own `then` call."""
    a, b = _jobs(tmp_path, "a", "b")
    [b_again] = [job(script(tmp_path, shots(prompt="A b paper boat"), "b_again.kvs"))]
    [a_again] = [job(script(tmp_path, shots(prompt="A a paper boat"), "a_again.kvs"))]
    assert (a_again.request_hash, b_again.request_hash) == (a.request_hash, b.request_hash)
    copies_given, held = threading.Event(), []

    def on_event(event: Event) -> None:
        if event.job is b and event.kind == "submitted":  # b stays in flight until its copy is given
            held.append(copies_given.wait(HOLD))

    calls: list[str] = []

    def then(done: Job, outcome: Outcome) -> list[Job]:
        calls.append(done.stem)
        if done is a_again:  # called once both copies were taken in: b_again is waiting for b
            copies_given.set()
        return [b_again, a_again] if done is a else []

    with sandbox_with() as url:
        with Ledger(str(tmp_path / "l.sqlite")) as ledger, oxen(url, new_key()) as client:
            outcomes = runner(client, ledger, url, on_event=on_event).run_chained([a, b], then)
        requests = stats(url)["requests"]
    assert held == [True]
    assert [o.job.stem for o in outcomes] == ["a", "b", "b_again", "a_again"]
    first_a, first_b, copy_b, copy_a = outcomes
    assert calls == ["a", "a_again", "b", "b_again"]
    assert not first_a.reused and not first_b.reused and first_a.spent_usd and first_b.spent_usd
    for copy, original in ((copy_a, first_a), (copy_b, first_b)):
        assert copy.state == "done" and copy.reused and copy.spent_usd == Decimal(0)
        assert copy.files == original.files and copy.render_id == original.render_id
    assert requests["POST /api/ai/queue"] == 2


def test_an_error_in_then_halts_the_workers_and_is_raised(sandbox_with, tmp_path):
    """`then` raising: the render still in flight is halted (not waited out), no worker
    thread outlives the call, the error comes out unchanged, and the ledger keeps the
    halted render's id, so the next run reattaches without sending it again."""
    a, b = _jobs(tmp_path, "a", "b")
    held: list[bool] = []

    def then(done: Job, outcome: Outcome) -> list[Job]:
        raise RuntimeError(f"cannot continue from {done.stem}")

    before = _render_threads()
    with sandbox_with() as url:
        with Ledger(str(tmp_path / "l.sqlite")) as ledger, oxen(url, new_key()) as client:
            r = runner(client, ledger, url, concurrency=2)

            def on_event(event: Event) -> None:
                if event.job is b and event.kind == "submitted":  # b in flight until the run stops
                    held.append(r.stop.wait(HOLD))

            r.on_event = on_event
            with pytest.raises(RuntimeError, match="cannot continue from a"):
                r.run_chained([a, b], then)
            assert held == [True]
            assert _render_threads() <= before
            halted = ledger.latest_for(b.request_hash, url)
            assert halted is not None and halted.state == "submitted"
            r.on_event = lambda event: None
            [again] = r.run([b])  # the runner is ready for another run: it reattaches
            assert again.state == "done" and again.reused and again.render_id == halted.id
        assert stats(url)["requests"]["POST /api/ai/queue"] == 2


def test_ctrl_c_halts_the_workers_and_sends_nothing_more(sandbox_with, tmp_path):
    """KeyboardInterrupt in the coordinating thread while `a` renders: `b`, not yet started
    (one worker), is never sent, `then` is never called, no worker thread is left, and
    KeyboardInterrupt comes out; `a`'s render keeps its id in the ledger."""
    a, b, c = _jobs(tmp_path, "a", "b", "c")
    held: list[bool] = []
    calls: list[str] = []

    def then(done: Job, outcome: Outcome) -> list[Job]:
        calls.append(done.stem)
        return [c]

    before = _render_threads()
    with sandbox_with() as url:
        with Ledger(str(tmp_path / "l.sqlite")) as ledger, oxen(url, new_key()) as client:
            r = runner(client, ledger, url, concurrency=1)

            def on_event(event: Event) -> None:
                if event.job is a and event.kind == "submitted":
                    _thread.interrupt_main()  # Ctrl-C, seen by the thread in run_chained
                    held.append(r.stop.wait(HOLD))  # a stays in flight until the run halts

            r.on_event = on_event
            with pytest.raises(KeyboardInterrupt):
                r.run_chained([a, b], then)
            assert held == [True] and calls == []
            assert _render_threads() <= before
            interrupted = ledger.latest_for(a.request_hash, url)
            assert interrupted is not None and interrupted.state == "submitted"
            assert ledger.latest_for(b.request_hash, url) is None  # never even claimed
        assert stats(url)["requests"]["POST /api/ai/queue"] == 1
