"""The documentation stays true: code pages, their examples, and the example scripts.

(a) every code in the catalogue has a page under docs/codes/ and every page names a real
    code; the index lists them all;
(b) each page's example, replayed through `run_pipeline` exactly as its `$ klingspec ...`
    line says, produces the page's code (pages marked `<!-- docs-test: skip ... -->`
    are kept but not replayed);
(c) every script under examples/ passes `check` with no errors and no warnings, and
    compiles (libraries are checked alone and a film's scene scripts through the film,
    as `klingspec check` does);
(d) the README's tour shows the mistake `klingspec check` really reports, and every
    relative link in the Markdown files points at a file inside the repository (and at a
    heading that exists, for a `#fragment`).

Page conventions: the main script is the ```kvs block without `file=`; other files are
blocks whose info string has `file=NAME` (```kvs file=cast.kvs, ```toml file=vars.toml);
the first `$ klingspec COMMAND FILE [--var NAME=VALUE] [--vars FILE]` line in a
```console block is the command to replay; `<!-- docs-test: mkdir DIR -->` creates a folder; `<!-- docs-test: online PATH -->` marks a
`check --online` page, replayed by tests/test_online.py with its URL served from PATH;
`<!-- docs-test: retired MODEL -->` writes a synced catalogue (catalogue.json in the
klingspec home) that lists every built-in model but MODEL;
`<!-- docs-test: image PATH WxH [cut=N] [size=N] -->` writes an image made with Pillow (its
format from the extension), keeping only its first N bytes (`cut`) or padded with zeros
after its end to N bytes (`size`, a sparse file): an image cannot be a text block.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from helpers import is_film

from klingspec import pricing
from klingspec.codes import CODES
from klingspec.films import scene_paths
from klingspec.pipeline import Options, run_pipeline

ROOT = Path(__file__).resolve().parent.parent
CODES_DIR = ROOT / "docs" / "codes"
EXAMPLES = ROOT / "examples"

_FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```$", re.S | re.M)
_SKIP = re.compile(r"<!--\s*docs-test:\s*skip\s+(.*?)\s*-->", re.S)
_MKDIR = re.compile(r"<!--\s*docs-test:\s*mkdir\s+(\S+)\s*-->")
# `check --online` pages need a server: tests/test_online.py replays them on loopback
_ONLINE = re.compile(r"<!--\s*docs-test:\s*online\s+(\S+)\s*-->")
_RETIRED = re.compile(r"<!--\s*docs-test:\s*retired\s+(\S+)\s*-->")
_IMAGE = re.compile(r"<!--\s*docs-test:\s*image\s+(\S+)\s+(\d+)x(\d+)((?:\s+\w+=\d+)*)\s*-->")


def _write_image(path: Path, width: int, height: int, options: str) -> None:
    from PIL import Image

    settings = dict(option.split("=") for option in options.split())
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (200, 120, 40)).save(path)
    if "cut" in settings:
        path.write_bytes(path.read_bytes()[: int(settings["cut"])])
    if "size" in settings:
        with open(path, "r+b") as handle:
            handle.truncate(int(settings["size"]))


def _write_catalogue(without: str) -> None:
    """A synced catalogue as of 2026-12-01 listing every built-in model but `without`."""
    from klingspec import catalogue, targets

    ids = [i for i in targets.known_ids() if i != without]
    models = {i: catalogue.Listed(i, {"id": i, "object": "model", "pricing": {}}) for i in ids}
    catalogue.save(catalogue.Catalogue("https://hub.oxen.ai/api", 1796083200.0, None, "0" * 64, frozenset(ids), models))


def _pages() -> list[Path]:
    return sorted(p for p in CODES_DIR.glob("*.md") if p.name != "README.md")


def _blocks(text: str) -> list[tuple[str, str]]:
    return [(m.group(1).strip(), m.group(2)) for m in _FENCE.finditer(text)]


# -- (a) pages and codes ----------------------------------------------------------


def test_every_code_has_a_page():
    missing = [code for code in CODES if not (CODES_DIR / f"{code}.md").is_file()]
    assert not missing, f"codes without a page in docs/codes/: {missing}"


def test_every_page_names_a_real_code():
    strays = [p.name for p in _pages() if p.stem not in CODES]
    assert not strays, f"pages for codes not in klingspec.codes.CODES: {strays}"


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.stem)
def test_page_title_and_severity(page: Path):
    text = page.read_text(encoding="utf-8")
    code = CODES[page.stem]
    assert text.startswith(f"# {code.code}\n"), "the page's title is its code"
    assert f"**{code.severity}**" in text, "the page states the code's severity"


def test_index_lists_every_code():
    index = (CODES_DIR / "README.md").read_text(encoding="utf-8")
    for code in CODES.values():
        assert f"| [`{code.code}`]({code.code}.md) | {code.severity} | {code.title} |" in index, code.code


# -- (b) every page's example produces its code -------------------------------------


def _replay(page: Path, tmp_path: Path, monkeypatch) -> tuple[str, list[str]]:
    text = page.read_text(encoding="utf-8")
    blocks = _blocks(text)
    command = next(
        (
            line[2:]
            for info, body in blocks
            if info == "console"
            for line in body.splitlines()
            if line.startswith("$ klingspec ")
        ),
        None,
    )
    assert command, "the page shows the `$ klingspec ...` command of its example"
    words = shlex.split(command)[1:]
    verb, args = words[0], words[1:]
    main, var_options, var_files, table, max_seconds = None, [], [], None, None
    while args:
        arg = args.pop(0)
        if arg == "--var":
            var_options.append(args.pop(0))
        elif arg == "--vars":
            var_files.append(args.pop(0))
        elif arg == "--vars-table":
            table = args.pop(0)
        elif arg == "--max-seconds":
            max_seconds = int(args.pop(0))
        elif not arg.startswith("-") and main is None:
            main = arg
    assert verb in ("check", "compile", "plan") and main, command
    scripts = [body for info, body in blocks if info == "kvs"]
    assert len(scripts) == 1, "one main ```kvs block per page"
    monkeypatch.chdir(tmp_path)
    for directory in _MKDIR.findall(text):
        (tmp_path / directory).mkdir(parents=True, exist_ok=True)
    for name, width, height, options in _IMAGE.findall(text):
        _write_image(tmp_path / name, int(width), int(height), options)
    for retired in _RETIRED.findall(text):
        _write_catalogue(without=retired)
    files = {main: scripts[0]}
    for info, body in blocks:
        named = re.search(r"\bfile=(\S+)", info)
        if named:
            files[named.group(1)] = body
    for name, body in files.items():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body, encoding="utf-8")
    if verb == "check":
        options = Options(
            tuple(var_options), tuple(var_files), validate_schema=False, library_ok=True, max_seconds=max_seconds
        )
    else:
        options = Options(tuple(var_options), tuple(var_files))
    if table is not None:
        from klingspec.cli.options import results_of

        return verb, [d.code for r in results_of([main], options, table) for d in r.diagnostics]
    result = run_pipeline(main, options)
    return verb, [d.code for d in result.diagnostics]


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.stem)
def test_page_example_produces_its_code(page: Path, tmp_path: Path, monkeypatch):
    text = page.read_text(encoding="utf-8")
    skipped = _SKIP.search(text)
    if skipped:
        pytest.skip(skipped.group(1))
    if _ONLINE.search(text):
        pytest.skip("a `check --online` page: tests/test_online.py replays it against a server on loopback")
    _, codes = _replay(page, tmp_path, monkeypatch)
    assert page.stem in codes, f"the example produced {codes}, not {page.stem}"


def _console_output(verb: str, command: str, capsys) -> str:
    """What a terminal shows for the page's command, run through the real CLI."""
    from klingspec.cli import main

    capsys.readouterr()
    main(shlex.split(command)[1:])
    captured = capsys.readouterr()
    return captured.out + captured.err if verb == "check" else captured.err + captured.out


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.stem)
def test_page_output_is_current(page: Path, tmp_path: Path, monkeypatch, capsys, update_golden):
    """The console block shows exactly what klingspec prints today (--update-golden rewrites it)."""
    text = page.read_text(encoding="utf-8")
    if _SKIP.search(text) or _ONLINE.search(text):
        pytest.skip("page not replayed here")
    monkeypatch.setenv("NO_COLOR", "1")
    verb, _ = _replay(page, tmp_path, monkeypatch)
    block = next(m for m in _FENCE.finditer(text) if m.group(1).strip() == "console")
    command = block.group(2).splitlines()[0][2:]
    actual = _console_output(verb, command, capsys)
    expected = block.group(2)[len(block.group(2).splitlines()[0]) + 1 :]
    if update_golden:
        if actual != expected:
            new = text[: block.start(2)] + f"$ {command}\n{actual}" + text[block.end(2) :]
            page.write_text(new, encoding="utf-8")
        return
    assert actual == expected, f"{page.name} shows stale output; rerun with --update-golden"


