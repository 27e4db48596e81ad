"""loading.py: files, `use` relative to the including file, cycles, --vars, encodings."""

from __future__ import annotations

import os

import pytest
from helpers import codes, errors, locate, only, run, where, write

from klingspec.loading import decode, load, load_text, parse_var_options, read_vars_file

HERO = 'element hero {\n  front "https://e.com/hero.png"\n}\n'


def test_use_is_relative_to_the_including_file(tmp_path):
    write(tmp_path, 'use "shared/places.kvs"\n' + HERO, "lib/chars.kvs")
    write(tmp_path, 'image cafe = "https://e.com/cafe.png"\n', "lib/shared/places.kvs")
    # a decoy where `shared/places.kvs` would be if resolved from the main script's folder
    write(tmp_path, 'image cafe = "https://e.com/WRONG.png"\n', "shared/places.kvs")
    result = run(tmp_path, 'use "lib/chars.kvs"\nshot a 5s "@hero at @cafe"\n')
    assert errors(result) == []
    assert result.request.body["input_image"] == ["https://e.com/cafe.png"]
    assert result.request.body["elements"] == [{"frontal_image_url": "https://e.com/hero.png"}]
    assert len(result.program.files) == 3
    assert set(map(os.path.abspath, result.program.dependencies)) == {
        str(tmp_path / "main.kvs"),
        str(tmp_path / "lib" / "chars.kvs"),
        str(tmp_path / "lib" / "shared" / "places.kvs"),
    }


def test_use_with_parent_directory(tmp_path):
    write(tmp_path, HERO, "shared/chars.kvs")
    result = run(tmp_path, 'use "../shared/chars.kvs"\nshot a 5s "@hero"\n', "scripts/main.kvs")
    assert errors(result) == []


def test_use_does_not_depend_on_the_working_directory(tmp_path, monkeypatch):
    write(tmp_path, HERO, "proj/chars.kvs")
    path = write(tmp_path, 'use "chars.kvs"\nshot a 5s "@hero"\n', "proj/main.kvs")
    monkeypatch.chdir(tmp_path)
    from klingspec.pipeline import run_pipeline

    assert errors(run_pipeline(os.path.relpath(path))) == []


def test_missing_used_file_is_reported_at_the_use(tmp_path):
    text = 'shot a 5s "x"\nuse "nope/missing.kvs"\n'
    result = run(tmp_path, text)
    diagnostic = only(result, "KVS-file-not-found")
    assert diagnostic.path.endswith("main.kvs")
    assert where(diagnostic) == locate(text, '"nope/missing.kvs"')
    assert "relative to the file that uses them" in diagnostic.help
    assert result.request is None


def test_missing_main_file(tmp_path):
    from klingspec.pipeline import run_pipeline

    result = run_pipeline(str(tmp_path / "absent.kvs"))
    assert codes(result) == ["KVS-file-not-found"]
    assert result.program is None


def test_directory_as_used_file(tmp_path):
    os.makedirs(tmp_path / "adir.kvs")
    result = run(tmp_path, 'use "adir.kvs"\nshot a 5s "x"\n')
    assert "KVS-file-unreadable" in codes(result)


def test_use_cycle(tmp_path):
    write(tmp_path, 'use "b.kvs"\nimage x = "https://e.com/x.png"\n', "a.kvs")
    write(tmp_path, 'use "a.kvs"\n', "b.kvs")
    text = 'use "a.kvs"\nshot s 5s "@x"\n'
    result = run(tmp_path, text)
    diagnostic = only(result, "KVS-use-cycle")
    assert diagnostic.path.endswith("b.kvs")
    assert diagnostic.span.start_position == (1, 5)
    assert "a.kvs -> b.kvs -> a.kvs" in diagnostic.message


def test_self_use_is_a_cycle(tmp_path):
    text = 'use "main.kvs"\nshot s 5s "x"\n'
    diagnostic = only(run(tmp_path, text), "KVS-use-cycle")
    assert where(diagnostic) == locate(text, '"main.kvs"')


def test_diamond_use_reads_once(tmp_path):
    write(tmp_path, 'image x = "https://e.com/x.png"\n', "base.kvs")
    write(tmp_path, 'use "base.kvs"\n', "left.kvs")
    write(tmp_path, 'use "base.kvs"\n', "right.kvs")
    result = run(tmp_path, 'use "left.kvs"\nuse "right.kvs"\nshot s 5s "@x"\n')
    assert errors(result) == [] and "KVS-name-duplicate" not in codes(result)
    assert result.request.body["input_image"] == ["https://e.com/x.png"]


def test_used_file_shots_and_settings_are_ignored_with_warning(tmp_path):
    write(tmp_path, 'aspect 1:1\nshot lib 5s "from the library"\nlet mood = "dusk"\n', "lib.kvs")
    result = run(tmp_path, 'use "lib.kvs"\nshot a 5s "{{ mood }}"\n')
    diagnostic = only(result, "KVS-use-ignored")
    assert diagnostic.path.endswith("lib.kvs") and diagnostic.span.start_position == (1, 1)
    assert result.request.body == {"model": "kling-video-o3-pro-reference-to-video", "prompt": "dusk", "duration": 5}


def test_syntax_error_in_used_file_points_into_it(tmp_path):
    write(tmp_path, 'let mood "dusk"\n', "lib.kvs")
    result = run(tmp_path, 'use "lib.kvs"\nshot a 5s "x"\n')
    diagnostic = only(result, "KVS-syntax-unexpected")
    assert diagnostic.path.endswith("lib.kvs") and diagnostic.span.start_position == (1, 10)


