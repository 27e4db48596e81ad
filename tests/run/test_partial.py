"""Partial failures keep what was paid for: a render where some generations failed keeps
its videos, and running it again renders (and pays for) only the missing ones. Real
sandbox over loopback HTTP, real ledger files, the `fail-first` fault."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from decimal import Decimal

import httpx
from run_helpers import job, my_generations, new_key, oxen, runner, script, shots, stats

from klingspec.cli import main
from klingspec.cli.report import Exit
from klingspec.run.ledger import SCHEMA_VERSION, Ledger
from klingspec.run.media import file_sha256
from klingspec.sandbox import FaultRule

PRICE = Decimal("0.224") * 5  # one 5 s generation
HALF_FAIL = FaultRule("fail=Out of GPUs, fail-first=2", path="/api/ai/queue", method="POST", times=1)


def enqueues(url: str) -> int:
    return stats(url)["requests"].get("POST /api/ai/queue", 0)


def sizes_asked(url: str, key: str, ledger: Ledger) -> list[int]:
    """How many generations each render of `key` created at the sandbox, oldest render
    first; every generation the sandbox holds must belong to a render in the ledger."""
    per_render: dict[int, int] = {}
    for g in my_generations(url, key):
        found = ledger.find_generation(g["generation_id"])
        assert found is not None, f"the sandbox holds {g['generation_id']}, which the ledger does not know"
        per_render[found.render_id] = per_render.get(found.render_id, 0) + 1
    return [per_render[r] for r in sorted(per_render)]


def test_a_partial_render_keeps_its_videos_and_a_rerun_pays_only_for_the_missing(sandbox_with, tmp_path):
    key = new_key()
    path = script(tmp_path, shots(generations=4))
    with sandbox_with(faults=(HALF_FAIL,)) as url, Ledger(str(tmp_path / "l.sqlite")) as ledger:
        with oxen(url, key) as client:
            [first] = runner(client, ledger, url).run([job(path)])
        assert first.state == "partial" and "Out of GPUs" in first.error and "2 of 4 videos kept" in first.error
        assert first.spent_usd == PRICE * 4  # all four were asked for
        render = ledger.render(first.render_id)
        assert render.state == "partial" and render.generations == 4 and render.completes is None
        assert [g.status for g in ledger.generations(render.id)] == ["failed", "failed", "succeeded", "succeeded"]
        kept = {f.path: f.sha256 for f in first.files}
        assert len(kept) == 2 and kept == {f.path: f.sha256 for f in ledger.kept_files(render.id)}
        assert all(file_sha256(p) == sha for p, sha in kept.items())
        assert sorted(os.listdir(tmp_path / "renders")) == sorted(os.path.basename(p) for p in kept)

        with oxen(url, key) as client:  # the plan, the budget and the confirmation see a top-up
            run = runner(client, ledger, url)
            [top_up] = run.new_jobs([job(path)])
            assert top_up.generations == 2 and top_up.estimate_usd == PRICE * 2
            assert run.check_budget([job(path)], PRICE * 2) == PRICE * 2
            assert run.reusable(job(path)) is None
            [second] = run.run([job(path)])
        assert second.state == "done", second.error
        assert enqueues(url) == 2 and sizes_asked(url, key, ledger) == [4, 2]  # one new job, of 2 generations
        assert second.spent_usd == PRICE * 2 and second.top_up == 2 and not second.reused
        assert len(second.files) == 4 and len({f.path for f in second.files}) == 4
        assert all(os.path.exists(f.path) and file_sha256(f.path) == f.sha256 for f in second.files)
        assert all(file_sha256(p) == sha for p, sha in kept.items())  # nothing overwritten
        assert len(os.listdir(tmp_path / "renders")) == 4
        stem = os.path.basename(sorted(kept)[0]).rsplit("-", 1)[0]
        assert sorted(os.path.basename(f.path) for f in second.files) == [f"{stem}-{n}.mp4" for n in (1, 2, 3, 4)]
        completing = ledger.render(second.render_id)
        assert completing.completes == render.id and completing.generations == 2
        assert completing.request_hash == render.request_hash and completing.state == "done"
        assert Decimal(completing.estimate_usd) == PRICE * 2
        assert len(ledger.kept_files(render.id)) == 4

        with oxen(url, key) as client:  # done: nothing more is paid for
            run = runner(client, ledger, url)
            assert run.new_jobs([job(path)]) == []
            [third] = run.run([job(path)])
        assert third.state == "done" and third.reused and third.spent_usd == 0
        assert sorted(f.path for f in third.files) == sorted(f.path for f in second.files)
        assert enqueues(url) == 2

        with oxen(url, key) as client:  # --again renders the whole request anew
            [anew] = runner(client, ledger, url, again=True).run([job(path)])
        assert anew.state == "done" and len(anew.files) == 4 and anew.spent_usd == PRICE * 4
        assert sizes_asked(url, key, ledger) == [4, 2, 4]
        assert all(file_sha256(f.path) == f.sha256 for f in second.files)


def test_a_top_up_that_fails_in_part_is_topped_up_again(sandbox_with, tmp_path):
    key = new_key()
    path = script(tmp_path, shots(generations=4))
    with sandbox_with(faults=(HALF_FAIL,)) as url, Ledger(str(tmp_path / "l.sqlite")) as ledger:
        outcomes = []
        for n in range(3):
            if n == 1:  # the first generation of the top-up fails too
                fault = {"fault": "fail-first=1", "path": "/api/ai/queue", "method": "POST", "times": 1}
                httpx.post(url + "/_sandbox/faults", json=fault).raise_for_status()
            with oxen(url, key) as client:
                [outcome] = runner(client, ledger, url).run([job(path)])
                outcomes.append(outcome)
        assert [o.state for o in outcomes] == ["partial", "partial", "done"]
        assert [len(o.files) for o in outcomes] == [2, 3, 4]
        assert [o.spent_usd for o in outcomes] == [PRICE * 4, PRICE * 2, PRICE]
        assert sizes_asked(url, key, ledger) == [4, 2, 1]
        first, second, third = (ledger.render(o.render_id) for o in outcomes)
        assert (second.completes, third.completes) == (first.id, first.id)
        assert (second.state, third.state) == ("partial", "done")
        assert len({f.path for f in outcomes[2].files}) == 4


def test_a_top_up_whose_generations_all_fail_is_failed_and_the_request_stays_partial(sandbox_with, tmp_path):
    key = new_key()
    path = script(tmp_path, shots(generations=3))
    faults = (FaultRule("fail=No GPU, fail-first=1", path="/api/ai/queue", method="POST", times=1),)
    with sandbox_with(faults=faults) as url, Ledger(str(tmp_path / "l.sqlite")) as ledger:
        with oxen(url, key) as client:
            [first] = runner(client, ledger, url).run([job(path)])
        assert first.state == "partial" and len(first.files) == 2
        fault = {"fault": "fail=Still no GPU", "path": "/api/ai/queue", "method": "POST", "times": 1}
        httpx.post(url + "/_sandbox/faults", json=fault).raise_for_status()
        with oxen(url, key) as client:
            [second] = runner(client, ledger, url).run([job(path)])
        assert second.state == "partial" and "Still no GPU" in second.error and len(second.files) == 2
        assert ledger.render(second.render_id).state == "failed"  # the top-up itself made nothing
        with oxen(url, key) as client:
            run = runner(client, ledger, url)
            assert [j.generations for j in run.new_jobs([job(path)])] == [1]
            [third] = run.run([job(path)])
        assert third.state == "done" and len(third.files) == 3 and third.spent_usd == PRICE
        assert sizes_asked(url, key, ledger) == [3, 1, 1]


def test_a_top_up_in_flight_is_reattached_not_paid_twice(sandbox_with, tmp_path):
    key = new_key()
    path = script(tmp_path, shots(generations=4))
    with sandbox_with(faults=(HALF_FAIL,)) as url, Ledger(str(tmp_path / "l.sqlite")) as ledger:
        with oxen(url, key) as client:
            [first] = runner(client, ledger, url).run([job(path)])
        assert first.state == "partial"
        with oxen(url, key) as client:  # stop following as soon as the top-up is queued
            run = runner(client, ledger, url)
            run.on_event = lambda e: run.halt() if e.kind == "submitted" else None
            [stopped] = run.run([job(path)])
        assert stopped.state == "interrupted"
        in_flight = ledger.render(stopped.render_id)
        assert in_flight.state == "submitted" and in_flight.completes == first.render_id
        assert [r.id for r in ledger.in_flight(url)] == [in_flight.id]
        assert run.submitting.in_flight_usd() == PRICE * 2
        with oxen(url, key) as client:
            run = runner(client, ledger, url)
            assert run.new_jobs([job(path)]) == []  # nothing to pay: the top-up is in flight
            [done] = run.run([job(path)])
        assert done.state == "done" and done.reused and done.spent_usd == 0 and len(done.files) == 4
        assert done.render_id == in_flight.id
        assert sizes_asked(url, key, ledger) == [4, 2]


def test_a_top_up_whose_answer_was_lost_is_reconciled_not_resent(sandbox_with, tmp_path):
    key = new_key()
    path = script(tmp_path, shots(generations=4))
    with sandbox_with(faults=(HALF_FAIL,)) as url, Ledger(str(tmp_path / "l.sqlite")) as ledger:
        with oxen(url, key) as client:
            [first] = runner(client, ledger, url).run([job(path)])
        assert first.state == "partial"
        fault = {"fault": "drop", "path": "/api/ai/queue", "method": "POST", "times": 1}
        httpx.post(url + "/_sandbox/faults", json=fault).raise_for_status()
        with oxen(url, key) as client:
            [second] = runner(client, ledger, url).run([job(path)])
        assert second.state == "done", second.error
        assert stats(url)["dropped"] == 1 and enqueues(url) == 2 and sizes_asked(url, key, ledger) == [4, 2]
        top_up = ledger.render(second.render_id)
        assert top_up.completes == first.render_id and len(ledger.generations(top_up.id)) == 2
        assert len(second.files) == 4 and all(file_sha256(f.path) == f.sha256 for f in second.files)


def test_a_kept_video_deleted_from_disk_is_fetched_again(sandbox_with, tmp_path):
    key = new_key()
    path = script(tmp_path, shots(generations=4))
    with sandbox_with(faults=(HALF_FAIL,)) as url, Ledger(str(tmp_path / "l.sqlite")) as ledger:
        with oxen(url, key) as client:
            [first] = runner(client, ledger, url).run([job(path)])
        gone = first.files[0]
        os.unlink(gone.path)
        with oxen(url, key) as client:
            [second] = runner(client, ledger, url).run([job(path)])
        assert second.state == "done" and len(second.files) == 4
        assert file_sha256(gone.path) == gone.sha256
        assert sizes_asked(url, key, ledger) == [4, 2]


# -- the ledger file ------------------------------------------------------------------------

_SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE renders (
    id INTEGER PRIMARY KEY AUTOINCREMENT, request_hash TEXT NOT NULL, api_url TEXT NOT NULL,
    script TEXT NOT NULL, model TEXT NOT NULL, body TEXT NOT NULL, generations INTEGER NOT NULL,
    mode TEXT NOT NULL, out_dir TEXT NOT NULL, estimate_usd TEXT, state TEXT NOT NULL, error TEXT,
    created_at REAL NOT NULL, sent_at REAL, updated_at REAL NOT NULL
);
CREATE INDEX renders_by_hash ON renders (request_hash, api_url);
CREATE TABLE generations (
    generation_id TEXT PRIMARY KEY, render_id INTEGER NOT NULL REFERENCES renders(id),
    position INTEGER NOT NULL, status TEXT NOT NULL, result_url TEXT, error TEXT, updated_at REAL NOT NULL
);
CREATE TABLE files (
    generation_id TEXT PRIMARY KEY REFERENCES generations(generation_id), path TEXT NOT NULL,
    sha256 TEXT NOT NULL, bytes INTEGER NOT NULL, created_at REAL NOT NULL
);
INSERT INTO meta VALUES ('schema_version', '1');
INSERT INTO renders VALUES (1, 'sha256:old', 'https://api', 'old.kvs', 'm', '{"prompt": "x"}', 2, 'queue',
    '/tmp', '2.24', 'done', NULL, 1.0, 2.0, 3.0);
INSERT INTO generations VALUES ('g1', 1, 0, 'succeeded', 'https://x/1.mp4', NULL, 3.0);
INSERT INTO files VALUES ('g1', '/tmp/old-1.mp4', 'sha256:ff', 10, 3.0);
"""


