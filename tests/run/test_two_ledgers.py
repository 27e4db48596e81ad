"""Two ledgers, one key: a lost answer is matched only to a job enqueued after this
ledger recorded its intent (on the API's clock, read from its `Date` headers), so a job
another machine's ledger paid for the same body is never adopted. A real sandbox over
loopback HTTP, two real SQLite ledger files.

The sandbox stamps `enqueued_at` in whole seconds (as the API does), so each case waits
a few seconds between the other ledger's job and this ledger's intent: the rule can only
tell them apart when they are seconds apart (documented in docs/architecture.md)."""

from __future__ import annotations

import time

import httpx
from run_helpers import job, my_generations, new_key, oxen, runner, script, shots, stats

from klingspec.run.ledger import Ledger

DROP_ENQUEUE = {"fault": "drop", "path": "/api/ai/queue", "method": "POST", "times": 1}
# Past the rule's margin: one second of `Date` resolution, one of `enqueued_at`'s, the
# margin's own second, and room for a slow machine.
APART_SECONDS = 4.0


def _first_ledger_pays(url: str, key: str, path: str, tmp_path) -> str:
    """Ledger A renders the body and hears back: the id of A's job."""
    with Ledger(str(tmp_path / "a.sqlite")) as ledger, oxen(url, key) as client:
        [outcome] = runner(client, ledger, url).run([job(path, out_dir=str(tmp_path / "out-a"))])
    assert outcome.state == "done", outcome.error
    [file] = outcome.files
    return file.generation_id


def test_a_lost_answer_adopts_this_ledgers_job_not_another_ledgers(sandbox_with, tmp_path):
    key = new_key()
    path = script(tmp_path, shots())
    with sandbox_with() as url:
        theirs = _first_ledger_pays(url, key, path, tmp_path)
        time.sleep(APART_SECONDS)
        httpx.post(url + "/_sandbox/faults", json=DROP_ENQUEUE).raise_for_status()  # B never hears back
        with Ledger(str(tmp_path / "b.sqlite")) as ledger, oxen(url, key) as client:
            [outcome] = runner(client, ledger, url).run([job(path, out_dir=str(tmp_path / "out-b"))])
        assert outcome.state == "done", outcome.error
        assert stats(url)["dropped"] == 1
        assert stats(url)["requests"]["POST /api/ai/queue"] == 2  # A's, and B's (answer lost), never a third
        billed = {g["generation_id"] for g in my_generations(url, key)}
    [ours] = [f.generation_id for f in outcome.files]
    assert ours != theirs
    assert billed == {theirs, ours}  # B adopted the job its own request made, not A's


def test_a_post_that_never_arrived_adopts_nothing_of_another_ledger(sandbox_with, tmp_path):
    """B records its intent after A's job exists, marks it sent and dies before the request
    leaves (as a crashed run leaves it). B's next run reconciles: A's job, same body, is in
    the listing, but older than B's intent: B must send its own request, not adopt A's."""
    key = new_key()
    path = script(tmp_path, shots())
    with sandbox_with() as url:
        theirs = _first_ledger_pays(url, key, path, tmp_path)
        time.sleep(APART_SECONDS)
        the_job = job(path, out_dir=str(tmp_path / "out-b"))
        with Ledger(str(tmp_path / "b.sqlite")) as ledger:
            render, created = ledger.claim(
                request_hash=the_job.request_hash,
                api_url=url,
                script=the_job.script,
                model=the_job.model,
                body=the_job.body,
                generations=the_job.generations,
                mode="queue",
                out_dir=the_job.out_dir,
                estimate_usd=None,
            )
            assert created
            ledger.mark_sent(render.id)  # ... and the process died before the POST
        with Ledger(str(tmp_path / "b.sqlite")) as ledger, oxen(url, key) as client:
            [outcome] = runner(client, ledger, url).run([the_job])
        assert outcome.state == "done", outcome.error
        assert outcome.render_id == render.id
        assert stats(url)["requests"]["POST /api/ai/queue"] == 2  # A's, then B's own
        billed = {g["generation_id"] for g in my_generations(url, key)}
    [ours] = [f.generation_id for f in outcome.files]
    assert ours != theirs
    assert billed == {theirs, ours}
