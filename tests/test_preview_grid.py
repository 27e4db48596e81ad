"""`preview --vars-table`: the variants grid (klingspec/preview/grid.py), rows x takes.

Two rows of a table are rendered for real in the sandbox (`run --vars-table`), then a
third row is added: the page shows each row's values and cost, the takes of the rows the
ledger holds under each row's own request hash, and the new row as not rendered yet.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

from helpers import write
from test_preview import parse, preview

from klingspec import pricing
from klingspec.cli import main
from klingspec.cli.options import results_of
from klingspec.cli.report import Exit
from klingspec.pipeline import Options
from klingspec.run.ledger import Ledger

SCENE = 'let mood = "dawn"\nlet steps = 5\nshot a 3s "a door at {{ mood }}, {{ steps }} steps away"\n'


def test_the_grid_shows_each_row_with_its_values_cost_and_its_own_takes(tmp_path, capsys):
    script = write(tmp_path, SCENE, "scene.kvs")
    table = tmp_path / "t.csv"
    table.write_text("mood,steps\ndusk,4\nnoon,6\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["run", "--sandbox", "--yes", script, "--vars-table", str(table)]) == Exit.OK
    table.write_text("mood,steps\ndusk,4\nnoon,6\nnight,8\n", encoding="utf-8")  # a third row, not rendered

    page_file = tmp_path / "grid.html"
    code, _, err = preview(capsys, script, "--vars-table", str(table), "-o", str(page_file))
    assert code == Exit.OK, err
    page = parse(page_file.read_text(encoding="utf-8"))
    grid = page.by_id("variants")
    rows = grid.all("tr", "variant")
    assert [r.attrs["data-row"] for r in rows] == ["1", "2", "3"]

    results = results_of([script], Options(), str(table))
    assert [r.attrs["data-request-hash"] for r in rows] == [r.request.content_hash for r in results]
    values = [{dt.text(): dd.text() for dt, dd in zip(r.all("dt"), r.all("dd"), strict=True)} for r in rows]
    assert values == [{"mood": "dusk", "steps": "4"}, {"mood": "noon", "steps": "6"}, {"mood": "night", "steps": "8"}]
    assert [r.one("td", "cost").text() for r in rows] == [pricing.usd_quote(r.estimate.quote) for r in results]
    total = pricing.add(r.estimate.quote for r in results)
    assert page.by_id("variants-total").text() == pricing.usd_quote(total)

    with Ledger() as ledger:
        files = {r.request_hash: [Path(f.path) for f in ledger.all_files(r.id)] for r in ledger.renders()}
    for row, result in zip(rows[:2], results[:2], strict=True):
        [take] = row.all("li", "take")
        linked = (page_file.parent / urllib.parse.unquote(take.one("video").attrs["src"])).resolve()
        assert [linked] == [f.resolve() for f in files[result.request.content_hash]]
    assert not rows[2].all("li", "take") and rows[2].one("span", "no-takes").text() == "not rendered yet"


def test_a_broken_table_gives_a_page_of_its_diagnostics_and_no_grid(tmp_path, capsys):
    script = write(tmp_path, SCENE, "scene.kvs")
    table = tmp_path / "t.csv"
    table.write_text("mood,steps\ndusk\n", encoding="utf-8")
    page_file = tmp_path / "grid.html"
    code, _, _ = preview(capsys, script, "--vars-table", str(table), "-o", str(page_file))
    assert code == Exit.SCRIPT_ERRORS
    page = parse(page_file.read_text(encoding="utf-8"))
    assert not page.all(id="variants")
    [shown] = page.by_id("diagnostics").all("li", "diagnostic")
    assert shown.attrs["data-code"] == "KVS-vars-table"


def test_a_row_that_repeats_another_is_priced_once_as_plan_and_run_count_it(tmp_path, capsys):
    script = write(tmp_path, SCENE, "scene.kvs")
    table = tmp_path / "t.csv"
    table.write_text("mood,steps\ndusk,4\nnoon,6\ndusk,4\n", encoding="utf-8")
    page_file = tmp_path / "grid.html"
    code, _, _ = preview(capsys, script, "--vars-table", str(table), "-o", str(page_file))
    assert code == Exit.OK
    page = parse(page_file.read_text(encoding="utf-8"))
    rows = page.by_id("variants").all("tr", "variant")
    assert rows[2].one("small", "same-as").text().startswith("the same request as row 1")
    assert not rows[1].all("small", "same-as")
    results = results_of([script], Options(), str(table))
    once = pricing.add([results[0].estimate.quote, results[1].estimate.quote])
    assert page.by_id("variants-total").text() == pricing.usd_quote(once)
    capsys.readouterr()
    main(["plan", script, "--vars-table", str(table)])
    assert f"total: {pricing.usd_quote(once)}" in capsys.readouterr().out
