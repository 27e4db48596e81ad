"""Hardening of the run side, in process over the real sandbox: sync answers recorded before
the download, polls that outlive a 429 storm, the spend of a paid job that fails later,
answers capped by what the API can send, and the key scrubbed from what the API echoes."""

from __future__ import annotations

import json
import os
import sqlite3
from decimal import Decimal

import httpx
import pytest
from run_helpers import job, my_generations, new_key, oxen, runner, script, shots, stats

from klingspec.run import display
from klingspec.run.client import BadBody, Limits, OxenClient
from klingspec.run.jobs import Job
from klingspec.run.ledger import Ledger, Render
from klingspec.run.states import RenderState
from klingspec.run.submitting import sync_answer_path
from klingspec.sandbox import FaultRule

SMALL = Limits(video_bytes=2_000_000, json_bytes=1_000_000, sse_line_chars=100_000)


def _small(client: OxenClient) -> OxenClient:
    client.limits = SMALL
    return client


def _sent_sync(ledger: Ledger, the_job: Job, url: str) -> Render:
    """`the_job` recorded as a sync render and sent, as a run killed right after sending leaves it."""
    render, _ = ledger.claim(
        request_hash=the_job.request_hash,
        api_url=url,
        script=the_job.script,
        model=the_job.model,
        body=the_job.body,
        generations=1,
        mode="sync",
        out_dir=the_job.out_dir,
        estimate_usd=str(the_job.estimate_usd),
    )
    ledger.mark_sent(render.id)
    return render


def _sync_posts(url: str) -> int:
    return stats(url)["requests"].get("POST /api/ai/videos/generate", 0)


# -- sync: the answer is in the ledger before the download ------------------------------------


def test_a_sync_download_that_failed_is_resumed_from_the_recorded_url_without_a_post(sandbox_with, tmp_path):
    """The first run's download is refused (as a kill mid-download would leave it): the
    answer's URL is in the ledger, so the next run downloads it and sends nothing; the
    old code polled `sync-1-1`, got 404 and failed the render, and the run after paid again."""
    key = new_key()
    path = script(tmp_path, shots())
    rule = FaultRule("status=404", path="/api/files/*", method="GET", times=1)
    with sandbox_with(faults=(rule,)) as url, Ledger(str(tmp_path / "l.sqlite")) as ledger:
        with oxen(url, key) as client:
            [first] = runner(client, ledger, url, mode="sync").run([job(path)])
        assert first.state == RenderState.FAILED and first.spent_usd == job(path).estimate_usd  # paid: counted
        [generation] = ledger.generations(first.render_id)
        assert generation.result_url and "/files/" in generation.result_url  # recorded before the download
        for _ in range(2):
            with oxen(url, key) as client:
                [again] = runner(client, ledger, url, mode="sync").run([job(path)])
            assert again.state == RenderState.DONE and again.render_id == first.render_id, again.error
        assert _sync_posts(url) == 1
        assert not any(route.startswith("GET /api/ai/queue") for route in stats(url)["requests"])
    assert len(list((tmp_path / "renders").glob("*.mp4"))) == 1
    assert not [n for n in os.listdir(tmp_path / "renders") if n.startswith(".answer")]


def test_a_sync_answer_left_whole_on_disk_is_used_not_sent_again(sandbox_with, tmp_path):
    """Killed between the answer's arrival and its recording: the whole answer file the
    crashed run left is recorded by the next run, and no request is sent again."""
    key = new_key()
    path = script(tmp_path, shots())
    the_job = job(path)
    with sandbox_with() as url, Ledger(str(tmp_path / "l.sqlite")) as ledger:
        render = _sent_sync(ledger, the_job, url)
        os.makedirs(the_job.out_dir)
        with oxen(url, key) as client:
            client.generate_to_file(the_job.body, sync_answer_path(render))  # the answer the crash left
            assert _sync_posts(url) == 1
            [outcome] = runner(client, ledger, url, mode="sync").run([the_job])
        assert outcome.state == RenderState.DONE and outcome.reused and outcome.spent_usd == 0
        assert _sync_posts(url) == 1
    assert not os.path.exists(sync_answer_path(render))


