"""running.py: the Runner against the real sandbox over loopback (no mocked functions)."""

from __future__ import annotations

import os
from decimal import Decimal

import pytest
from run_helpers import Sleeps, job, my_generations, new_key, oxen, runner, script, shots, stats

from klingspec.run.ledger import Ledger
from klingspec.run.media import file_sha256
from klingspec.sandbox import FaultRule

MP4_MAGIC = b"ftyp"


def _check_files(outcome, ledger, count):
    assert outcome.state == "done", outcome.error
    assert len(outcome.files) == count
    for f in outcome.files:
        assert os.path.exists(f.path) and not [n for n in os.listdir(os.path.dirname(f.path)) if n.endswith(".part")]
        with open(f.path, "rb") as handle:
            assert MP4_MAGIC in handle.read(64)
        assert file_sha256(f.path) == f.sha256 == ledger.file(f.generation_id).sha256
        assert os.path.getsize(f.path) == f.bytes


@pytest.mark.parametrize("generations", [1, 2, 3, 4])
@pytest.mark.parametrize("fmt", ["url", "b64_json"])
def test_queue_renders_every_generation(base_url, tmp_path, generations, fmt):
    key = new_key()
    path = script(tmp_path, shots(generations=generations, fmt=fmt))
    with Ledger(str(tmp_path / "l.sqlite")) as ledger, oxen(base_url, key) as client:
        [outcome] = runner(client, ledger, base_url).run([job(path)])
        _check_files(outcome, ledger, generations)
        render = ledger.render(outcome.render_id)
        assert render.state == "done" and render.mode == "queue"
        assert [g.status for g in ledger.generations(render.id)] == ["succeeded"] * generations
    assert len(my_generations(base_url, key)) == generations
    assert outcome.spent_usd == Decimal("0.224") * 5 * generations


@pytest.mark.parametrize("fmt", ["url", "b64_json"])
def test_sync_renders_one_video(base_url, tmp_path, fmt):
    key = new_key()
    path = script(tmp_path, shots(fmt=fmt))
    with Ledger(str(tmp_path / "l.sqlite")) as ledger, oxen(base_url, key) as client:
        [outcome] = runner(client, ledger, base_url, mode="sync").run([job(path)])
        _check_files(outcome, ledger, 1)
        assert ledger.render(outcome.render_id).mode == "sync"
    assert my_generations(base_url, key) == []  # sync renders are not queue jobs
    assert not [n for n in os.listdir(tmp_path / "renders") if n.startswith(".answer")]


@pytest.mark.parametrize("mode", ["queue", "sync"])
def test_symlinks_planted_in_the_out_folder_are_never_written_through(base_url, tmp_path, mode):
    """A link at a video's name, or at the temporary file a download or a b64_json
    answer is written to, pointing out of the folder: the file outside stays as it was,
    and the video lands in the folder as a regular file."""
    key = new_key()
    path = script(tmp_path, shots(fmt="b64_json" if mode == "sync" else None))
    the_job = job(path)
    os.makedirs(the_job.out_dir)
    video = os.path.join(the_job.out_dir, f"scene-{the_job.request_hash.removeprefix('sha256:')[:8]}-1.mp4")
    victims = []
    for n, name in enumerate((video, video + ".part")):
        victim = tmp_path / f"victim{n}.txt"
        victim.write_text("precious\n")
        os.symlink(victim, name)
        victims.append(victim)
    with Ledger(str(tmp_path / "l.sqlite")) as ledger, oxen(base_url, key) as client:
        [outcome] = runner(client, ledger, base_url, mode=mode).run([the_job])
    assert outcome.state == "done", outcome.error
    assert [f.path for f in outcome.files] == [video]
    assert not os.path.islink(video) and os.path.getsize(video) == outcome.files[0].bytes
    assert all(v.read_text() == "precious\n" for v in victims)


def test_polling_only_also_works(base_url, tmp_path):
    key = new_key()
    path = script(tmp_path, shots(generations=2))
    with Ledger(str(tmp_path / "l.sqlite")) as ledger, oxen(base_url, key) as client:
        [outcome] = runner(client, ledger, base_url, sse=False).run([job(path)])
        _check_files(outcome, ledger, 2)
        assert "GET /events" not in client.stats.by_route