def test_most_pages_are_replayed():
    skipped = [p.stem for p in _pages() if _SKIP.search(p.read_text(encoding="utf-8"))]
    assert len(skipped) <= 6, f"too many pages skip their example: {skipped}"


# -- (c) the example scripts are clean ---------------------------------------------


def _films() -> dict[Path, Path]:
    """Every scene script a film under examples/ names, and that film: a scene script is
    checked through its film, as `klingspec check FOLDER` does (its start frame may come
    from the scene before, so on its own it need not check clean)."""
    return {
        Path(scene).resolve(): film
        for film in sorted(EXAMPLES.rglob("*.kvs"))
        if is_film(film)
        for scene in scene_paths(str(film))
    }


FILMS = _films()


def _example_runs():
    runs = []
    for script in sorted(EXAMPLES.rglob("*.kvs")):
        name = script.relative_to(EXAMPLES).as_posix()
        runs.append(pytest.param(script, (), id=name))
        for vars_file in sorted(EXAMPLES.glob(f"{script.stem}.vars.*")):
            runs.append(pytest.param(script, (str(vars_file),), id=f"{name}+{vars_file.name}"))
    return runs


def test_the_required_examples_exist():
    for name in ("teaser", "dialogue", "morph", "storyboard", "library", "campaign", "minimal", "launch"):
        assert (EXAMPLES / f"{name}.kvs").is_file(), name
    assert (EXAMPLES / "lib" / "characters.kvs").is_file()
    assert (EXAMPLES / "campaign.vars.toml").is_file()
    assert is_film(EXAMPLES / "launch.kvs")
    assert all(scene.is_file() for scene in FILMS), "every scene a film names is there"