def test_a_ledger_written_by_schema_1_is_migrated_in_place(tmp_path):
    path = str(tmp_path / "old.sqlite")
    with sqlite3.connect(path) as db:
        db.executescript(_SCHEMA_1)
    db.close()
    with Ledger(path) as ledger:
        assert ledger.schema_version() == SCHEMA_VERSION == 4
        old = ledger.latest_for("sha256:old", "https://api")
        assert old is not None and old.id == 1 and old.completes is None and old.root == 1
        assert [f.path for f in ledger.kept_files(1)] == ["/tmp/old-1.mp4"]
        ledger.set_state(1, "partial")
        top_up = ledger.record_intent(
            request_hash="sha256:old",
            api_url="https://api",
            script="old.kvs",
            model="m",
            body={"prompt": "x"},
            generations=1,
            mode="queue",
            out_dir="/tmp",
            estimate_usd="1.12",
            completes=1,
        )
        assert top_up.completes == 1 and top_up.root == 1
        assert ledger.latest_for("sha256:old", "https://api").id == top_up.id
    with Ledger(path) as again:  # opening a migrated file again changes nothing
        assert again.schema_version() == 4 and again.render(top_up.id).completes == 1
    with sqlite3.connect(path) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(renders)")]
    db.close()
    assert columns[-1] == "completes" and columns.count("completes") == 1


