"""Films (klingspec/films.py): a script of scenes, each checked through the pipeline as a
script of its own is, plus the film's rules at the film's own lines; `fmt` lays films out,
and the commands that do not take films yet say so.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import write

from klingspec.cli import main
from klingspec.cli.report import Exit
from klingspec.formatting import format_text
from klingspec.pipeline import Options, run_pipeline
from klingspec.source import Source
from klingspec.syntax import parse

INTRO = 'shot a 5s "a hero walks to a door"\n'
WALK = 'shot b 6s "the hero walks through the door"\n'


@pytest.fixture
def scenes(tmp_path: Path) -> Path:
    write(tmp_path, INTRO, "intro.kvs")
    write(tmp_path, WALK, "walk.kvs")
    write(tmp_path, '[assets]\nrepo = "ada/film"\n', "klingspec.toml")  # where a start frame is uploaded
    return tmp_path


def codes(result) -> list[tuple[str, str, int]]:
    return [(d.code, Path(d.span.path).name, d.span.start_position[0]) for d in result.diagnostics]


def test_a_film_of_scene_scripts_and_a_scene_written_in_place_checks_clean(scenes):
    film = write(
        scenes,
        'scene intro "intro.kvs"\nscene walk "walk.kvs" continues intro\n'
        'scene outro continues walk take 1 {\n  aspect 16:9\n  shot c 4s "the logo on black"\n}\n',
        "film.kvs",
    )
    result = run_pipeline(film)
    assert result.diagnostics == ()
    assert result.film is not None
    assert [(s.name, s.continues, s.take) for s in result.film.scenes] == [
        ("intro", None, 1),
        ("walk", "intro", 1),
        ("outro", "walk", 1),
    ]
    assert [s.result.request is not None for s in result.film.scenes] == [True, True, True]
    assert result.film.seconds == 15
    assert result.film.chain_of("outro") == ("walk", "intro")
    assert result.film.scenes[2].result.request.body["aspect_ratio"] == "16:9"


def test_each_scene_is_checked_at_its_own_lines_and_the_film_at_the_films(scenes):
    write(scenes, 'shot b 20s "too long"\n', "walk.kvs")
    film = write(scenes, 'scene intro "intro.kvs"\nscene walk "walk.kvs"\nscene end {\n  shot 0s "x"\n}\n', "f.kvs")
    found = codes(run_pipeline(film))
    assert ("KVS-shot-duration", "walk.kvs", 1) in found
    assert ("KVS-shot-duration", "f.kvs", 4) in found


@pytest.mark.parametrize(
    ("text", "files", "expected"),
    [
        ('scene intro "intro.kvs"\naspect 16:9\n', {}, ("KVS-film-mixed", 2)),
        ('scene intro "intro.kvs"\nscene intro "walk.kvs"\n', {}, ("KVS-scene-name", 2)),
        ('scene walk "walk.kvs" continues intro\nscene intro "intro.kvs"\n', {}, ("KVS-scene-name", 1)),
        ('scene intro "intro.kvs" continues intro\n', {}, ("KVS-scene-name", 1)),
        ('scene gone "gone.kvs"\n', {}, ("KVS-file-not-found", 1)),
        ('scene inner "inner.kvs"\n', {"inner.kvs": 'scene intro "intro.kvs"\n'}, ("KVS-scene-film", 1)),
        ('scene intro "intro.kvs"\nscene walk "walk.kvs" continues intro take 2\n', {}, ("KVS-scene-take", 2)),
        ('scene intro "intro.kvs"\nscene walk "walk.kvs" continues intro take 0\n', {}, ("KVS-scene-take", 2)),
    ],
)
def test_the_films_own_rules_are_reported_at_the_films_lines(scenes, text, files, expected):
    for name, body in files.items():
        write(scenes, body, name)
    film = write(scenes, text, "film.kvs")
    found = [(code, line) for code, name, line in codes(run_pipeline(film)) if name == "film.kvs"]
    assert expected in found


def test_a_continued_scene_takes_its_start_from_the_scene_before(scenes):
    write(scenes, 'start "https://e.com/door.png"\n' + WALK, "walk.kvs")
    write(scenes, 'end "https://e.com/hall.png"\n' + WALK, "ends.kvs")
    film = write(
        scenes,
        'scene intro "intro.kvs"\nscene walk "walk.kvs" continues intro\nscene ends "ends.kvs" continues walk\n',
        "film.kvs",
    )
    found = codes(run_pipeline(film))
    assert ("KVS-scene-start", "walk.kvs", 1) in found
    assert not any(code == "KVS-end-without-start" for code, _, _ in found)  # its start is the scene before's
    alone = codes(run_pipeline(str(scenes / "ends.kvs")))
    assert any(code == "KVS-end-without-start" for code, _, _ in alone)  # as a script of its own, it would be


def test_a_continued_scene_needs_a_model_with_start_frames(scenes):
    write(scenes, "model kling-video-v2-6-pro-text-to-video\n" + WALK, "walk.kvs")
    film = write(scenes, 'scene intro "intro.kvs"\nscene walk "walk.kvs" continues intro\n', "film.kvs")
    assert ("KVS-scene-frames", "film.kvs", 2) in codes(run_pipeline(film))


def test_max_seconds_caps_the_running_time(scenes, capsys):
    film = write(scenes, 'scene intro "intro.kvs"\nscene walk "walk.kvs" continues intro\n', "film.kvs")
    assert ("KVS-film-length", "film.kvs", 2) in codes(run_pipeline(film, Options(max_seconds=10)))
    assert run_pipeline(film, Options(max_seconds=11)).diagnostics == ()
    assert main(["check", film, "--max-seconds", "10"]) == Exit.SCRIPT_ERRORS
    assert "KVS-film-length" in capsys.readouterr().out
    assert main(["check", film, "--max-seconds", "11"]) == Exit.OK


def test_fmt_lays_a_film_out_and_keeps_what_it_means():
    messy = (
        "# the film\n"
        'scene   intro "intro.kvs"   # first\n'
        'scene walk "walk.kvs" continues   intro take 1\n'
        "scene outro continues walk {\n"
        "  # inside\n"
        "  aspect 16:9\n"
        '      shot a 5s "the logo"   # end\n'
        "}\n"
        "scene empty {}\n"
    )
    tidy = (
        "# the film\n"
        'scene intro "intro.kvs"  # first\n'
        'scene walk "walk.kvs" continues intro take 1\n'
        "scene outro continues walk {\n"
        "  # inside\n"
        "  aspect 16:9\n"
        "\n"
        '  shot a 5s "the logo"  # end\n'
        "}\n"
        "scene empty {}\n"
    )
    assert format_text(messy) == tidy
    assert format_text(tidy) == tidy
    original, _ = parse(Source("a", messy))
    again, _ = parse(Source("b", tidy))
    assert [(s.name.value, s.path and s.path.value, len(s.body or ())) for s in original.scenes] == [
        (s.name.value, s.path and s.path.value, len(s.body or ())) for s in again.scenes
    ]


def test_a_continued_scene_needs_somewhere_to_upload_its_start_frame(tmp_path, capsys):
    write(tmp_path, INTRO, "intro.kvs")
    write(tmp_path, WALK, "walk.kvs")
    text = 'scene intro "intro.kvs"\nscene walk "walk.kvs" continues intro\nscene end continues walk {\n'
    film = write(tmp_path, text + '  assets ada/film\n  shot 5s "the end"\n}\n', "film.kvs")
    result = run_pipeline(film)
    assert codes(result) == [("KVS-assets-missing", "film.kvs", 2)]  # at `continues intro`; `end` has its own
    (missing,) = result.diagnostics
    assert film_text(film)[missing.span.start : missing.span.end] == "continues intro"
    assert run_pipeline(film, Options(assets="ada/film")).diagnostics == ()
    write(tmp_path, "assets ada/film\n" + WALK, "walk.kvs")
    assert run_pipeline(film).diagnostics == ()
    write(tmp_path, WALK, "walk.kvs")
    assert main(["run", "--sandbox", "--yes", film]) == Exit.SCRIPT_ERRORS  # before anything is sent
    out, err = capsys.readouterr()
    assert "KVS-assets-missing" in err and "renders" not in out


def film_text(path: str) -> str:
    return Path(path).read_text(encoding="utf-8")


@pytest.mark.parametrize("command", ["compile"])
def test_the_commands_that_do_not_take_films_yet_say_so(command, scenes, capsys):
    film = write(scenes, 'scene intro "intro.kvs"\n', "film.kvs")
    argv = [command, film]
    assert main(argv) == Exit.USAGE
    assert "is a film" in capsys.readouterr().err


def test_a_films_dependencies_are_its_scenes_files_even_missing_ones(scenes):
    film = write(scenes, 'scene intro "intro.kvs"\nscene gone "gone.kvs"\n', "film.kvs")
    result = run_pipeline(film)
    assert {Path(d).name for d in result.program.dependencies} == {"film.kvs", "intro.kvs", "gone.kvs"}


def test_a_film_naming_a_film_as_its_scene_is_told_at_once_never_run(tmp_path):
    film = write(tmp_path, 'scene x "two.kvs"\nscene y "two.kvs"\n', "two.kvs")  # itself, twice
    found = codes(run_pipeline(film))
    assert found.count(("KVS-scene-film", "two.kvs", 1)) == 1 and ("KVS-scene-film", "two.kvs", 2) in found
    assert not any(code == "KVS-internal" for code, _, _ in found)


def test_a_scene_path_is_a_kvs_script_so_no_file_of_secrets_is_shown(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KLINGSPEC_TEST_SECRET", "hunter2-secret")
    film = write(tmp_path, 'scene c "/proc/self/environ"\n', "f.kvs")
    assert ("KVS-file-unreadable", "f.kvs", 1) in codes(run_pipeline(film))
    main(["check", film])
    assert "hunter2-secret" not in capsys.readouterr().out


def test_the_check_cache_follows_a_films_scenes_and_not_max_seconds(scenes, capsys):
    film = write(scenes, 'scene intro "intro.kvs"\nscene later "later.kvs"\n', "film.kvs")
    assert main(["check", film]) == Exit.SCRIPT_ERRORS  # later.kvs missing
    write(scenes, WALK, "later.kvs")
    assert main(["check", film]) == Exit.OK  # its creation is seen through the cache
    assert main(["check", film, "--max-seconds", "6"]) == Exit.SCRIPT_ERRORS
    assert main(["check", film]) == Exit.OK  # the cap is not remembered as the film's result
    capsys.readouterr()


def test_a_folder_check_checks_a_scene_through_its_film_once(tmp_path, capsys):
    write(tmp_path, INTRO, "scenes/intro.kvs")
    write(tmp_path, "model kling-video-o3-pro-image-to-video\n" + 'shot b 20s "too long"\n', "scenes/walk.kvs")
    write(tmp_path, 'scene intro "scenes/intro.kvs"\nscene walk "scenes/walk.kvs" continues intro\n', "launch.kvs")
    capsys.readouterr()
    assert main(["check", str(tmp_path)]) == Exit.SCRIPT_ERRORS
    out = capsys.readouterr().out
    assert out.count("error[KVS-shot-duration]") == 1  # once, through the film
    assert "KVS-start-required" not in out  # a continued scene's start comes from the one before


def test_a_scene_written_in_place_keeps_its_allowances_and_its_own_place(tmp_path):
    film = write(
        tmp_path,
        'scene a {\n  image spare = "https://e.com/x.png"  # kvs: allow(KVS-binding-unused)\n  shot 5s "x"\n}\n'
        "scene b {\n  aspect 16:9\n}\n",
        "f.kvs",
    )
    found = codes(run_pipeline(film))
    assert not any(code == "KVS-binding-unused" for code, _, _ in found)
    assert ("KVS-no-shots", "f.kvs", 5) in found  # at scene b, not at the end of the film


def test_a_variable_is_unused_only_when_no_scene_uses_it(tmp_path):
    film = write(
        tmp_path, 'scene a {\n  let who = "a"\n  shot 5s "{{ who }}"\n}\nscene b {\n  shot 5s "x"\n}\n', "f.kvs"
    )
    assert not any(code == "KVS-var-unused" for code, _, _ in codes(run_pipeline(film, Options(("who=cat",)))))
    unused = [c for c, _, _ in codes(run_pipeline(film, Options(("nobody=1",)))) if c == "KVS-var-unused"]
    assert len(unused) == 1


def test_a_scene_lost_to_a_syntax_error_does_not_make_its_followers_wrong(tmp_path):
    film = write(tmp_path, 'scene a {\n  shot "x" 5s\n}\nscene b continues a {\n  shot 5s "y"\n}\n', "f.kvs")
    found = [code for code, _, _ in codes(run_pipeline(film))]
    assert "KVS-syntax-unexpected" in found and "KVS-scene-name" not in found


@pytest.mark.parametrize(
    ("messy", "tidy"),
    [
        ('scene z "s.kvs"\nscene a {  # about a\n}\n', 'scene z "s.kvs"\nscene a {  # about a\n}\n'),
        (
            'scene a {\n  element e {\n  # c\n  }\n  shot 5s "x"\n}\n',
            'scene a {\n  element e {\n    # c\n  }\n\n  shot 5s "x"\n}\n',
        ),
        (
            'scene a {\n  element e {  # about e\n  }\n  shot 5s "x"\n}\n',
            'scene a {\n  element e {  # about e\n  }\n\n  shot 5s "x"\n}\n',
        ),
    ],
)
def test_fmt_keeps_every_comment_of_a_scene_block_where_it_was(messy, tidy):
    assert format_text(messy) == tidy


@pytest.mark.parametrize("command", ["compile", "preview"])
def test_a_film_with_a_vars_table_is_refused_too(command, scenes, capsys):
    film = write(scenes, 'scene intro "intro.kvs"\n', "film.kvs")
    table = write(scenes, "x\n1\n", "t.csv")
    assert main([command, film, "--vars-table", table]) == Exit.USAGE
    assert "is a film" in capsys.readouterr().err


def test_a_scene_with_no_shot_is_an_error_even_where_a_library_may_be_checked(tmp_path, capsys):
    """`check` (and the editor, and watch) accept a declarations-only file as a library; a
    scene is never one: `plan` could not price it, so `check` must not pass it."""
    write(tmp_path, 'let colour = "red"\nimage cafe = "https://example.com/cafe.jpg"\n', "lib.kvs")
    film = write(tmp_path, 'scene a {\n  let x = "y"\n}\nscene b "lib.kvs"\n', "film.kvs")
    capsys.readouterr()
    assert main(["check", film]) == Exit.SCRIPT_ERRORS
    out = "".join(capsys.readouterr())
    assert out.count("error[KVS-no-shots]") == 2, out