def _checked(script: Path, options: Options):
    """The pipeline's result for an example, and the results of the requests it makes: its
    own; a film's, one a scene; a scene script's, its scene's in the film that names it."""
    film = FILMS.get(script.resolve())
    result = run_pipeline(str(film if film is not None else script), options)
    if result.film is None:
        return result, [result]
    scenes = [s.result for s in result.film.scenes if film is None or Path(s.path).resolve() == script.resolve()]
    assert scenes, f"{script} is no scene of the film {film}"
    return result, scenes


@pytest.mark.parametrize("script, var_files", _example_runs())
def test_example_checks_clean(script: Path, var_files: tuple[str, ...]):
    result, scenes = _checked(script, Options(var_files=var_files, validate_schema=False, library_ok=True))
    shown = [f"{d.code} {d.span.start_position}: {d.message}" for d in result.diagnostics]
    assert result.errors == 0 and result.warnings == 0, shown
    assert all(s.ok for s in scenes)


@pytest.mark.parametrize("script, var_files", [p for p in _example_runs() if "lib/" not in p.id])
def test_example_compiles(script: Path, var_files: tuple[str, ...]):
    """Every request an example makes compiles (a continued scene's with a stand-in start
    frame, as `plan FILM` prices it) and keeps to the API's limits."""
    result, scenes = _checked(script, Options(var_files=var_files))
    assert result.ok, [d.message for d in result.diagnostics]
    for scene in scenes:
        assert scene.ok and scene.request is not None, [d.message for d in scene.diagnostics]
        total = sum(int(s.seconds) for s in scene.bound.shots)
        assert 3 <= total <= 15
        assert len(scene.bound.images) + len(scene.bound.elements) <= 4
        for shot in scene.bound.shots:
            assert len(shot.prompt) <= 512