# -- faults -----------------------------------------------------------------------------


def _run_one(url, tmp_path, *, key=None, sleep=None, text=None, **kwargs):
    key = key or new_key()
    path = script(tmp_path, text or shots())
    with Ledger(str(tmp_path / "l.sqlite")) as ledger, oxen(url, key, sleep=sleep) as client:
        [outcome] = runner(client, ledger, url, **kwargs).run([job(path)])
        if outcome.state == "done":
            _check_files(outcome, ledger, len(outcome.files))
        return outcome, client, ledger.render(outcome.render_id) if outcome.render_id else None, key


def test_enqueue_429_waits_retry_after_then_sends_once(sandbox_with, tmp_path):
    rule = FaultRule("status=429, retry-after=2", path="/api/ai/queue", method="POST", times=1)
    sleeps = Sleeps()
    with sandbox_with(faults=(rule,)) as url:
        outcome, _client, _render, key = _run_one(url, tmp_path, sleep=sleeps)
        assert outcome.state == "done"
        assert 2.0 in sleeps.delays
        assert stats(url)["requests"]["POST /api/ai/queue"] == 2
        assert len(my_generations(url, key)) == 1


@pytest.mark.parametrize("status", [500, 503])
def test_enqueue_5xx_creates_exactly_one_job(sandbox_with, tmp_path, status):
    rule = FaultRule(f"status={status}", path="/api/ai/queue", method="POST", times=1)
    with sandbox_with(faults=(rule,)) as url:
        outcome, _client, _render, key = _run_one(url, tmp_path)
        assert outcome.state == "done"
        assert len(my_generations(url, key)) == 1


def test_enqueue_dropped_after_create_is_reconciled_not_resent(sandbox_with, tmp_path):
    rule = FaultRule("drop", path="/api/ai/queue", method="POST", times=1)
    with sandbox_with(faults=(rule,)) as url:
        outcome, _client, _render, key = _run_one(url, tmp_path, text=shots(generations=2))
        assert outcome.state == "done", outcome.error
        assert stats(url)["requests"]["POST /api/ai/queue"] == 1
        assert stats(url)["dropped"] == 1
        gens = my_generations(url, key)
        assert len(gens) == 2
        assert sorted(g["generation_id"] for g in gens) == sorted(f.generation_id for f in outcome.files)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_poll_errors_are_retried(sandbox_with, tmp_path, status):
    # every other status read fails once; polling only, so every read is a GET
    rule = FaultRule(f"status={status}", path="*", method="GET", times=2)
    with sandbox_with(faults=(rule,)) as url:
        outcome, _client, _render, key = _run_one(url, tmp_path, sse=False)
        assert outcome.state == "done", outcome.error
        assert len(my_generations(url, key)) == 1


def _download_fault(spec, times=1):
    left = [times]

    def hook(request):
        if "/files/" in request.url.path and left[0] > 0:
            left[0] -= 1
            request.headers["X-Sandbox-Fault"] = spec

    return hook


def test_truncated_download_is_retried_and_verified(base_url, tmp_path):
    key = new_key()
    path = script(tmp_path, shots())
    with (
        Ledger(str(tmp_path / "l.sqlite")) as ledger,
        oxen(base_url, key, event_hooks={"request": [_download_fault("truncate=100")]}) as client,
    ):
        [outcome] = runner(client, ledger, base_url).run([job(path)])
        _check_files(outcome, ledger, 1)
        assert client.stats.by_route["GET download"] == 2