def test_a_sync_render_sent_without_an_answer_is_unknown_and_never_sent_again(sandbox_with, tmp_path, capsys):
    key = new_key()
    path = script(tmp_path, shots())
    the_job = job(path)
    with sandbox_with() as url, Ledger(str(tmp_path / "l.sqlite")) as ledger:
        render = _sent_sync(ledger, the_job, url)
        os.makedirs(the_job.out_dir)
        with open(sync_answer_path(render) + ".part", "w") as half:  # cut short by the crash
            half.write('{"videos": [{"url": "http')
        for _ in range(2):
            with oxen(url, key) as client:
                [outcome] = runner(client, ledger, url, mode="sync").run([the_job])
            assert outcome.state == RenderState.UNKNOWN and outcome.error
            assert "outcome unknown — may have been billed" in outcome.error and "--again" in outcome.error
        assert _sync_posts(url) == 0
        assert ledger.render(render.id).state == RenderState.UNKNOWN
    assert os.listdir(the_job.out_dir) == []


def test_a_sync_render_an_older_klingspec_left_submitted_is_never_polled_nor_paid_again(sandbox_with, tmp_path):
    """The old code recorded a sync render as submitted under the internal id `sync-<n>-1`
    before reading the answer; its next run polled that id, got 404, failed the render, and
    the run after paid again. Such a render is an unknown outcome: said so, never re-sent."""
    path = script(tmp_path, shots())
    the_job = job(path)
    with sandbox_with() as url, Ledger(str(tmp_path / "l.sqlite")) as ledger:
        render = _sent_sync(ledger, the_job, url)
        ledger.mark_submitted(render.id, [f"sync-{render.id}-1"])
        for _ in range(2):
            with oxen(url, new_key()) as client:
                [outcome] = runner(client, ledger, url, mode="sync").run([the_job])
            assert outcome.state == RenderState.UNKNOWN and "outcome unknown" in (outcome.error or "")
        requests = stats(url)["requests"]
        assert not any(r.startswith(("POST", "GET /api/ai/queue")) for r in requests), requests


# -- following through 429 storms; the spend of a paid job -------------------------------------


def test_a_storm_of_429s_on_polls_does_not_fail_a_live_render(sandbox_with, tmp_path):
    """Ten 429s in a row on the polls of one generation (more than one read's retries):
    the render is alive at the API, so it is followed on to its video."""
    key = new_key()
    path = script(tmp_path, shots())
    rule = FaultRule("status=429, retry-after=0", path="/api/ai/queue/*", method="GET", times=10)
    with sandbox_with(faults=(rule,)) as url, Ledger(str(tmp_path / "l.sqlite")) as ledger:
        with oxen(url, key) as client:
            [outcome] = runner(client, ledger, url, sse=False).run([job(path)])
        assert outcome.state == RenderState.DONE, outcome.error
        assert stats(url)["requests"]["GET /api/ai/queue/{generation_id}"] > 10


@pytest.mark.parametrize("fault", ["status=404", "not-mp4"])
def test_a_paid_job_whose_download_fails_still_shows_its_price(sandbox_with, tmp_path, fault):
    key = new_key()
    path = script(tmp_path, shots())
    the_job = job(path)
    rule = FaultRule(fault, path="/api/files/*", method="GET")
    with sandbox_with(faults=(rule,)) as url, Ledger(str(tmp_path / "l.sqlite")) as ledger:
        with oxen(url, key) as client:
            [outcome] = runner(client, ledger, url).run([the_job])
        assert outcome.state == RenderState.FAILED and outcome.spent_usd == the_job.estimate_usd > 0
        line = display.spend_line([outcome])
        assert line == f"new spend this run: ${the_job.estimate_usd:.2f}", line
        assert display.run_json([outcome], sandbox=False)["renders"][0]["cost_usd"] == float(the_job.estimate_usd)
        assert ledger.render(outcome.render_id).estimate_usd == str(the_job.estimate_usd)
    assert not list((tmp_path / "renders").glob("*"))


# -- answers capped by what the API can send -------------------------------------------------


