"""display.py `LiveView`: rows for the jobs known up front, and for jobs added later."""

from __future__ import annotations

import io
import threading

from rich.console import Console
from run_helpers import job, script, shots

from klingspec.run.display import TOTAL_STEPS, LiveView
from klingspec.run.runner import Event


def _view(jobs) -> LiveView:
    return LiveView(jobs, console=Console(file=io.StringIO(), width=200))


def test_a_job_added_later_gets_a_row_its_events_move(tmp_path):
    first = job(script(tmp_path, shots(prompt="first"), "first.kvs"))
    later = job(script(tmp_path, shots(prompt="later"), "later.kvs"))
    view = _view([first])
    view(Event("done", later, "1 video ready"))  # no row yet: not shown, no error
    assert len(view.progress.tasks) == 1
    task = view.add(later)
    assert view.add(later) == task and len(view.progress.tasks) == 2  # one row per job
    assert view.progress.tasks[task].fields["status"] == "waiting"
    view(Event("done", later, "1 video ready"))
    assert view.progress.tasks[task].completed == TOTAL_STEPS
    assert view.progress.tasks[task].fields["status"] == "done"


def test_rows_added_from_many_threads_at_once_are_one_per_job(tmp_path):
    jobs = [job(script(tmp_path, shots(prompt=f"take {i}"), f"s{i}.kvs")) for i in range(8)]
    view = _view([])
    start = threading.Barrier(len(jobs) * 2)
    found: dict[int, list[object]] = {id(j): [] for j in jobs}

    def add(j) -> None:
        start.wait(timeout=10)
        found[id(j)].append(view.add(j))

    threads = [threading.Thread(target=add, args=(j,)) for j in jobs for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(view.progress.tasks) == len(jobs)
    assert all(len(set(tasks)) == 1 and len(tasks) == 2 for tasks in found.values())