def test_truncated_download_every_time_fails_and_leaves_nothing(base_url, tmp_path):
    key = new_key()
    path = script(tmp_path, shots())
    with (
        Ledger(str(tmp_path / "l.sqlite")) as ledger,
        oxen(base_url, key, event_hooks={"request": [_download_fault("truncate=100", 99)]}) as client,
    ):
        [outcome] = runner(client, ledger, base_url).run([job(path)])
        assert outcome.state == "failed"
        assert not os.path.exists(tmp_path / "renders") or os.listdir(tmp_path / "renders") == []
        render = ledger.render(outcome.render_id)
        assert render.state == "submitted"  # the video still exists: a re-run fetches it
    with Ledger(str(tmp_path / "l.sqlite")) as ledger, oxen(base_url, key) as client:
        [again] = runner(client, ledger, base_url).run([job(path)])
        _check_files(again, ledger, 1)
        assert again.reused
    assert len(my_generations(base_url, key)) == 1


def test_slow_download_completes(base_url, tmp_path):
    key = new_key()
    path = script(tmp_path, shots())
    with (
        Ledger(str(tmp_path / "l.sqlite")) as ledger,
        oxen(base_url, key, event_hooks={"request": [_download_fault("slow=4000")]}) as client,
    ):
        [outcome] = runner(client, ledger, base_url).run([job(path)])
        _check_files(outcome, ledger, 1)


def test_unreachable_api_fails_the_render_without_a_job(tmp_path):
    path = script(tmp_path, shots())
    sleeps = Sleeps()
    with (
        Ledger(str(tmp_path / "l.sqlite")) as ledger,
        oxen("http://127.0.0.1:9/api", new_key(), sleep=sleeps) as client,
    ):
        [outcome] = runner(client, ledger, "http://127.0.0.1:9/api", sse=False).run([job(path)])
        assert outcome.state == "failed" and "cannot reach the API" in outcome.error
        assert ledger.render(outcome.render_id).state == "failed"  # surely never arrived: a re-run sends afresh
        assert len(sleeps.delays) == 3  # connect errors are retried with backoff


# -- reattach, again, concurrency, interruption ------------------------------------------


def test_interrupted_run_is_finished_by_the_next_without_paying_twice(sandbox_with, tmp_path):
    key = new_key()
    path = script(tmp_path, shots(generations=2))
    with sandbox_with(processing_seconds=0.5) as url:
        with Ledger(str(tmp_path / "l.sqlite")) as ledger, oxen(url, key) as client:
            first = runner(client, ledger, url)
            first.on_event = lambda e: e.kind == "submitted" and first.halt()  # Ctrl-C right after submit
            [outcome] = first.run([job(path)])
            assert outcome.state == "interrupted" and outcome.files == ()
            assert ledger.render(outcome.render_id).state == "submitted"
        with Ledger(str(tmp_path / "l.sqlite")) as ledger, oxen(url, key) as client:
            events = []
            [again] = runner(client, ledger, url, on_event=events.append).run([job(path)])
            _check_files(again, ledger, 2)
            assert again.reused and again.spent_usd == 0 and events[0].kind == "reattach"
        assert stats(url)["requests"]["POST /api/ai/queue"] == 1
        assert len(my_generations(url, key)) == 2


def test_again_renders_anew_and_keeps_the_first_take(base_url, tmp_path):
    key = new_key()
    path = script(tmp_path, shots())
    with Ledger(str(tmp_path / "l.sqlite")) as ledger, oxen(base_url, key) as client:
        [one] = runner(client, ledger, base_url).run([job(path)])
        [same] = runner(client, ledger, base_url).run([job(path)])
        [two] = runner(client, ledger, base_url, again=True).run([job(path)])
        assert same.reused and same.files == one.files
        assert not two.reused and two.render_id != one.render_id
        assert one.files[0].path != two.files[0].path
        for outcome in (one, two):
            assert file_sha256(outcome.files[0].path) == outcome.files[0].sha256
    assert len(my_generations(base_url, key)) == 2


def test_deleted_video_is_downloaded_again_without_a_new_job(base_url, tmp_path):
    key = new_key()
    path = script(tmp_path, shots())
    with Ledger(str(tmp_path / "l.sqlite")) as ledger, oxen(base_url, key) as client:
        [one] = runner(client, ledger, base_url).run([job(path)])
        os.unlink(one.files[0].path)
        [two] = runner(client, ledger, base_url).run([job(path)])
        _check_files(two, ledger, 1)
        assert two.reused
    assert len(my_generations(base_url, key)) == 1


