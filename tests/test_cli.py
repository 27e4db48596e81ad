"""klingspec.cli: the command-line contract (docs/cli.md) for check, compile and plan, in-process."""

from __future__ import annotations

import json

import pytest
from helpers import write

from klingspec.cli import COMMANDS, main

GOOD = 'generations 2\nshot arrival 6s "x"\nshot sip 5s "y"\n'
WARN = 'image cafe = "https://e.com/c.png"\nshot a 5s "x"\n'
BAD = 'shot arrival 6s "x"\nshot sip 10s "y"\n'


def cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


@pytest.mark.parametrize("command", ["check", "compile", "plan"])
@pytest.mark.parametrize("text, expected", [(GOOD, 0), (WARN, 0), (BAD, 1)], ids=["good", "warning", "error"])
def test_exit_codes(tmp_path, capsys, command, text, expected):
    code, _, _ = cli(capsys, command, write(tmp_path, text))
    assert code == expected


@pytest.mark.parametrize(
    "args",
    [
        ["check"],
        ["compile"],
        ["plan"],
        ["check", "--bogus", "x.kvs"],
        ["nosuchcommand"],
        ["check", "--format", "xml", "x.kvs"],
        ["compile", "--format", "sarif", "x.kvs"],
        ["compile", "a.kvs", "b.kvs"],
    ],
)
def test_usage_errors_exit_2(capsys, args):
    code, _out, err = cli(capsys, *args)
    assert code == 2
    assert "Usage:" in err or "Error:" in err


def test_help_and_version(capsys):
    assert cli(capsys, "--help")[0] == 0
    code, out, _ = cli(capsys, "--version")
    assert code == 0 and "0.1.0" in out


def test_check_text_output(tmp_path, capsys):
    path = write(tmp_path, BAD)
    code, out, err = cli(capsys, "check", path)
    assert code == 1
    assert out.startswith(f"{path}:2:10: error[KVS-total-duration]: shots add up to 16 s")
    assert '2 | shot sip 10s "y"' in out
    assert "^^^" in out and "= help:" in out
    assert "1 file checked: 1 error, 0 warnings" in err


def test_check_several_files_and_a_folder(tmp_path, capsys):
    write(tmp_path, GOOD, "d/a.kvs")
    write(tmp_path, BAD, "d/sub/b.kvs")
    write(tmp_path, "not a script", "d/notes.txt")
    code, _out, err = cli(capsys, "check", str(tmp_path / "d"))
    assert code == 1
    assert "2 files checked: 1 error" in err
    code, _, err = cli(capsys, "check", str(tmp_path / "d" / "a.kvs"), str(tmp_path / "d" / "a.kvs"))
    assert code == 0 and "2 files checked" in err


def test_check_accepts_a_library_but_compile_does_not(tmp_path, capsys):
    path = write(tmp_path, 'let mood = "dusk"\nimage cafe = "https://e.com/c.png"\n')
    assert cli(capsys, "check", path)[0] == 0
    assert cli(capsys, "compile", path)[0] == 1
    assert cli(capsys, "plan", path)[0] == 1


def test_check_json(tmp_path, capsys):
    path = write(tmp_path, BAD)
    code, out, _ = cli(capsys, "check", "--format", "json", path)
    payload = json.loads(out)
    assert code == 1
    assert set(payload) == {"diagnostics", "errors", "warnings"}
    assert payload["errors"] == 1 and payload["warnings"] == 0
    [d] = payload["diagnostics"]
    assert (d["path"], d["line"], d["column"], d["end_line"], d["end_column"]) == (path, 2, 10, 2, 13)
    assert d["severity"] == "error" and d["code"] == "KVS-total-duration"
    assert "Total shot duration (16s) exceeds maximum allowed (15s)" in d["help"]


def test_check_json_clean(tmp_path, capsys):
    code, out, _ = cli(capsys, "check", "--format", "json", write(tmp_path, GOOD))
    assert code == 0 and json.loads(out) == {"diagnostics": [], "errors": 0, "warnings": 0}


def test_check_sarif(tmp_path, capsys):
    code, out, _ = cli(capsys, "check", "--format", "sarif", write(tmp_path, BAD))
    sarif = json.loads(out)
    assert code == 1 and sarif["version"] == "2.1.0"
    assert sarif["runs"][0]["results"][0]["ruleId"] == "KVS-total-duration"


def test_check_vars(tmp_path, capsys):
    path = write(tmp_path, 'shot a 5s "{{ mood }}"\n')
    assert cli(capsys, "check", path)[0] == 1
    assert cli(capsys, "check", "--var", "mood=dusk", path)[0] == 0
    vars_file = write(tmp_path, '{"mood": "dusk"}', "v.json")
    assert cli(capsys, "check", "--vars", vars_file, path)[0] == 0


def test_compile_stdout_is_the_body(tmp_path, capsys):
    code, out, _err = cli(capsys, "compile", write(tmp_path, GOOD))
    assert code == 0
    body = json.loads(out)
    assert body == {
        "model": "kling-video-o3-pro-reference-to-video",
        "multi_prompt": [{"prompt": "x", "duration": 6}, {"prompt": "y", "duration": 5}],
    }
    assert "num_generations" not in body


def test_compile_warnings_go_to_stderr(tmp_path, capsys):
    code, out, err = cli(capsys, "compile", write(tmp_path, WARN))
    assert code == 0
    json.loads(out)  # stdout stays pure JSON
    assert "warning[KVS-binding-unused]" in err


