"""`# kvs: allow(CODE)`: warnings silenced on their line or the line below, never errors,
and a stale or wrong allowance reported."""

from __future__ import annotations

from helpers import codes, locate, run, where

IMAGE = 'image {name} = "https://assets.example.com/{name}.jpg"'


def test_a_trailing_allowance_silences_its_own_line_only(tmp_path):
    text = f'{IMAGE.format(name="cafe")}  # kvs: allow(KVS-binding-unused)\n{IMAGE.format(name="bar")}\nshot a 5s "x"\n'
    result = run(tmp_path, text)
    [left] = [d for d in result.diagnostics if d.code == "KVS-binding-unused"]
    assert where(left)[0] == 2  # `bar`, on the next line, still warns


def test_an_allowance_alone_on_a_line_covers_the_line_below(tmp_path):
    text = f'# kvs: allow(KVS-binding-unused)\n{IMAGE.format(name="cafe")}\n{IMAGE.format(name="bar")}\nshot a 5s "x"\n'
    result = run(tmp_path, text)
    assert [where(d)[0] for d in result.diagnostics if d.code == "KVS-binding-unused"] == [3]
    assert "KVS-allow" not in codes(result)


def test_errors_cannot_be_allowed_and_are_still_reported(tmp_path):
    text = '# kvs: allow(KVS-shot-duration)\nshot a 17s "x"\n'
    result = run(tmp_path, text)
    assert "KVS-shot-duration" in codes(result) and not result.ok
    [allow] = [d for d in result.diagnostics if d.code == "KVS-allow"]
    assert "is an error and cannot be allowed" in allow.message
    assert where(allow) == locate(text, "# kvs: allow(KVS-shot-duration)")


def test_unknown_and_stale_codes_are_reported_at_the_comment(tmp_path):
    text = 'shot a 5s "x"  # kvs: allow(KVS-nope, KVS-uri-duplicate)\n'
    messages = sorted(d.message for d in run(tmp_path, text).diagnostics if d.code == "KVS-allow")
    assert messages == [
        "`KVS-nope` is not a klingspec code",
        "nothing here raises `KVS-uri-duplicate`: this allowance is stale",
    ]


def test_a_hash_inside_a_string_is_no_allowance(tmp_path):
    text = f'{IMAGE.format(name="cafe")}\nshot a 5s "a sign reads # kvs: allow(KVS-binding-unused)"\n'
    assert "KVS-binding-unused" in codes(run(tmp_path, text))


def test_an_allowance_in_a_used_file_covers_that_file(tmp_path):
    plain = 'image cafe = "http://assets.example.com/cafe.jpg"\n'
    (tmp_path / "lib.kvs").write_text(plain)
    assert "KVS-url-http" in codes(run(tmp_path, 'use "lib.kvs"\nshot a 5s "in @cafe"\n'))
    (tmp_path / "lib.kvs").write_text(plain.rstrip("\n") + "  # kvs: allow(KVS-url-http)\n")
    result = run(tmp_path, 'use "lib.kvs"\nshot a 5s "in @cafe"\n')
    assert "KVS-url-http" not in codes(result) and "KVS-allow" not in codes(result)


def test_a_warning_the_project_raises_to_an_error_cannot_be_allowed(tmp_path):
    (tmp_path / "klingspec.toml").write_text('[severity]\nKVS-binding-unused = "error"\n')
    text = f'{IMAGE.format(name="cafe")}  # kvs: allow(KVS-binding-unused)\nshot a 5s "x"\n'
    result = run(tmp_path, text)
    assert not result.ok and result.request is None  # nothing to send: an error stands
    [allow] = [d for d in result.diagnostics if d.code == "KVS-allow"]
    assert "the project file's [severity] raises it" in allow.message