def test_identical_scripts_in_one_run_render_once(base_url, tmp_path):
    key = new_key()
    a = script(tmp_path, shots(), "a.kvs")
    b = script(tmp_path, shots(), "b.kvs")
    with Ledger(str(tmp_path / "l.sqlite")) as ledger, oxen(base_url, key) as client:
        r = runner(client, ledger, base_url)
        assert len(r.new_jobs([job(a), job(b)])) == 1
        first, second = r.run([job(a), job(b)])
        assert first.state == second.state == "done" and second.reused and second.spent_usd == 0
    assert len(my_generations(base_url, key)) == 1


def test_renders_run_concurrently(sandbox_with, tmp_path):
    """All four renders are submitted before any finishes: they overlap, not queue up
    behind each other (how close to one generation time that is, bench_run.py measures)."""
    key = new_key()
    paths = [script(tmp_path, shots(prompt=f"take {i}"), f"s{i}.kvs") for i in range(4)]
    kinds: list[str] = []
    with sandbox_with(processing_seconds=0.6) as url:
        with Ledger(str(tmp_path / "l.sqlite")) as ledger, oxen(url, key) as client:
            r = runner(client, ledger, url, concurrency=4, on_event=lambda e: kinds.append(e.kind))
            outcomes = r.run([job(p) for p in paths])
        assert all(o.state == "done" for o in outcomes)
    assert kinds.count("submitted") == 4
    last_submit = max(i for i, kind in enumerate(kinds) if kind == "submitted")
    assert last_submit < kinds.index("done"), kinds


def test_a_generation_the_api_forgot_fails_the_render(base_url, tmp_path):
    key = new_key()
    path = script(tmp_path, shots())
    j = job(path)
    with Ledger(str(tmp_path / "l.sqlite")) as ledger, oxen(base_url, key) as client:
        render = ledger.record_intent(
            request_hash=j.request_hash,
            api_url=base_url,
            script=path,
            model=j.model,
            body=j.body,
            generations=1,
            mode="queue",
            out_dir=j.out_dir,
            estimate_usd="1.12",
        )
        ledger.mark_sent(render.id)
        ledger.mark_submitted(render.id, ["00000000-0000-4000-8000-000000000000"])
        [outcome] = runner(client, ledger, base_url).run([j])
        assert outcome.state == "failed" and "no longer knows" in outcome.error
        assert ledger.render(render.id).state == "failed"
        [fresh] = runner(client, ledger, base_url).run([j])  # so the next run renders anew
        assert fresh.state == "done" and fresh.render_id != render.id


def test_sent_but_never_created_is_sent_by_the_next_run(base_url, tmp_path):
    key = new_key()
    path = script(tmp_path, shots())
    j = job(path)
    with Ledger(str(tmp_path / "l.sqlite")) as ledger, oxen(base_url, key) as client:
        render = ledger.record_intent(
            request_hash=j.request_hash,
            api_url=base_url,
            script=path,
            model=j.model,
            body=j.body,
            generations=1,
            mode="queue",
            out_dir=j.out_dir,
            estimate_usd="1.12",
        )
        ledger.mark_sent(render.id)  # killed before the request left
        [outcome] = runner(client, ledger, base_url).run([j])
        _check_files(outcome, ledger, 1)
        assert outcome.render_id == render.id and not outcome.reused
    assert len(my_generations(base_url, key)) == 1


def test_budget(base_url, tmp_path):
    from klingspec.run.runner import BudgetRefused

    path = script(tmp_path, shots(generations=2))
    with Ledger(str(tmp_path / "l.sqlite")) as ledger, oxen(base_url, new_key()) as client:
        r = runner(client, ledger, base_url)
        assert r.check_budget([job(path)], Decimal("2.24")) == Decimal("2.24")
        with pytest.raises(BudgetRefused):
            r.check_budget([job(path)], Decimal("2.23"))
        r.run([job(path)])
        assert r.check_budget([job(path)], Decimal("0")) == 0  # reattaching costs nothing