def test_the_film_example_chains_scenes_frame_to_frame():
    """examples/launch.kvs shows what a film is for: scene scripts and a scene written in
    place, a chain of continued scenes (each on a model that takes a start frame) and a
    scene that waits for none; longer than one request may be, and still modest."""
    film = run_pipeline(str(EXAMPLES / "launch.kvs")).film
    assert film is not None
    assert [(s.name, s.continues) for s in film.scenes] == [
        ("roastery", None),
        ("pour", "roastery"),
        ("cup", "pour"),
        ("ident", None),
    ]
    assert [s.scene.body is not None for s in film.scenes] == [False, False, False, True]
    assert 15 < film.seconds <= 30
    total = pricing.add(s.result.estimate.quote for s in film.scenes)
    assert total.ceiling is not None and total.ceiling < 10
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert f"running {film.seconds} s for {pricing.usd_quote(total)}" in readme, "the README's figures are the film's"


def test_storyboard_is_five_three_second_shots():
    result = run_pipeline(str(EXAMPLES / "storyboard.kvs"))
    assert [int(s.seconds) for s in result.bound.shots] == [3, 3, 3, 3, 3]
    assert result.request.body["multi_prompt"]


def test_library_sends_only_mentioned_bindings():
    result = run_pipeline(str(EXAMPLES / "library.kvs"))
    assert [b.name for b in result.bound.elements] == ["ada"]
    assert [b.name for b in result.bound.images] == ["workshop"]


def test_campaign_vars_override_lets():
    default = run_pipeline(str(EXAMPLES / "campaign.kvs"))
    toml = run_pipeline(str(EXAMPLES / "campaign.kvs"), Options(var_files=(str(EXAMPLES / "campaign.vars.toml"),)))
    assert "Halo Desk Lamp" in default.request.json
    assert "Nimbus Headphones" in toml.request.json and "Halo Desk Lamp" not in toml.request.json


# -- (d) the README's tour and the links ----------------------------------------------------


def test_readme_mistake_is_what_check_prints(tmp_path: Path, monkeypatch, capsys):
    """The tour's script with the line the README's mistake shows: `check` prints that mistake
    (a line ending in `...` is a prefix of the real one)."""
    from klingspec.cli import main

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = _blocks(readme)
    tour = next(body for info, body in blocks if info == "kvs")
    shown = next(body for info, body in blocks if info == "" and "error[" in body).splitlines()
    where = re.match(r"(?P<path>[^:]+):(?P<line>\d+):\d+: ", shown[0])
    assert where, shown[0]
    number = int(where.group("line"))
    edited = next(line.split(" | ", 1)[1] for line in shown if line.startswith(f"{number} | "))
    lines = tour.splitlines()
    assert lines[number - 1].split()[:2] == edited.split()[:2], "the mistake edits that line of the tour"
    lines[number - 1] = edited
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NO_COLOR", "1")
    Path(where.group("path")).write_text("\n".join(lines) + "\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["check", where.group("path")]) == 1
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) >= len(shown), printed
    for want, got in zip(shown, printed, strict=False):
        if want.endswith("..."):
            assert got.startswith(want[:-3]), (want, got)
        else:
            assert got == want


