"""No double charge in any namespace: a lost enqueue answer is looked for in the namespace
the job was billed to and adopted, never sent again; identical unanswered enqueues are
adopted one job per render. A real sandbox over loopback HTTP, real SQLite ledgers."""

from __future__ import annotations

import threading

import pytest
from run_helpers import job, my_generations, new_key, oxen, runner, script, shots, stats

from klingspec.run.ledger import Ledger
from klingspec.sandbox import FaultRule

ORG = "acme-studio"
DROP_ENQUEUE = FaultRule("drop", path="/api/ai/queue", method="POST", times=1)


def _text(generations: int, namespace: str | None) -> str:
    return shots(generations=generations, extra=f"namespace {namespace}" if namespace else "")


@pytest.mark.parametrize("generations", [1, 4])
@pytest.mark.parametrize("namespace", [None, ORG], ids=["own-namespace", "organisation"])
def test_a_dropped_enqueue_is_adopted_not_sent_again(sandbox_with, tmp_path, namespace, generations):
    key = new_key()
    path = script(tmp_path, _text(generations, namespace))
    with (
        sandbox_with(faults=(DROP_ENQUEUE,)) as url,
        Ledger(str(tmp_path / "l.sqlite")) as ledger,
        oxen(url, key) as client,
    ):
        the_job = job(path)
        assert the_job.body.get("target_namespace") == namespace
        [outcome] = runner(client, ledger, url).run([the_job])
        assert outcome.state == "done", outcome.error
        assert stats(url)["dropped"] == 1
        assert stats(url)["requests"]["POST /api/ai/queue"] == 1  # never sent again
        billed = my_generations(url, key, namespace)
        assert len(billed) == generations and all(g["status"] == "succeeded" for g in billed)
        if namespace:
            assert my_generations(url, key) == []  # nothing in the key holder's own namespace
        assert sorted(g["generation_id"] for g in billed) == sorted(f.generation_id for f in outcome.files)
        assert len(outcome.files) == generations
        assert sorted(g.generation_id for g in ledger.generations(outcome.render_id)) == sorted(
            f.generation_id for f in outcome.files
        )


@pytest.mark.parametrize("generations", [1, 4])
@pytest.mark.parametrize("namespace", [None, ORG], ids=["own-namespace", "organisation"])
def test_identical_unanswered_enqueues_are_each_adopted_once(sandbox_with, tmp_path, namespace, generations):
    """Three renders of one body (`again`, one thread and one ledger connection each, as
    three processes would be) all lose their enqueue answers at once. The listings are
    slow, so all three look while all three requests' jobs are unowned: each render must
    adopt its own share, never a job another render adopted."""
    renders = 3
    key = new_key()
    path = script(tmp_path, _text(generations, namespace))
    slow_listing = FaultRule("latency=0.15", path="/api/ai/queue", method="GET")
    drops = FaultRule("drop", path="/api/ai/queue", method="POST", times=renders)
    ledger_path = str(tmp_path / "l.sqlite")
    outcomes: list = [None] * renders
    start = threading.Barrier(renders, timeout=30)  # a thread that fails early must not hang the others
    errors: list[BaseException] = []

    with sandbox_with(faults=(drops, slow_listing)) as url:

        def render(n: int) -> None:
            try:
                with Ledger(ledger_path) as ledger, oxen(url, key) as client:
                    run = runner(client, ledger, url, again=True, sse=False)
                    the_job = job(path, out_dir=str(tmp_path / f"out{n}"))
                    start.wait()
                    [outcomes[n]] = run.run([the_job])
            except BaseException as error:  # reported below, with the thread's own traceback
                errors.append(error)
                start.abort()
                raise

        threads = [threading.Thread(target=render, args=(n,), daemon=True) for n in range(renders)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors, errors
        assert not any(thread.is_alive() for thread in threads)
        assert stats(url)["dropped"] == renders
        assert stats(url)["requests"]["POST /api/ai/queue"] == renders  # none sent twice
        billed = {g["generation_id"] for g in my_generations(url, key, namespace)}

    assert all(o is not None and o.state == "done" for o in outcomes), [o and o.error for o in outcomes]
    adopted = [[f.generation_id for f in o.files] for o in outcomes]
    assert all(len(ids) == generations for ids in adopted)
    everyone = [gid for ids in adopted for gid in ids]
    assert len(set(everyone)) == len(everyone) == renders * generations  # no job adopted twice
    assert set(everyone) == billed  # and every job billed is some render's
    with Ledger(ledger_path) as ledger:
        assert len(ledger.known_generation_ids()) == renders * generations
