"""Golden tests: every bundle in tests/cases, and every example script, through the real CLI.

A case bundle (tests/golden.py describes the format) holds the input files and what the
user sees. Input sections are written into a temporary folder, which becomes the working
directory, so diagnostics name `main.kvs` as a user would. Inputs:

- `main.kvs` (the script every command is given), other `.kvs` files (`lib/chars.kvs`),
  `vars.toml` / `vars.json`, any other file; a `(hex)` section gives raw bytes;
- `args`: extra command-line words put before the file (`--var mood=dusk --vars vars.toml`),
  split like a shell would, `#` comments allowed.

Expected outputs, from `klingspec.cli.main([...])` run in-process:

- `diagnostics.txt`: `check ARGS main.kvs` stdout, then its stderr (the summary line);
- `diagnostics.json`: `check --format json ARGS main.kvs` stdout;
- `request.json`: `compile ARGS main.kvs` stdout, present when it exits 0 or prints anything;
- `plan.json`: `plan --format json ARGS main.kvs` stdout, likewise;
- `exit`: the exit code of each of the four commands, one `COMMAND: CODE` per line;
- `NAME.stderr` (`check-json`, `compile`, `plan`): only when that command's stderr is not
  what the contract implies: nothing for `check --format json`; for `compile`, the same
  text diagnostics `check` printed; for `plan`, those as text when it succeeds and as JSON
  when it fails. Such a section appearing in a diff means the commands disagree.

Run `pytest tests/test_golden.py --update-golden` (or KLINGSPEC_UPDATE_GOLDEN=1) to rewrite
the expected sections from the current behaviour, then read the diff before committing.
"""

from __future__ import annotations

import difflib
import shlex
from pathlib import Path

import golden
import pytest
from helpers import is_film

from klingspec import cli

ROOT = Path(__file__).resolve().parent.parent
CASES = Path(__file__).resolve().parent / "cases"
EXAMPLE_CASES = CASES / "examples"
OUTPUTS = (
    "diagnostics.txt",
    "diagnostics.json",
    "request.json",
    "plan.json",
    "exit",
    "check-json.stderr",
    "compile.stderr",
    "plan.stderr",
)


def _case_files() -> list[Path]:
    return sorted(p for p in CASES.rglob("*.txt") if EXAMPLE_CASES not in p.parents)


def _example_scripts() -> list[Path]:
    return sorted((ROOT / "examples").glob("*.kvs"))


