"""ledger.py: states, reattachment, in-flight money, files; safe across threads and processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from klingspec.run.ledger import Ledger


def _intent(ledger, h="sha256:a", url="https://api", usd="1.12", **kw):
    return ledger.record_intent(
        request_hash=h,
        api_url=url,
        script="s.kvs",
        model="m",
        body={"prompt": "x"},
        generations=1,
        mode="queue",
        out_dir="/tmp",
        estimate_usd=usd,
        **kw,
    )


def test_states_and_reattachment(tmp_path):
    with Ledger(str(tmp_path / "l.sqlite")) as ledger:
        render = _intent(ledger)
        assert render.state == "intent" and ledger.latest_for("sha256:a", "https://api").id == render.id
        ledger.mark_sent(render.id)
        assert ledger.render(render.id).sent_at is not None
        ledger.mark_submitted(render.id, ["g1", "g2"])
        assert [g.generation_id for g in ledger.generations(render.id)] == ["g1", "g2"]
        ledger.update_generation("g1", "succeeded", "https://x/1.mp4")
        ledger.update_generation("g1", "succeeded")  # a later update keeps the URL
        assert ledger.find_generation("g1").result_url == "https://x/1.mp4"
        ledger.record_file("g1", "/tmp/v.mp4", "sha256:ff", 10)
        assert ledger.file("g1").sha256 == "sha256:ff" and ledger.render_of_file("/tmp/v.mp4") == render.id
        assert ledger.latest_for("sha256:a", "https://other") is None
        ledger.set_state(render.id, "failed", "boom")
        assert ledger.latest_for("sha256:a", "https://api") is None  # failed renders are not reattached


def test_renders_in_flight_are_per_api(tmp_path):
    with Ledger(str(tmp_path / "l.sqlite")) as ledger:
        a, b, c = _intent(ledger, usd="1.12"), _intent(ledger, "sha256:b", usd="2.00"), _intent(ledger, url="x")
        d = _intent(ledger, "sha256:d", usd=None)
        ledger.set_state(b.id, "done")
        assert [r.id for r in ledger.in_flight("https://api")] == [a.id, d.id]  # unknown prices too
        assert [r.id for r in ledger.in_flight("x")] == [c.id]


def test_survives_a_reopen_and_concurrent_threads(tmp_path):
    path = str(tmp_path / "l.sqlite")
    with Ledger(path) as ledger:

        def work(n):
            for i in range(20):
                r = _intent(ledger, f"sha256:{n}-{i}")
                ledger.mark_sent(r.id)
                ledger.mark_submitted(r.id, [f"g{n}-{i}"])
                ledger.generations(r.id)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    with Ledger(path) as again:
        assert len(again.renders(limit=1000)) == 160 and len(again.known_generation_ids()) == 160


def _claim(ledger, h="sha256:a", **kw):
    return ledger.claim(
        request_hash=h,
        api_url="https://api",
        script="s.kvs",
        model="m",
        body={"prompt": "x"},
        generations=1,
        mode="queue",
        out_dir="/tmp",
        estimate_usd="1.12",
        **kw,
    )


def test_claim_finds_the_live_render_or_records_one(tmp_path):
    with Ledger(str(tmp_path / "l.sqlite")) as ledger:
        first, created = _claim(ledger)
        assert created and first.state == "intent"
        assert _claim(ledger) == (first, False)
        again, created = _claim(ledger, again=True)
        assert created and again.id != first.id
        assert _claim(ledger) == (again, False)  # the newest live one
        replaced, created = _claim(ledger, replacing=again.id, replaced_because="gone")
        assert created and ledger.render(again.id).state == "failed" and ledger.render(again.id).error == "gone"
        assert _claim(ledger, replacing=again.id) == (replaced, False)  # someone replaced it already


def test_claims_from_many_processes_at_once_record_one_render(tmp_path):
    path = str(tmp_path / "l.sqlite")
    Ledger(path).close()  # the schema exists before the race starts
    code = (
        "import sys, time; from klingspec.run.ledger import Ledger\n"
        "ledger = Ledger(sys.argv[1]); time.sleep(float(sys.argv[2]) - time.time())\n"
        "r, created = ledger.claim(request_hash='h', api_url='u', script='s', model='m', body={}, generations=1,"
        " mode='queue', out_dir='/tmp', estimate_usd=None)\n"
        "print(r.id, created)\n"
    )
    at = str(time.time() + 1.0)
    procs = [subprocess.Popen([sys.executable, "-c", code, path, at], stdout=subprocess.PIPE) for _ in range(6)]
    answers = [p.communicate(timeout=30)[0].split() for p in procs]
    assert len({a[0] for a in answers}) == 1  # one render for all
    assert sorted(a[1] for a in answers) == [b"False"] * 5 + [b"True"]


def test_adopt_never_hands_one_generation_to_two_renders(tmp_path):
    with Ledger(str(tmp_path / "l.sqlite")) as ledger:
        a, b, c = (_intent(ledger, f"sha256:{n}") for n in "abc")
        ledger.mark_submitted(c.id, ["g0"])
        assert ledger.adopt(a.id, ["g0", "g1", "g2", "g3"], 2) == ["g1", "g2"]
        assert ledger.render(a.id).state == "submitted"
        assert ledger.adopt(b.id, ["g0", "g1", "g2", "g3"], 2) == ["g3"]  # all that is left
        assert ledger.adopt(a.id, ["g4", "g5"], 2) == ["g1", "g2"]  # a render keeps the ids it has
        fresh = _intent(ledger, "sha256:d")
        assert ledger.adopt(fresh.id, ["g1", "g3"], 1) == [] and ledger.render(fresh.id).state == "intent"


def test_adopting_from_many_threads_at_once_gives_each_id_once(tmp_path):
    path = str(tmp_path / "l.sqlite")
    with Ledger(path) as setup:
        renders = [_intent(setup, f"sha256:{n}") for n in range(8)]
    candidates = [f"g{n}" for n in range(20)]
    got: dict[int, list[str]] = {}
    start = threading.Barrier(len(renders))

    def work(render_id):
        with Ledger(path) as ledger:  # one connection each, as separate processes have
            start.wait()
            got[render_id] = ledger.adopt(render_id, candidates, 3)

    threads = [threading.Thread(target=work, args=(r.id,)) for r in renders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    adopted = [gid for ids in got.values() for gid in ids]
    assert len(adopted) == len(set(adopted)) == 20  # 6 renders got 3, one got 2, one got none
    assert sorted(len(ids) for ids in got.values()) == [0, 2, 3, 3, 3, 3, 3, 3]


@pytest.mark.skipif(sys.platform == "win32", reason="flock and SIGKILL")
def test_sending_is_held_by_one_holder_and_freed_when_its_process_dies(tmp_path):
    path = str(tmp_path / "l.sqlite")
    with Ledger(path) as ledger:
        render = _intent(ledger)
        never = threading.Event()
        with ledger.sending(render.id, never, 1) as held:
            assert held
            with Ledger(path) as other, other.sending(render.id, never, 0.2) as also:
                assert not also  # waited 0.2 s, then gave up
            stop = threading.Event()
            stop.set()
            gave_up: list[bool] = []

            def wait_stopped() -> None:  # a stop ends a 600 s wait: the thread finishes
                with ledger.sending(render.id, stop, 600) as also:
                    gave_up.append(not also)

            waiter = threading.Thread(target=wait_stopped, daemon=True)
            waiter.start()
            waiter.join(60)  # liveness, not speed: without the stop this would wait 600 s
            assert not waiter.is_alive() and gave_up == [True]
        with ledger.sending(render.id, never, 0) as again:
            assert again  # released
        # a holder killed with SIGKILL: the kernel frees the right, the render stays sendable
        code = (
            "import sys, threading, time; from klingspec.run.ledger import Ledger\n"
            "l = Ledger(sys.argv[1]); cm = l.sending(int(sys.argv[2]), threading.Event(), 5)\n"
            "assert cm.__enter__(); print('held', flush=True); time.sleep(60)\n"
        )
        holder = subprocess.Popen([sys.executable, "-c", code, path, str(render.id)], stdout=subprocess.PIPE)
        assert holder.stdout.readline() == b"held\n"
        with ledger.sending(render.id, never, 0.2) as also:
            assert not also
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        with ledger.sending(render.id, never, 5) as after:
            assert after and ledger.render(render.id).state == "intent"
        assert os.listdir(path + ".locks") == [f"render-{render.id}.lock"]  # unsettled: the file stays
        ledger.mark_submitted(render.id, ["g1"])
        with ledger.sending(render.id, never, 5) as last:
            assert last
        assert os.listdir(path + ".locks") == []  # settled: nobody will send it again


def test_many_runs_opening_a_fresh_ledger_at_once_all_open_it(tmp_path):
    """Switching a new file to WAL needs it to itself and SQLite does not wait for that:
    runs opening a fresh ledger together once crashed with "database is locked" (seen under
    load; each round here is a new file and a new race)."""
    import threading

    failures: list[BaseException] = []
    for round_ in range(10):
        path = str(tmp_path / f"fresh{round_}.sqlite")
        start = threading.Barrier(8, timeout=30)

        def open_it(path: str = path, start: threading.Barrier = start) -> None:
            start.wait()
            try:
                with Ledger(path) as ledger:
                    assert ledger.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            except BaseException as error:
                failures.append(error)

        threads = [threading.Thread(target=open_it, daemon=True) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert not failures, failures


def test_the_home_and_the_ledger_are_the_users_alone(tmp_path):
    """The ledger holds presigned result URLs: 0700 for the home, 0600 for the ledger (and
    the files SQLite makes beside it), whatever the umask, and an older 0644 ledger tightened."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        home = tmp_path / "fresh-home"
        with Ledger(str(home / "ledger.sqlite")) as ledger:
            ledger.record_intent(
                request_hash="sha256:p",
                api_url="http://api",
                script="s.kvs",
                model="m",
                body={},
                generations=1,
                mode="queue",
                out_dir=str(tmp_path),
                estimate_usd="1.12",
            )
            for path in (home / "ledger.sqlite", *home.glob("ledger.sqlite-*")):
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        older = tmp_path / "older.sqlite"
        Ledger(str(older)).close()
        os.chmod(older, 0o644)  # as an older klingspec left it
        Ledger(str(older)).close()
        assert stat.S_IMODE(older.stat().st_mode) == 0o600
    finally:
        os.umask(old)
