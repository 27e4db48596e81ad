"""Inputs that are deep or wide: long `use` chains, deep templates, big and deep --vars
files. Each gives a located diagnostic (never KVS-internal at 1:1), and a vars file's
unused keys are one warning, not one per key."""

from __future__ import annotations

import json

import pytest
from helpers import codes, run, write

from klingspec.cli import main
from klingspec.loading import read_vars_file


def test_a_use_chain_thousands_deep_loads(tmp_path):
    depth = 2_000
    for i in range(depth):
        write(tmp_path, f'use "f{i + 1}.kvs"\nlet v{i} = "x"\n', f"f{i}.kvs")
    write(tmp_path, 'let last = "end"\n', f"f{depth}.kvs")
    result = run(tmp_path, 'use "f0.kvs"\nshot a 5s "{{ last }} {{ v1999 }}"\n')
    assert result.ok, codes(result)
    assert result.request.body["prompt"] == "end x"


def test_a_long_use_cycle_is_reported_at_its_use_and_shortened(tmp_path):
    for i in range(50):
        write(tmp_path, f'use "f{(i + 1) % 50}.kvs"\n', f"f{i}.kvs")
    result = run(tmp_path, 'use "f0.kvs"\nshot a 5s "x"\n')
    [cycle] = [d for d in result.diagnostics if d.code == "KVS-use-cycle"]
    assert cycle.span.path.endswith("f49.kvs") and cycle.span.start_position == (1, 5)
    assert "(43 more)" in cycle.message and len(cycle.message) < 200


@pytest.mark.parametrize(
    "template",
    [
        "{{ " + "(" * 80 + "1" + ")" * 80 + " }}",
        "{{ " + "[" * 200 + "]" * 200 + " }}",
        "{{ " + "-" * 500 + "1 }}",
        "{% if true %}" * 99 + "x" + "{% endif %}" * 99,
        "{% for i in [1] %}" * 99 + "x" + "{% endfor %}" * 99,
        "{{ " + "(" * 1000 + "1" + ")" * 999 + " }}",
    ],
    ids=["parentheses", "lists", "unary", "ifs", "fors", "unclosed"],
)
def test_a_deeply_nested_template_is_a_located_limit(tmp_path, template):
    result = run(tmp_path, f'shot a 5s "{template}"\n')
    [limit] = [d for d in result.diagnostics if d.code == "KVS-template-limit"]
    assert limit.span.start_position == (1, 11)
    assert "nests too deep" in limit.message
    assert "KVS-internal" not in codes(result)


# -- --vars files ------------------------------------------------------------------


def test_many_unused_vars_are_one_warning_naming_the_first(tmp_path, capsys):
    keys = {f"key{i}": f"value {i}" for i in range(3_000)}
    vars_file = write(tmp_path, json.dumps(keys, separators=(",", ":")), "vars.json")
    path = write(tmp_path, 'shot a 5s "hello"\n')
    assert main(["check", "--no-cache", "--vars", vars_file, path]) == 0
    out = capsys.readouterr().out
    assert out.count("warning[KVS-var-unused]") == 1
    assert "3,000 variables of" in out and "`key0`, `key1`, `key2`, `key3`, `key4` and 2,995 more" in out
    assert "vars.json:1:2:" in out
    assert max(len(line) for line in out.splitlines()) < 150 + 2 * len(vars_file)  # never the whole line


def test_one_unused_var_keeps_its_own_warning(tmp_path):
    vars_file = write(tmp_path, '{"used": "a", "spare": "b"}', "vars.json")
    result = run(tmp_path, 'let used = "x"\nshot a 5s "{{ used }}"\n', var_files=[vars_file])
    [unused] = result.diagnostics
    assert unused.message == "`spare` (" + vars_file + ") is not used by the script"
    assert unused.span.start_position == (1, 15)


def test_vars_keys_are_found_at_the_top_level_only(tmp_path):
    text = '{"inner": {"name": 1, "other": 2},\n "name": "x",\n "other": "y"}'
    variables, problems = read_vars_file(write(tmp_path, text, "vars.json"))
    assert not problems
    places = {var.name: var.span.start_position for var in variables}
    assert places == {"inner": (1, 2), "name": (2, 2), "other": (3, 2)}


def test_toml_vars_keys_and_tables_are_found(tmp_path):
    text = 'title = "x"\n"quoted key" = 1\n[table]\ntitle = "inner"\n'
    variables, problems = read_vars_file(write(tmp_path, text, "vars.toml"))
    assert not problems
    places = {var.name: var.span.start_position for var in variables}
    assert places == {"title": (1, 1), "quoted key": (2, 1), "table": (3, 2)}


@pytest.mark.parametrize(
    ("name", "text", "position", "words"),
    [
        ("deep.json", '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", (1, 23), "more than 16 deep"),
        ("deep.toml", "a = " + "[" * 100_000 + "]" * 100_000 + "\n", (1, 21), "more than 16 deep"),
        ("deep.json", '{"b": 1, "a": ' + "[" * 500 + "]" * 500 + "}", (1, 10), "`a` in"),
        ("big.json", '{"a": ' + "9" * 5_000 + "}", (1, 7), "a number too long"),
        ("big.toml", "a = " + "9" * 5_000 + "\n", (1, 5), "a number too long"),
    ],
    ids=["json-deeper-than-python", "toml-deeper-than-python", "deep-value", "json-number", "toml-number"],
)
def test_deep_or_huge_vars_values_are_located(tmp_path, name, text, position, words):
    vars_file = write(tmp_path, text, name)
    result = run(tmp_path, 'let a = "x"\nshot a 5s "{{ a }}"\n', var_files=[vars_file])
    [problem] = [d for d in result.diagnostics if d.code == "KVS-vars-file"]
    assert problem.span.path == vars_file
    assert problem.span.start_position == position
    assert words in problem.message
    assert "KVS-internal" not in codes(result)


def test_a_mistyped_long_value_is_shown_by_its_start(tmp_path):
    vars_file = write(tmp_path, json.dumps({"a": "x" * 100_000}), "vars.json")
    result = run(tmp_path, 'let a = ["x"]\nshot a 5s "{{ a }}"\n', var_files=[vars_file])
    [problem] = [d for d in result.diagnostics if d.code == "KVS-var-type"]
    assert len(problem.message) < 100 + len(vars_file)