def test_bom_is_dropped_and_columns_unshifted(tmp_path):
    text = 'aspect 4:3\nshot a 5s "x"\n'
    result = run(tmp_path, b"\xef\xbb\xbf" + text.encode())
    diagnostic = only(result, "KVS-aspect-ratio")
    assert where(diagnostic) == (1, 8, 1, 11)
    assert diagnostic.span.source.text == text


def test_decode_reports_first_bad_byte():
    _source, [problem] = decode("x.kvs", b"ok\nab\xc3\x28")
    assert problem.code == "KVS-encoding"
    assert problem.span.start_position == (2, 3)


def test_load_text_uses_overlay(tmp_path):
    write(tmp_path, HERO, "chars.kvs")
    program, problems = load_text(str(tmp_path / "unsaved.kvs"), 'use "chars.kvs"\nshot a 5s "@hero"\n')
    assert problems == []
    assert len(program.files) == 2 and program.main.source.name.endswith("unsaved.kvs")


# -- --var and --vars ----------------------------------------------------------------------


def test_var_options_parse():
    found, problems = parse_var_options(["mood=dusk", "empty=", "eq=a=b"])
    assert problems == []
    assert [(v.name, v.value) for v in found] == [("mood", "dusk"), ("empty", ""), ("eq", "a=b")]


@pytest.mark.parametrize("option", ["novalue", "=x", "bad name=1", "1x=2"])
def test_var_option_errors(option):
    found, [problem] = parse_var_options([option])
    assert found == [] and problem.code == "KVS-var-syntax"
    assert option in problem.message


def test_vars_json(tmp_path):
    path = write(tmp_path, '{"mood": "dusk", "n": 3, "xs": ["a", "b"]}', "v.json")
    found, problems = read_vars_file(path)
    assert problems == []
    assert {v.name: v.value for v in found} == {"mood": "dusk", "n": 3, "xs": ["a", "b"]}


def test_vars_toml(tmp_path):
    path = write(tmp_path, 'mood = "dusk"\nn = 3\n', "v.toml")
    found, problems = read_vars_file(path)
    assert problems == []
    assert {v.name: v.value for v in found} == {"mood": "dusk", "n": 3}
    assert found[1].span.start_position == (2, 1)


def test_vars_json_error_position(tmp_path):
    path = write(tmp_path, '{\n  "mood": "dusk",\n  bad\n}\n', "v.json")
    _, [problem] = read_vars_file(path)
    assert problem.code == "KVS-vars-file"
    assert problem.span.start_position == (3, 3)
    assert "not valid JSON" in problem.message


def test_vars_toml_error_position(tmp_path):
    path = write(tmp_path, 'mood = "dusk"\n\nn = = 3\n', "v.toml")
    _, [problem] = read_vars_file(path)
    assert problem.code == "KVS-vars-file"
    assert problem.span.start_position[0] == 3
    assert "not valid TOML" in problem.message


def test_vars_file_must_be_an_object(tmp_path):
    path = write(tmp_path, '["a", "b"]', "v.json")
    _, [problem] = read_vars_file(path)
    assert problem.code == "KVS-vars-file"


def test_vars_file_missing(tmp_path):
    result = run(tmp_path, 'shot a 5s "x"\n', var_files=[str(tmp_path / "none.json")])
    assert "KVS-vars-file" in codes(result) and result.request is None


def test_vars_file_invalid_utf8(tmp_path):
    path = write(tmp_path, b'mood = "caf\xe9"\n', "v.toml")
    _, [problem] = read_vars_file(path)
    assert problem.code == "KVS-encoding" and problem.span.start_position == (1, 12)


def test_vars_file_with_bom(tmp_path):
    path = write(tmp_path, b'\xef\xbb\xbf{"mood": "dusk"}', "v.json")
    found, problems = read_vars_file(path)
    assert problems == [] and found[0].value == "dusk"


def test_later_vars_win(tmp_path):
    one = write(tmp_path, '{"mood": "one"}', "1.json")
    two = write(tmp_path, 'mood = "two"\n', "2.toml")
    text = 'shot a 5s "{{ mood }}"\n'
    assert run(tmp_path, text, var_files=[one, two]).request.body["prompt"] == "two"
    assert run(tmp_path, text, var_files=[two, one]).request.body["prompt"] == "one"
    assert run(tmp_path, text, var_files=[one], var_options=["mood=three"]).request.body["prompt"] == "three"


def test_load_returns_statements_in_use_order(tmp_path):
    write(tmp_path, 'image b = "https://e.com/b.png"\n', "lib.kvs")
    path = write(
        tmp_path,
        'image a = "https://e.com/a.png"\nuse "lib.kvs"\nimage c = "https://e.com/c.png"\nshot s 5s "@a @b @c"\n',
    )
    program, problems = load(path)
    assert problems == []
    names = [s.name.value for s in program.statements if hasattr(s, "name") and hasattr(s, "uri")]
    assert names == ["a", "b", "c"]


# -- discover_scripts: one answer for check, fmt and watch --------------------------------


def test_a_folder_stands_for_its_scripts_sorted_without_hidden_or_render_folders(tmp_path):
    from klingspec.loading import discover_scripts

    for name in ("b.kvs", "a.kvs", "sub/c.kvs", ".git/x.kvs", "renders/y.kvs", "notes.txt", "sub/.hidden/z.kvs"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("", encoding="utf-8")
    found = [os.path.relpath(p, tmp_path) for p in discover_scripts([str(tmp_path)])]
    assert found == ["a.kvs", "b.kvs", os.path.join("sub", "c.kvs")]


def test_a_path_that_is_not_a_folder_stands_for_itself_even_when_missing(tmp_path):
    from klingspec.loading import discover_scripts

    missing, other = str(tmp_path / "missing.kvs"), str(tmp_path / "x.txt")
    assert discover_scripts([missing, other]) == [missing, other]