def test_compile_output_file(tmp_path, capsys):
    target = tmp_path / "out.json"
    code, out, _ = cli(capsys, "compile", write(tmp_path, GOOD), "-o", str(target))
    assert code == 0 and out == ""
    assert json.loads(target.read_text())["multi_prompt"][0]["duration"] == 6
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_compile_o_writes_nothing_on_errors(tmp_path, capsys):
    target = tmp_path / "out.json"
    code, out, err = cli(capsys, "compile", write(tmp_path, BAD), "-o", str(target))
    assert code == 1 and out == ""
    assert not target.exists()
    assert "KVS-total-duration" in err


def test_compile_o_keeps_an_existing_file_on_errors(tmp_path, capsys):
    target = tmp_path / "out.json"
    target.write_text("previous")
    assert cli(capsys, "compile", write(tmp_path, BAD), "-o", str(target))[0] == 1
    assert target.read_text() == "previous"


def test_compile_json_diagnostics_on_stderr(tmp_path, capsys):
    code, out, err = cli(capsys, "compile", "--format", "json", write(tmp_path, BAD))
    assert code == 1 and out == ""
    assert json.loads(err)["errors"] == 1


def test_plan_json(tmp_path, capsys):
    path = write(tmp_path, GOOD)
    code, out, _ = cli(capsys, "plan", "--format", "json", path)
    assert code == 0
    plan = json.loads(out)
    assert plan["path"] == path
    assert plan["model"] == "kling-video-o3-pro-reference-to-video"
    assert plan["shots"][0] | {"cost_usd": None} == {"name": "arrival", "line": 2, "duration": 6, "cost_usd": None}
    assert [(s["name"], s["line"], s["duration"]) for s in plan["shots"]] == [("arrival", 2, 6), ("sip", 3, 5)]
    assert plan["total_seconds"] == 11
    assert plan["price_per_second"] == 0.224
    assert plan["generations"] == 2
    assert plan["total_usd"] == 4.93
    assert plan["request_hash"].startswith("sha256:")


def test_plan_json_unknown_price(tmp_path, capsys):
    code, out, _ = cli(
        capsys, "plan", "--format", "json", write(tmp_path, 'model kling-video-o3-omni\nshot a 5s "x"\n')
    )
    plan = json.loads(out)
    assert code == 0
    assert plan["price_per_second"] is None and plan["total_usd"] is None
    assert plan["total_seconds"] == 5


def test_plan_several_files_json(tmp_path, capsys):
    a = write(tmp_path, GOOD, "a.kvs")
    b = write(tmp_path, 'shot a 5s "x"\n', "b.kvs")
    code, out, _ = cli(capsys, "plan", "--format", "json", a, b)
    payload = json.loads(out)
    assert code == 0
    assert [p["path"] for p in payload["plans"]] == [a, b]
    assert payload["total_usd"] == pytest.approx(4.93 + 1.12)


def test_plan_o_saves_bodies_and_hashes(tmp_path, capsys):
    path = write(tmp_path, GOOD)
    saved = tmp_path / "plan.json"
    code, out, err = cli(capsys, "plan", path, "-o", str(saved))
    assert code == 0
    assert "saved 1 request" in err
    data = json.loads(saved.read_text())
    [request] = data["requests"]
    compiled = json.loads(_compile(capsys, path))
    assert request["body"] == compiled
    assert request["num_generations"] == 2
    assert request["path"] == path
    code, out, _ = cli(capsys, "plan", "--format", "json", path)
    assert request["request_hash"] == json.loads(out)["request_hash"]
    assert list(request["inputs"]) == [path]
    assert request["total_usd"] == 4.93


def _compile(capsys, path):
    code, out, _ = cli(capsys, "compile", path)
    assert code == 0
    return out


def test_plan_o_writes_nothing_on_errors(tmp_path, capsys):
    saved = tmp_path / "plan.json"
    code, _, _ = cli(capsys, "plan", write(tmp_path, BAD), "-o", str(saved))
    assert code == 1 and not saved.exists()


def test_plan_text_table(tmp_path, capsys):
    code, out, _ = cli(capsys, "plan", write(tmp_path, GOOD))
    assert code == 0
    assert "arrival" in out and "sip" in out
    assert "$4.93" in out


def test_missing_file(tmp_path, capsys):
    code, out, err = cli(capsys, "check", str(tmp_path / "absent.kvs"))
    assert code == 1 and "KVS-file-not-found" in out
    code, out, err = cli(capsys, "compile", str(tmp_path / "absent.kvs"))
    assert code == 1 and out == "" and "KVS-file-not-found" in err


def test_python_dash_m_entry_point(tmp_path):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "klingspec", "check", write(tmp_path, BAD)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1 and "KVS-total-duration" in done.stdout


def test_no_colour_when_not_a_tty(tmp_path, capsys):
    _, out, _ = cli(capsys, "check", write(tmp_path, BAD))
    assert "\x1b[" not in out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_ends_with_examples_one_per_line(capsys, command):
    """`--help` of every command shows examples of it, each on its own line (not re-wrapped by click)."""
    code, out, _ = cli(capsys, command, "--help")
    assert code == 0
    shown = out[out.index("Examples:\n") :].splitlines()[1:]
    assert shown and all(line.startswith("    klingspec ") for line in shown), shown
    assert all(line.split()[1] in COMMANDS for line in shown)
    assert any(line.split()[1] == command for line in shown)