def test_processes_opening_an_old_ledger_at_once_migrate_it_once(tmp_path):
    path = str(tmp_path / "old.sqlite")
    with sqlite3.connect(path) as db:
        db.executescript(_SCHEMA_1)
    db.close()
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            Ledger(path).close()
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=open_it) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Ledger(path) as ledger:
        assert ledger.schema_version() == 4 and ledger.render(1).state == "done"


# -- the command line --------------------------------------------------------------------


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_run_status_ls_and_dry_run_show_a_partial_render_and_its_top_up(tmp_path, capsys, monkeypatch, sandbox_with):
    key = new_key()
    monkeypatch.setenv("OXEN_API_KEY", key)
    path = script(tmp_path, shots(generations=4))  # 4 x 5 s x $0.224 = $4.48
    with sandbox_with(faults=(HALF_FAIL,)) as url:
        code, out, err = run_cli(capsys, "run", "--api-url", url, "--yes", path)
        assert code == Exit.API_FAILURE  # not every video: the run did not finish its work
        assert "partial" in out and "Out of GPUs" in out + err and "new spend this run: $4.48" in out
        assert len(os.listdir(tmp_path / "renders")) == 2

        code, out, _err = run_cli(capsys, "status")
        assert code == Exit.OK and "no renders in flight" in out
        assert "partial: #1 scene.kvs (2 missing)" in out and "only the missing ones" in out
        code, out, _err = run_cli(capsys, "ls")
        assert "partial: 2 of 4 videos; 2 missing" in out and out.count(" B)") == 2  # ls cuts long paths

        code, out, err = run_cli(capsys, "run", "--api-url", url, "--dry-run", path)
        assert code == Exit.OK and "nothing was sent" in err
        flat = " ".join(out.split())
        assert "→ top-up: render #1 kept 2 of 4 videos; the 2 missing: $2.24 new" in flat
        assert "new spend: $2.24" in flat and "(top-up: the missing" in out
        assert json.loads(out[out.index("{\n") :])["num_generations"] == 2
        assert enqueues(url) == 1

        # $3.00 would refuse the whole request ($4.48): the budget sees the top-up's price
        code, out, err = run_cli(capsys, "run", "--api-url", url, "--yes", "--budget", "3.00", path)
        assert code == Exit.OK, err
        assert enqueues(url) == 2 and [g["status"] for g in my_generations(url, key)].count("succeeded") == 4
        assert "→ top-up: render #1 kept 2 of 4 videos; the 2 missing: $2.24 new" in " ".join(out.split())
        assert "5 s × 2 (top-up)" in out and "new spend this run: $2.24" in out
        assert out.count(".mp4") == 4 and len(os.listdir(tmp_path / "renders")) == 4

        code, out, _err = run_cli(capsys, "ls")
        assert "done (top-up of #1)" in out and "partial: 2 of 4 videos; completed by a top-up" in out
        code, out, _err = run_cli(capsys, "status")
        assert "no renders in flight" in out and "partial:" not in out

        code, out, err = run_cli(capsys, "run", "--api-url", url, "--yes", path)
        assert code == Exit.OK, err
        assert "reused" in out and "new spend this run: $0.00" in out and out.count(".mp4") == 4
        assert enqueues(url) == 2