# The tour's commands that need no network, key or ledger, and write nothing in the repository.
_OFFLINE_SAFE = ("check", "compile", "plan", "fmt", "models", "explain")
_EXITS = re.compile(r"\(exit (\d+)\)")


def _readme_commands() -> list[tuple[list[str], int]]:
    """Every `$ klingspec ...` of the README's console blocks (split at `;`), with the exit
    code its comment states (`(exit N)`, else 0)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = []
    for info, body in _blocks(readme):
        if info != "console":
            continue
        for line in body.splitlines():
            if not line.startswith("$ "):
                continue
            command, _, comment = line[2:].partition("  #")
            stated = _EXITS.search(comment)
            for part in command.split(";"):
                words = shlex.split(part)
                if words and words[0] == "klingspec":
                    found.append((words[1:], int(stated.group(1)) if stated else 0))
    return found


def _offline_safe(words: list[str]) -> bool:
    if not words or words[0] not in _OFFLINE_SAFE:
        return False
    if words[0] == "fmt" and "--check" not in words:
        return False  # it would rewrite the file
    return not ({"-o", "--output", "--online", "sync", "--sandbox"} & set(words))


def test_readme_tour_runs_from_the_repository_root(tmp_path):
    """Each offline-safe command of the README, run as written from the repository's root by
    the real entry point, exits as the README says (its comment's `(exit N)`, else 0)."""
    import os
    import subprocess
    import sys

    commands = [(words, code) for words, code in _readme_commands() if _offline_safe(words)]
    assert {words[0] for words, _ in commands} == set(_OFFLINE_SAFE), "the tour shows each of them"
    env = {**os.environ, "KLINGSPEC_HOME": str(tmp_path), "NO_COLOR": "1"}
    for words, expected in commands:
        probe = "import sys; from klingspec.cli import main; sys.exit(main(sys.argv[1:]))"
        done = subprocess.run(
            [sys.executable, "-c", probe, *words], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == expected, f"klingspec {' '.join(words)}: {done.stdout}{done.stderr}"


def test_the_readme_commands_are_read_as_shown():
    commands = _readme_commands()
    assert (["check", "examples/teaser.kvs"], 0) in commands
    assert (["ls"], 0) in commands and (["status"], 0) in commands  # `a; b` is two commands
    assert _EXITS.search("  # a mistake (exit 1)").group(1) == "1" and not _EXITS.search("# exits 1 if")


_LINK = re.compile(r"(?<!!)\[[^\]]*\]\((?P<target>[^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*$", re.M)


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens, -N for repeats."""
    found: set[str] = set()
    outside_fences = re.sub(r"^```.*?^```$", "", markdown, flags=re.S | re.M)
    for title in _HEADING.findall(outside_fences):
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        anchor, n = slug, 0
        while anchor in found:
            n += 1
            anchor = f"{slug}-{n}"
        found.add(anchor)
    return found


def _markdown_files() -> list[Path]:
    found = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    found += sorted(p for p in (ROOT / "editors").rglob("*.md") if "node_modules" not in p.parts)
    return found


def test_the_anchor_rule():
    assert "7-pricing-klingspec-plan" in _anchors("## 7. Pricing (`klingspec plan`)\n")
    assert _anchors("# A\n```sh\n# not a heading\n```\n## A\n") == {"a", "a-1"}


@pytest.mark.parametrize("page", _markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_links_point_inside_the_repository(page: Path):
    text = page.read_text(encoding="utf-8")
    problems = []
    for match in _LINK.finditer(text):
        target = match.group("target")
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not a file
            continue
        path, _, fragment = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if path.startswith("/") or ROOT not in (resolved, *resolved.parents):
            problems.append(f"{target}: outside the repository")
        elif not resolved.exists():
            problems.append(f"{target}: no such file")
        elif fragment and resolved.suffix == ".md" and fragment not in _anchors(resolved.read_text(encoding="utf-8")):
            problems.append(f"{target}: no heading #{fragment}")
    assert not problems, f"{page.relative_to(ROOT)}: " + "; ".join(problems)