class Cli:
    """Runs `klingspec.cli.main` in-process and returns (exit code, stdout, stderr)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]):
        self.capsys = capsys

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = cli.main(list(argv))
        out, err = self.capsys.readouterr()
        return code, out, err


def observe(run: Cli, args: list[str], path: str) -> dict[str, str]:
    """Every output section for one script, in the canonical order."""
    check, text, summary = run("check", *args, path)
    check_json, as_json, check_json_err = run("check", "--format", "json", *args, path)
    compiled, request, compile_err = run("compile", *args, path)
    again = run("compile", *args, path)
    assert again == (compiled, request, compile_err), "compiling twice gave different output"
    planned, plan, plan_err = run("plan", "--format", "json", *args, path)
    found = {"diagnostics.txt": text + summary, "diagnostics.json": as_json}
    if compiled == 0 or request:
        found["request.json"] = request
    if planned == 0 or plan:
        found["plan.json"] = plan
    found["exit"] = (
        f"check: {check}\ncheck --format json: {check_json}\ncompile: {compiled}\nplan --format json: {planned}\n"
    )
    for name, actual, implied in (
        ("check-json.stderr", check_json_err, ""),
        ("compile.stderr", compile_err, text),
        ("plan.stderr", plan_err, text if planned == 0 else as_json),
    ):
        if actual != implied:
            found[name] = actual
    return found


def compare(
    path: Path, comment: str, sections: dict, found: dict[str, str], outputs: tuple[str, ...], update: bool
) -> None:
    """Rewrite the expected sections (update mode) or fail with a diff of each that differs."""
    expected = {name: golden.text(body) for name, body in sections.items() if name in outputs}
    if update:
        inputs = {name: body for name, body in sections.items() if name not in outputs}
        new = golden.format(comment, {**inputs, **found})
        if new != path.read_bytes().decode("utf-8"):
            golden.write(path, comment, {**inputs, **found})
        return
    problems = []
    for name in [n for n in outputs if n in expected or n in found]:
        want, got = expected.get(name), found.get(name)
        if want == got:
            continue
        if got is None:
            problems.append(f"section `{name}`: expected but not produced")
        elif want is None:
            problems.append(f"section `{name}`: produced but not in the golden file:\n{got}")
        else:
            diff = difflib.unified_diff(
                want.splitlines(keepends=True), got.splitlines(keepends=True), f"{name} (golden)", f"{name} (actual)"
            )
            problems.append("".join(line if line.endswith("\n") else line + "\n\\ no newline\n" for line in diff))
    if problems:
        pytest.fail(
            f"{path.relative_to(ROOT)} differs from the golden file "
            f"(rerun with --update-golden to accept):\n\n" + "\n".join(problems),
            pytrace=False,
        )


@pytest.fixture
def run(capsys, monkeypatch) -> Cli:
    monkeypatch.setenv("NO_COLOR", "1")
    return Cli(capsys)


@pytest.mark.parametrize("case", _case_files(), ids=lambda p: str(p.relative_to(CASES).with_suffix("")))
def test_case(case: Path, tmp_path: Path, monkeypatch, run: Cli, update_golden: bool) -> None:
    comment, sections = golden.read(case)
    assert "main.kvs" in sections, f"{case}: a bundle needs a `main.kvs` section"
    args: list[str] = []
    for name, body in sections.items():
        if name == "args":
            args = shlex.split(str(body), comments=True)
        elif name not in OUTPUTS:
            target = tmp_path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body if isinstance(body, bytes) else body.encode("utf-8"))
    monkeypatch.chdir(tmp_path)
    compare(case, comment, sections, observe(run, args, "main.kvs"), OUTPUTS, update_golden)


# -- examples ------------------------------------------------------------------------
# Each examples/NAME.kvs has a bundle tests/cases/examples/NAME.txt holding its `args`
# (a `--vars examples/NAME.vars.toml` or `.json` beside it is passed automatically), what
# `check` prints and the compiled request. A library (a file with no shot, made to be
# `use`d) has no request: `check` must accept it and `compile` refuse it for lack of shots.
# A film (a file of scenes) is not compiled yet (`compile` refuses it, exit 2): its bundle
# holds `plan --format json` instead, every scene with its seconds, cost, stage and the
# hash of its request (a continued scene's is made only once the scene before is rendered).

EXAMPLE_OUTPUTS = ("args", "diagnostics.txt", "request.json", "plan.json", "exit")


def _example_args(script: Path) -> list[str]:
    for suffix in (".vars.toml", ".vars.json"):
        vars_file = script.with_name(script.stem + suffix)
        if vars_file.exists():
            return ["--vars", vars_file.relative_to(ROOT).as_posix()]
    return []


@pytest.mark.parametrize("script", _example_scripts(), ids=lambda p: p.stem)
def test_example(script: Path, monkeypatch, run: Cli, update_golden: bool) -> None:
    monkeypatch.chdir(ROOT)
    path = script.relative_to(ROOT).as_posix()
    args = _example_args(script)
    check, text, summary = run("check", *args, path)
    compiled, request, compile_err = run("compile", *args, path)
    library = check == 0 and compiled != 0 and "KVS-no-shots" in compile_err
    film = is_film(script)
    if film:
        assert compiled == 2 and not request and "film" in compile_err, compile_err
    else:
        assert compiled == 0 or library, f"{path} does not compile:\n{compile_err}"
    assert run("compile", *args, path) == (compiled, request, compile_err), (
        f"compiling {path} twice gave different bytes"
    )
    found = {"args": shlex.join(args) + "\n" if args else "", "diagnostics.txt": text + summary}
    if film:
        planned, plan, plan_err = run("plan", "--format", "json", *args, path)
        assert planned == 0 and run("plan", "--format", "json", *args, path) == (planned, plan, plan_err), plan_err
        found["plan.json"] = plan
        found["exit"] = f"check: {check}\ncompile: {compiled}\nplan --format json: {planned}\n"
    else:
        if not library:
            found["request.json"] = request
        found["exit"] = f"check: {check}\ncompile: {compiled}\n"
    bundle = EXAMPLE_CASES / f"{script.stem}.txt"
    if not bundle.exists():
        if not update_golden:
            pytest.fail(
                f"{path} has no golden file {bundle.relative_to(ROOT)}; "
                "run `pytest tests/test_golden.py --update-golden` to create it",
                pytrace=False,
            )
        golden.write(bundle, f"Golden output of {path}; rewrite with --update-golden.\n", {})
    comment, sections = golden.read(bundle)
    compare(bundle, comment, sections, found, EXAMPLE_OUTPUTS, update_golden)


def test_no_orphan_example_goldens(update_golden: bool) -> None:
    """A golden for an example that no longer exists is removed (update) or reported."""
    names = {p.stem for p in _example_scripts()}
    orphans = [p for p in sorted(EXAMPLE_CASES.glob("*.txt")) if p.stem not in names]
    if update_golden:
        for orphan in orphans:
            orphan.unlink()
    else:
        assert not orphans, f"goldens without an example (delete them or --update-golden): {orphans}"


def test_golden_format_round_trips() -> None:
    """Reading and writing a bundle gives back the same bytes, whatever the contents."""
    sections = {
        "a.kvs": "x\n",
        "empty": "",
        "blank": "\n",
        "noeol": "no newline",
        "raw": b"\xff\x00ok",
        "marker": "-- fake --\n",
        "nul": "a\x00b\n",
        "crlf": "a\r\n",
        "lib/b.kvs": "  indented\n\n",
    }
    text = golden.format("comment\n", sections)
    as_bytes = {name: sections[name].encode() for name in ("marker", "nul", "crlf")}
    assert golden.parse(text) == ("comment\n", sections | as_bytes)
    assert golden.format(*golden.parse(text)) == text
    for case in _case_files():
        raw = case.read_bytes().decode("utf-8")
        assert golden.format(*golden.parse(raw)) == raw, f"{case} does not round-trip"