def test_two_runs_topping_up_the_same_partial_render_at_once_pay_for_one_top_up(sandbox_with, tmp_path):
    """Two re-runs of a partial render started together (one ledger connection each, as two
    processes have): whichever way the race falls, one job of the shortfall is enqueued and
    both runs end with all four videos (the ledger-level guarantee is tested below)."""
    key = new_key()
    path = script(tmp_path, shots(generations=4))
    ledger_path = str(tmp_path / "l.sqlite")
    slow_enqueue = FaultRule("latency=0.3", path="/api/ai/queue", method="POST")  # both decide before either hears back
    with sandbox_with(faults=(HALF_FAIL,)) as url:
        with Ledger(ledger_path) as ledger, oxen(url, key) as client:
            [first] = runner(client, ledger, url).run([job(path)])
        assert first.state == "partial"
        httpx.post(
            url + "/_sandbox/faults", json={"fault": slow_enqueue.fault, "path": "/api/ai/queue", "method": "POST"}
        )
        start = threading.Barrier(2, timeout=30)
        outcomes: list = [None, None]
        errors: list[BaseException] = []

        def rerun(n: int) -> None:
            try:
                with Ledger(ledger_path) as ledger, oxen(url, key) as client:
                    run = runner(client, ledger, url, sse=False)
                    start.wait()
                    [outcomes[n]] = run.run([job(path)])
            except BaseException as error:
                errors.append(error)
                start.abort()

        threads = [threading.Thread(target=rerun, args=(n,), daemon=True) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors, errors
        assert [o.state for o in outcomes] == ["done", "done"], [o.error for o in outcomes]
        with Ledger(ledger_path) as ledger:
            assert enqueues(url) == 2 and sizes_asked(url, key, ledger) == [4, 2]  # one top-up, not two
            assert all(len(o.files) == 4 for o in outcomes)
            assert sum(not o.reused for o in outcomes) == 1  # one run paid for it, the other reattached


def test_a_top_up_is_claimed_only_while_its_partial_render_is_the_newest(tmp_path):
    """Two runs that both saw the partial render (the race the thread test above can only
    hope to hit) claim its top-up: the ledger records one, the second run gets it."""
    path = str(tmp_path / "l.sqlite")
    fields = {
        "request_hash": "sha256:r",
        "api_url": "https://api.example/api",
        "script": "s.kvs",
        "model": "m",
        "body": {"prompt": "x"},
        "mode": "queue",
        "out_dir": str(tmp_path),
        "estimate_usd": "2.24",
    }
    with Ledger(path) as a, Ledger(path) as b:
        partial = a.record_intent(generations=4, **fields)
        a.set_state(partial.id, "partial")
        first, created = a.claim(generations=2, topping_up=partial.id, completes=partial.id, **fields)
        second, again = b.claim(generations=2, topping_up=partial.id, completes=partial.id, **fields)
        assert created and not again and second.id == first.id
        assert (first.completes, first.generations, first.state) == (partial.id, 2, "intent")
        plain, fresh = b.claim(generations=4, **fields)  # a run that saw no partial render reattaches too
        assert plain.id == first.id and not fresh