@pytest.mark.parametrize("fault", ["endless", "gzip-bomb=50", "not-mp4"])
def test_a_result_that_is_no_plausible_video_fails_cleanly_and_leaves_nothing(sandbox_with, tmp_path, fault):
    key = new_key()
    rule = FaultRule(fault, path="/api/files/*", method="GET")
    with sandbox_with(faults=(rule,)) as url, _small(oxen(url, key)) as client:
        [gid] = client.enqueue({"model": "kling-video-o3-pro-reference-to-video", "prompt": "x"}, 1)
        item = client.generation(gid)
        while item["status"] != "succeeded":
            item = client.generation(gid)
        with pytest.raises(BadBody) as caught:
            client.download(item["result_url"], str(tmp_path / "v.mp4"))
        assert ("MP4" if fault == "not-mp4" else "larger than") in str(caught.value)
        assert stats(url)["requests"]["GET /api/files/{file_id}.mp4"] == 1  # never retried
    assert os.listdir(tmp_path) == []


def test_a_gzip_bomb_is_counted_in_what_it_inflates_to(sandbox_with, tmp_path):
    """The old check compared Content-Length only for unencoded bodies: 50 MB inflated from
    a few kilobytes were written. Counted decoded, the bomb stops at the cap."""
    rule = FaultRule("gzip-bomb=50", path="/api/files/*", method="GET")
    with sandbox_with(faults=(rule,)) as url, _small(oxen(url, new_key())) as client:
        with httpx.stream("GET", url + "/files/x.mp4") as response:
            assert response.status_code == 404  # no such file: the route answers before the fault
        [gid] = client.enqueue({"model": "kling-video-o3-pro-reference-to-video", "prompt": "x"}, 1)
        item = client.generation(gid)
        while item["status"] != "succeeded":
            item = client.generation(gid)
        with httpx.stream("GET", item["result_url"]) as response:
            assert response.headers["content-encoding"] == "gzip"
        with pytest.raises(BadBody):
            client.download(item["result_url"], str(tmp_path / "v.mp4"))


def test_an_event_line_without_an_end_is_abandoned_and_the_render_is_polled(sandbox_with, tmp_path):
    key = new_key()
    path = script(tmp_path, shots())
    rule = FaultRule("endless-line", path="/api/events", method="GET")
    with sandbox_with(faults=(rule,)) as url:
        with _small(oxen(url, key)) as client, pytest.raises(BadBody):
            list(client.events())
        with Ledger(str(tmp_path / "l.sqlite")) as ledger, _small(oxen(url, key)) as client:
            [outcome] = runner(client, ledger, url).run([job(path)])
        assert outcome.state == RenderState.DONE, outcome.error


def test_a_json_answer_larger_than_any_is_refused():
    def endless(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=iter([b'{"generations": [' + b" " * 4096] * 1000))

    client = OxenClient(httpx.Client(transport=httpx.MockTransport(endless)), "http://api.test/api", limits=SMALL)
    with client, pytest.raises(BadBody):
        client.generations()


# -- the key is never printed or stored, whatever the API echoes --------------------------------


def test_a_key_echoed_in_an_error_message_is_scrubbed_everywhere(sandbox_with, tmp_path, capsys):
    key = new_key()
    path = script(tmp_path, shots())
    rule = FaultRule(f"fail=invalid credentials: {key}", path="/api/ai/queue", method="POST")
    ledger_path = str(tmp_path / "l.sqlite")
    with sandbox_with(faults=(rule,)) as url, Ledger(ledger_path) as ledger:
        with oxen(url, key) as client:
            [outcome] = runner(client, ledger, url).run([job(path)])
        assert [g["error_message"] for g in my_generations(url, key)] == [f"invalid credentials: {key}"]
        assert outcome.state == RenderState.FAILED and "<redacted>" in (outcome.error or "")
        assert key not in json.dumps(display.run_json([outcome], sandbox=False))
        display.summary([outcome])
    assert key not in capsys.readouterr().out
    with sqlite3.connect(ledger_path) as db:
        dump = "\n".join(db.iterdump())
    assert key not in dump and "<redacted>" in dump


def test_spend_of_a_reattached_failure_is_nothing_new(sandbox_with, tmp_path):
    """The other side of counting a paid failure: a run that only reattached pays nothing."""
    key = new_key()
    path = script(tmp_path, shots())
    rule = FaultRule("status=404", path="/api/files/*", method="GET")
    with sandbox_with(faults=(rule,)) as url, Ledger(str(tmp_path / "l.sqlite")) as ledger:
        with oxen(url, key) as client:
            [first] = runner(client, ledger, url).run([job(path)])
            [second] = runner(client, ledger, url).run([job(path)])
    assert first.spent_usd == job(path).estimate_usd and first.spent_usd > Decimal(0)
    assert second.reused and second.spent_usd == 0
