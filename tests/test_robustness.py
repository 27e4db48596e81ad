"""Hostile and broken input: always diagnostics, never a traceback, never a hang.

Each case goes through the real CLI in-process (`main(["check", path])`) and through the
pipeline, so both the diagnostic and the user-visible behaviour are pinned.
"""

from __future__ import annotations

import json

import pytest
from helpers import codes, only, run, where, write

from klingspec.cli import main


def check_cli(capsys, path, *extra):
    """Run `klingspec check` in-process; return (code, stdout, stderr) and assert it stayed calm."""
    code = main(["check", *extra, path])
    out, err = capsys.readouterr()
    assert code in (0, 1), (code, err)
    assert "Traceback" not in out + err
    assert "internal error" not in err, err
    assert "KVS-internal" not in out + err, out
    return code, out, err


def check_json(capsys, path) -> dict:
    code, out, _ = check_cli(capsys, path, "--format", "json")
    payload = json.loads(out)
    assert (code == 1) == (payload["errors"] > 0)
    return payload


def test_garbage_bytes(tmp_path, capsys):
    path = write(tmp_path, bytes(range(1, 32)) + b"\x80\x81garbage\xfe\xff" * 50)
    payload = check_json(capsys, path)
    assert payload["errors"] >= 1
    assert payload["diagnostics"][0]["code"] == "KVS-encoding"


def test_printable_garbage_gives_syntax_errors(tmp_path, capsys):
    path = write(tmp_path, "}{ ][ ==== ,,, @@ !! ~~\n%%% $$ ^^ &&\n" * 5)
    payload = check_json(capsys, path)
    first = payload["diagnostics"][0]
    assert first["code"] == "KVS-syntax-unexpected"
    assert (first["line"], first["column"]) == (1, 1)
    assert len(payload["diagnostics"]) <= 21  # the error cap (20) plus KVS-syntax-too-many


def test_binary_file_with_nul(tmp_path, capsys):
    path = write(tmp_path, b'shot a 5s "x"\nab\x00cd\n')
    payload = check_json(capsys, path)
    [diagnostic] = payload["diagnostics"]
    assert diagnostic["code"] == "KVS-encoding"
    assert (diagnostic["line"], diagnostic["column"]) == (2, 3)
    assert "NUL" in diagnostic["message"]


def test_invalid_utf8_position(tmp_path, capsys):
    path = write(tmp_path, b'shot a 5s "ok"\nshot b 5s "caf\xe9 au lait"\n')
    payload = check_json(capsys, path)
    [diagnostic] = payload["diagnostics"]
    assert diagnostic["code"] == "KVS-encoding"
    assert (diagnostic["line"], diagnostic["column"]) == (2, 15)
    assert "0xE9" in diagnostic["message"]


def test_invalid_utf8_after_multibyte_characters(tmp_path):
    # columns count code points: "é" and "東" before the bad byte are one column each
    result = run(tmp_path, 'shot a 5s "é東x\xff"\n'.encode().replace(b"\xc3\xbf", b"\xff"))
    diagnostic = only(result, "KVS-encoding")
    assert diagnostic.span.start_position == (1, 15)


def test_truncated_utf8_at_end_of_file(tmp_path):
    result = run(tmp_path, b'shot a 5s "x"\n# caf' + b"\xc3")
    assert where(only(result, "KVS-encoding"))[:2] == (2, 6)


def test_empty_file(tmp_path, capsys):
    path = write(tmp_path, b"")
    payload = check_json(capsys, path)
    assert [d["code"] for d in payload["diagnostics"]] == ["KVS-no-shots"]
    assert (payload["diagnostics"][0]["line"], payload["diagnostics"][0]["column"]) == (1, 1)


def test_whitespace_only_file(tmp_path):
    assert codes(run(tmp_path, "   \n\t\n\r\n  ")) == ["KVS-no-shots"]


