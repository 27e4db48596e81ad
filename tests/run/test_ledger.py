"""ledger.py: states, reattachment, in-flight money, files; safe across threads and processes."""

from __future__ import annotations

import threading

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
