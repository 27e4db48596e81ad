"""Variant batches (`--vars-table`, klingspec/variants.py): one script, one render per row.

Each row's body is compared with the body the same script compiles to with that row's
values given as `--var` options (another route to the same request); errors are located in
the table with the row and column named; `plan` and `run` go through the real ledger and
the sandbox over HTTP.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import write

from klingspec import pricing
from klingspec.cli import main
from klingspec.cli.options import results_of
from klingspec.cli.report import Exit
from klingspec.pipeline import Options, run_pipeline
from klingspec.run.ledger import Ledger
from klingspec.variants import read_table

SCENE = 'let mood = "dawn"\nlet steps = 5\nlet wet = false\n\nshot a 5s "A door at {{ mood }}, {{ steps }} steps{{ \', rain\' if wet }}"\n'


def run(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def scene(tmp_path) -> str:
    return write(tmp_path, SCENE, "scene.kvs")


def table(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_each_csv_row_compiles_to_the_body_its_values_give_as_var_options(scene, tmp_path):
    csv = table(tmp_path, "t.csv", 'mood,steps,wet\ndusk,4,true\n"rain, heavy",,false\n')
    results = results_of([scene], Options(), csv)
    assert [r.variant for r in results] == ["row 1", "row 2"]
    expected = [
        run_pipeline(scene, Options(("mood=dusk", "steps=4", "wet=true"))),
        run_pipeline(scene, Options(("mood=rain, heavy", "wet=false"))),  # an empty cell: the default stands
    ]
    assert [r.request.body for r in results] == [e.request.body for e in expected]
    assert "dusk, 4 steps, rain" in results[0].request.body["prompt"]
    assert "rain, heavy, 5 steps" in results[1].request.body["prompt"]


def test_json_lines_rows_keep_their_types_and_a_var_option_still_wins(scene, tmp_path):
    jsonl = table(tmp_path, "t.jsonl", '{"mood": "dusk", "steps": 4}\n\n{"wet": true}\n')
    results = results_of([scene], Options(("steps=9",)), jsonl)
    assert [r.variant for r in results] == ["row 1", "row 2"]
    prompts = [r.request.body["prompt"] for r in results]
    assert prompts == ["A door at dusk, 9 steps", "A door at dawn, 9 steps, rain"]


def test_a_cell_of_the_wrong_kind_is_located_in_the_table_with_its_row_and_column(scene, tmp_path, capsys):
    csv = table(tmp_path, "t.csv", "mood,steps\ndusk,4\nnoon,x\n")
    code, out, err = run(capsys, "check", scene, "--vars-table", csv, "--format", "json")
    assert code == Exit.SCRIPT_ERRORS
    [diagnostic] = json.loads(out)["diagnostics"]
    assert diagnostic["code"] == "KVS-var-type"
    assert "`x` in column `steps`" in diagnostic["message"] and "row 2" in diagnostic["message"]
    places = {(r["path"], r["line"], r["column"]) for r in diagnostic["related"]}
    assert (csv, 3, 6) in places  # the cell `x`: the table's line 3 (row 2), column 6


def test_a_script_error_a_row_causes_notes_the_row_and_one_every_row_has_is_told_once(tmp_path, capsys):
    script = write(tmp_path, 'let mood = "dawn"\nshot a 20s "at {{ mood }}"\nshot b 3s "{{ mood }}"\n', "s.kvs")
    jsonl = table(tmp_path, "t.jsonl", '{"mood": "dusk"}\n{"mood": ""}\n')  # row 2: an empty prompt
    results = results_of([script], Options(), jsonl)
    codes = [[d.code for d in r.diagnostics] for r in results]
    assert [c.count("KVS-shot-duration") for c in codes] == [1, 1]  # every row has it: no row renders
    assert not any(r.ok for r in results)
    shared = [d for r in results for d in r.diagnostics if d.code == "KVS-shot-duration"]
    assert not any("row" in note.message for d in shared for note in d.related)  # not the values' doing
    [empty] = [d for d in results[1].diagnostics if d.code == "KVS-prompt-empty"]
    assert any("row 2" in r.message for r in empty.related)
    assert not any(d.code == "KVS-prompt-empty" for d in results[0].diagnostics)
    code, out, err = run(capsys, "check", script, "--vars-table", jsonl)
    assert code == Exit.SCRIPT_ERRORS and "2 rows have errors: row 1, row 2" in err
    assert out.count("error[KVS-shot-duration]") == 1 and out.count("error[KVS-prompt-empty]") == 1


@pytest.mark.parametrize(
    ("name", "text", "words"),
    [
        ("cells.csv", "mood,steps\ndusk,4\nnoon\n", "row 2 of"),
        ("names.csv", "mood,2nd\ndusk,4\n", "column `2nd`"),
        ("twice.csv", "mood,mood\na,b\n", "appears twice"),
        ("empty.csv", "mood\n", "has no rows"),
        ("lines.jsonl", '{"mood": "a"}\n[1]\n', "row 2 of"),
        ("broken.jsonl", '{"mood": "a"\n', "row 1 of"),
    ],
)
def test_a_malformed_table_renders_no_row(name, text, words, scene, tmp_path, capsys):
    path = table(tmp_path, name, text)
    variants, problems = read_table(path)
    assert variants == [] and problems and all(p.code == "KVS-vars-table" for p in problems)
    assert words in problems[0].message
    assert problems[0].span.path == path
    code, _, err = run(capsys, "run", "--sandbox", "--yes", scene, "--vars-table", path)
    assert code == Exit.SCRIPT_ERRORS and "KVS-vars-table" in err
    assert not (tmp_path / "renders").exists()


def test_compile_writes_one_body_per_row_named_by_row(scene, tmp_path, capsys):
    csv = table(tmp_path, "t.csv", "mood\ndusk\nnoon\n")
    folder = tmp_path / "bodies"
    code, _, err = run(capsys, "compile", scene, "--vars-table", csv, "-o", str(folder))
    assert code == Exit.OK and "wrote 2 bodies" in err
    assert sorted(p.name for p in folder.iterdir()) == ["scene.row-1.json", "scene.row-2.json"]
    for row, mood in ((1, "dusk"), (2, "noon")):
        code, alone, _ = run(capsys, "compile", scene, "--var", f"mood={mood}")
        assert (folder / f"scene.row-{row}.json").read_text(encoding="utf-8") == alone
    bad = table(tmp_path, "bad.csv", "steps\n4\nx\n")
    code, _, _ = run(capsys, "compile", scene, "--vars-table", bad, "-o", str(tmp_path / "none"))
    assert code == Exit.SCRIPT_ERRORS and not (tmp_path / "none").exists()  # all rows or none


def test_plan_shows_each_variant_and_the_total_and_run_renders_them_then_plan_reuses(scene, tmp_path, capsys):
    csv = table(tmp_path, "t.csv", "mood,steps\ndusk,4\nnoon,6\nnight,8\n")
    code, out, _ = run(capsys, "plan", scene, "--vars-table", csv, "--sandbox", "--format", "json")
    assert code == Exit.OK
    planned = json.loads(out)
    assert [p["variant"] for p in planned["plans"]] == ["row 1", "row 2", "row 3"]
    assert len({p["request_hash"] for p in planned["plans"]}) == 3
    one = pricing.usd_number(run_pipeline(scene).estimate.quote.amount)
    assert planned["new_usd"] == pytest.approx(3 * one)
    code, out, _ = run(capsys, "plan", scene, "--vars-table", csv, "--sandbox")
    assert f"{scene} [row 2]" in out and "total: $3.36" in out

    code, _, err = run(capsys, "run", "--sandbox", "--yes", "--concurrency", "2", scene, "--vars-table", csv)
    assert code == Exit.OK, err
    with Ledger() as ledger:
        renders = ledger.renders()
        assert len(renders) == 3 and {r.request_hash for r in renders} == {p["request_hash"] for p in planned["plans"]}
        files = [f for r in renders for f in ledger.all_files(r.id)]
    assert len({f.path for f in files}) == 3 and all(Path(f.path).is_file() for f in files)

    code, out, _ = run(capsys, "plan", scene, "--vars-table", csv, "--sandbox", "--format", "json")
    assert json.loads(out)["new_usd"] == 0  # every row is in the ledger already
    code, _, _ = run(capsys, "run", "--sandbox", "--yes", scene, "--vars-table", csv)
    with Ledger() as ledger:
        assert len(ledger.renders()) == 3  # nothing rendered twice


def test_the_options_that_do_not_go_with_a_table(scene, tmp_path, capsys):
    csv = table(tmp_path, "t.csv", "mood\ndusk\n")
    assert run(capsys, "check", scene, "--vars-table", csv, "--online")[0] == Exit.USAGE
    assert run(capsys, "plan", scene, "--vars-table", csv, "--compare", "all")[0] == Exit.USAGE


def test_csv_is_read_as_csv_is_written_quotes_newlines_and_crlf_with_each_cell_at_its_place(tmp_path):
    text = 'mood , steps\r\n"a door\nopens, slowly",4\r\n"say ""hi""\u2028twice", 6 \r\n\r\n'
    path = table(tmp_path, "t.csv", text)
    variants, problems = read_table(path)
    assert problems == []
    values = [{v.name: v.value for v in variant.variables} for variant in variants]
    assert values == [{"mood": "a door\nopens, slowly", "steps": "4"}, {"mood": 'say "hi"\u2028twice', "steps": "6"}]
    cells = [(v.name, v.span.text) for variant in variants for v in variant.variables]
    assert cells == [
        ("mood", "a door\nopens, slowly"),
        ("steps", "4"),
        ("mood", 'say ""hi""\u2028twice'),
        ("steps", "6"),
    ]
    assert [variant.span.start_position[0] for variant in variants] == [2, 4]  # a record may span lines


def test_a_json_key_is_found_where_it_is_a_key_however_it_is_escaped(tmp_path):
    path = table(tmp_path, "t.jsonl", '{"title": "mood", "mood": "x", "caf\\u00e9": 1}\n')
    variants, problems = read_table(path)
    [mood] = [v for v in variants[0].variables if v.name == "mood"]
    assert mood.span.start == '{"title": "mood", '.__len__() and mood.span.text == '"mood"'
    assert problems == []
    [cafe] = [v for v in variants[0].variables if v.name == "café"]
    assert cafe.span.text == '"caf\\u00e9"'  # found as written, escaped


def test_compile_clears_an_earlier_tables_rows_and_wants_a_folder(scene, tmp_path, capsys):
    folder = tmp_path / "bodies"
    three = table(tmp_path, "three.csv", "mood\na\nb\nc\n")
    assert run(capsys, "compile", scene, "--vars-table", three, "-o", str(folder))[0] == Exit.OK
    (folder / "notes.txt").write_text("mine", encoding="utf-8")
    one = table(tmp_path, "one.csv", "mood\nz\n")
    assert run(capsys, "compile", scene, "--vars-table", one, "-o", str(folder))[0] == Exit.OK
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt", "scene.row-1.json"]
    assert '"A door at z, 5 steps"' in (folder / "scene.row-1.json").read_text(encoding="utf-8")
    assert run(capsys, "compile", scene, "--vars-table", one, "-o", "-")[0] == Exit.USAGE