def test_fifty_megabyte_file_is_refused_fast(tmp_path, capsys):
    path = write(tmp_path, b"")
    with open(path, "wb") as handle:
        line = b'shot a 5s "' + b"x" * 1000 + b'"\n'
        handle.write(line * (50 * 1024 * 1024 // len(line) + 1))
    payload = check_json(capsys, path)
    assert [d["code"] for d in payload["diagnostics"]] == ["KVS-file-too-large"]


def test_large_used_file_is_refused_at_the_use(tmp_path):
    big = write(tmp_path, b"")
    with open(big, "wb") as handle:
        handle.write(b"# " + b"x" * (20 * 1024 * 1024) + b"\n")
    import os

    os.rename(big, os.path.join(str(tmp_path), "big.kvs"))
    result = run(tmp_path, 'use "big.kvs"\nshot a 5s "x"\n')
    diagnostic = only(result, "KVS-file-too-large")
    assert diagnostic.path.endswith("big.kvs")
    assert result.request is None


def test_ten_thousand_shots(tmp_path, capsys):
    text = "".join(f'shot s{i} 5s "scene {i}"\n' for i in range(10_000))
    path = write(tmp_path, text)
    payload = check_json(capsys, path)
    found = [d for d in payload["diagnostics"] if d["code"] == "KVS-total-duration"]
    assert len(found) == 1
    assert found[0]["line"] == 4  # 5 + 5 + 5 = 15 is fine; the 4th shot crosses


def test_unbalanced_nested_lists_in_let(tmp_path, capsys):
    path = write(tmp_path, "let x = " + "[" * 10_000 + '\nshot a 5s "x"\n')
    payload = check_json(capsys, path)
    assert payload["errors"] >= 1
    assert payload["diagnostics"][0]["code"].startswith("KVS-syntax")
    assert payload["diagnostics"][0]["line"] == 1


def test_moderately_nested_list_in_let_works(tmp_path):
    text = "let x = " + "[" * 10 + '"deep"' + "]" * 10 + '\nshot a 5s "{{ x | length }}"\n'
    result = run(tmp_path, text)
    assert result.ok and result.request.body["prompt"] == "1"


def test_deeply_nested_balanced_lists_in_let(tmp_path, capsys):
    path = write(tmp_path, "let x = " + "[" * 10_000 + "]" * 10_000 + '\nshot a 5s "x"\n')
    payload = check_json(capsys, path)
    assert [d["code"] for d in payload["diagnostics"]] == ["KVS-syntax-nesting"]
    assert payload["diagnostics"][0]["line"] == 1


def test_template_that_loops_forever(tmp_path, capsys):
    text = 'shot a 5s "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"\n'
    path = write(tmp_path, text)
    payload = check_json(capsys, path)
    [diagnostic] = payload["diagnostics"]
    assert diagnostic["code"] == "KVS-template-limit"
    assert (diagnostic["line"], diagnostic["column"]) == (1, 11)


@pytest.mark.parametrize(
    "template",
    [
        "{{ 'x' * 99999 }}{{ 'x' * 99999 }}",
        "{% for i in range(1000) %}{{ 'x' * 10000 }}{% endfor %}",
        "{{ 'x' * 10000000 }}",
        "{{ (range(10000) | list) * 10000 }}",
        "{{ range(100000) | join(',') }}",
    ],
    ids=["two-big", "loop-big", "repeat-huge", "list-repeat", "join"],
)
def test_template_that_expands_to_megabytes(tmp_path, capsys, template):
    path = write(tmp_path, f'shot a 5s "{template}"\n')
    payload = check_json(capsys, path)
    assert [d["code"] for d in payload["diagnostics"]] == ["KVS-template-limit"]


def test_expression_only_template_is_time_bounded(tmp_path):
    """A `{{ }}` calling a slow global is stopped by the bound, not waited for."""
    result = run(tmp_path, 'shot a 5s "{{ lipsum(50000) }}"\n')
    assert codes(result) == ["KVS-template-limit"]


def test_single_filter_cannot_allocate_past_the_bound(tmp_path):
    import tracemalloc

    text = "let n = 50000000\nshot a 5s \"{{ 'x' | center(n) }}\"\n"
    run(tmp_path, text.replace("50000000", "5"))  # warm caches outside the measurement
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = run(tmp_path, text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert codes(result) == ["KVS-template-limit"]
    assert peak < 20_000_000


def test_recursive_macro(tmp_path, capsys):
    path = write(tmp_path, 'shot a 5s "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(1) }}"\n')
    payload = check_json(capsys, path)
    assert [d["code"] for d in payload["diagnostics"]] == ["KVS-template-limit"]


def test_mutually_recursive_macros(tmp_path):
    text = 'shot a 5s "{% macro f() %}{{ g() }}{% endmacro %}{% macro g() %}{{ f() }}{% endmacro %}{{ f() }}"\n'
    assert codes(run(tmp_path, text)) == ["KVS-template-limit"]


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ lipsum.__globals__ }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ range.__self__ }}",
    ],
    ids=["class", "subclasses", "globals", "cycler", "self"],
)
def test_sandbox_escape_attempts(tmp_path, capsys, template):
    path = write(tmp_path, f'shot a 5s "{template}"\n')
    payload = check_json(capsys, path)
    assert payload["errors"] >= 1
    found = {d["code"] for d in payload["diagnostics"]}
    assert found <= {"KVS-template-unsafe", "KVS-template-undefined", "KVS-template-error"}
    assert "KVS-template-unsafe" in found or "KVS-template-undefined" in found


def test_sandbox_escape_class_is_unsafe(tmp_path):
    diagnostic = only(run(tmp_path, "shot a 5s \"{{ ''.__class__ }}\"\n"), "KVS-template-unsafe")
    assert diagnostic.span.start_position == (1, 11)


def test_huge_exponent_is_refused(tmp_path):
    assert codes(run(tmp_path, 'shot a 5s "{{ 2 ** 100000 }}"\n')) == ["KVS-template-limit"]


def test_very_long_single_line(tmp_path, capsys):
    path = write(tmp_path, 'shot a 5s "' + "word " * 200_000 + '"\n')
    payload = check_json(capsys, path)
    assert [d["code"] for d in payload["diagnostics"]] == ["KVS-prompt-length"]


def test_unterminated_triple_string_at_end(tmp_path, capsys):
    path = write(tmp_path, 'shot a 5s """never closed\nmore text\n')
    payload = check_json(capsys, path)
    assert payload["errors"] >= 1
    assert payload["diagnostics"][0]["line"] == 1


def test_lone_carriage_returns_and_form_feeds(tmp_path, capsys):
    path = write(tmp_path, b'shot a 5s "x"\r\r\x0c\nshot b 5s "y"\r\n')
    code, _, _ = check_cli(capsys, path)
    assert code in (0, 1)


def test_check_on_a_directory_and_a_missing_file(tmp_path, capsys):
    write(tmp_path, 'shot a 5s "x"\n', "sub/a.kvs")
    code, out, err = check_cli(capsys, str(tmp_path / "sub"))
    assert code == 0
    code, out, _err = check_cli(capsys, str(tmp_path / "missing.kvs"))
    assert code == 1 and "KVS-file-not-found" in out


def test_compile_never_tracebacks_on_hostile_input(tmp_path, capsys):
    for i, data in enumerate([b"\x00" * 100, b"\xff\xfe", "let x = " + "[" * 5000, "shot " * 5000]):
        path = write(tmp_path, data, f"h{i}.kvs")
        code = main(["compile", path])
        out, err = capsys.readouterr()
        assert code == 1
        assert out == ""
        assert "Traceback" not in err and "internal error" not in err and "KVS-internal" not in err
