"""`klingspec fmt`: golden layouts, idempotence, compile preservation, the command line.

Golden cases are tests/cases/fmt/NAME.txtar bundles (the format of tests/golden.py, with
a `.txtar` suffix so tests/test_golden.py, which reads every `*.txt` under tests/cases,
does not take them for check cases). Each holds `input.kvs` and, when the input parses,
`formatted.kvs`. `pytest tests/test_formatting.py --update-golden` rewrites the
`formatted.kvs` sections from the current formatter; read the diff before committing.

Compile preservation: the formatted text, run through the real pipeline in place of the
original, gives the same request body and the same diagnostic codes.
"""

from __future__ import annotations

import difflib
import io
import os
from pathlib import Path

import golden
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from klingspec.cli import main
from klingspec.formatting import format_text
from klingspec.pipeline import Options, run_pipeline

ROOT = Path(__file__).resolve().parent.parent
CASES = Path(__file__).resolve().parent / "cases" / "fmt"
EXAMPLES = sorted((ROOT / "examples").rglob("*.kvs"))
LIB = 'let lib_mood = "dusk"\nimage lib_set = "https://e.com/lib-set.png"\n'


def _cases() -> list[Path]:
    return sorted(CASES.glob("*.txtar"))


def _input(path: Path) -> str:
    _, sections = golden.read(path)
    return golden.text(sections["input.kvs"])


def outcome(path: str, options: Options = Options()) -> tuple:
    """What a script compiles to: the request body (or None) and its diagnostic codes; for
    a film, every scene's name, the scene it continues and its request body."""
    result = run_pipeline(path, options)
    if result.film is not None:
        scenes = tuple(
            (s.name, s.continues, s.take, s.result.request.body if s.result.request else None)
            for s in result.film.scenes
        )
        compiled = scenes if all(body is not None for *_, body in scenes) else None
        return (compiled, sorted(d.code for d in result.diagnostics))
    return (result.request.body if result.request else None, sorted(d.code for d in result.diagnostics))


def same_compilation(folder: Path, original: str, formatted: str, name: str = "main.kvs") -> None:
    """Compile the original and the formatted text from files in `folder`, compare."""
    (folder / "lib.kvs").write_text(LIB, encoding="utf-8")
    path = folder / name
    path.write_bytes(original.encode("utf-8"))
    before = outcome(str(path))
    path.write_bytes(formatted.encode("utf-8"))
    after = outcome(str(path))
    assert after == before, f"formatting changed the compilation\n--- original\n{original}\n--- formatted\n{formatted}"


# -- golden cases ------------------------------------------------------------------------


def test_there_are_golden_cases() -> None:
    assert len(_cases()) >= 10


@pytest.mark.parametrize("case", _cases(), ids=lambda p: p.stem)
def test_golden(case: Path, update_golden: bool) -> None:
    comment, sections = golden.read(case)
    assert "input.kvs" in sections, f"{case}: a bundle needs an `input.kvs` section"
    formatted = format_text(golden.text(sections["input.kvs"]), "input.kvs")
    if update_golden:
        new = {"input.kvs": sections["input.kvs"]}
        if formatted is not None:
            new["formatted.kvs"] = formatted
        if golden.format(comment, new) != case.read_bytes().decode("utf-8"):
            golden.write(case, comment, new)
        return
    expected = golden.text(sections.get("formatted.kvs"))
    if formatted != expected:
        if expected is None or formatted is None:
            pytest.fail(
                f"{case.name}: expected {'no output' if expected is None else 'output'}, "
                f"got {'None' if formatted is None else repr(formatted)} (rerun with --update-golden "
                "to accept)",
                pytrace=False,
            )
        diff = difflib.unified_diff(
            expected.splitlines(keepends=True),
            formatted.splitlines(keepends=True),
            "formatted.kvs (golden)",
            "formatted.kvs (actual)",
        )
        pytest.fail(f"{case.name} differs (rerun with --update-golden to accept):\n" + "".join(diff), pytrace=False)


@pytest.mark.parametrize("case", _cases(), ids=lambda p: p.stem)
def test_golden_compiles_the_same(case: Path, tmp_path: Path) -> None:
    original = _input(case)
    formatted = format_text(original, "input.kvs")
    if formatted is None:
        return
    same_compilation(tmp_path, original, formatted)


# -- idempotence ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES + _cases(), ids=lambda p: str(p.relative_to(ROOT)))
def test_idempotent(path: Path) -> None:
    text = _input(path) if path.suffix == ".txtar" else path.read_text(encoding="utf-8")
    once = format_text(text, path.name)
    if once is None:
        assert path.suffix == ".txtar", f"{path} does not parse"
        return
    assert format_text(once, path.name) == once
    assert once.endswith("\n") or once == ""
    inside = False  # in a triple-quoted string, whose content is kept as written
    for line in once.split("\n"):
        inside ^= line.count('"""') % 2 == 1
        assert inside or line == line.rstrip(), f"trailing whitespace: {line!r}"


# -- compile preservation over the examples ----------------------------------------------


@pytest.mark.parametrize("script", [p for p in EXAMPLES if p.parent.name == "examples"], ids=lambda p: p.stem)
def test_examples_compile_the_same(script: Path) -> None:
    """Every example (and the library it uses, and a film's scene scripts) formatted, as
    editor overlays."""
    overlays = {os.path.abspath(p): format_text(p.read_text(encoding="utf-8"), p.name) for p in EXAMPLES}
    assert all(text is not None for text in overlays.values())
    vars_files = tuple(str(p) for p in (script.with_name(script.stem + ".vars.toml"),) if p.exists())
    before = outcome(str(script), Options(var_files=vars_files))
    after = outcome(str(script), Options(var_files=vars_files, overlays=overlays))
    assert after == before
    assert before[0] is not None, f"{script.name} does not compile"


# -- compile preservation over generated scripts -------------------------------------------

NAMES = ["a", "b", "cafe", "hero", "mood", "東京", "x_1"]
URIS = [
    "https://e.com/1.png",
    "https://e.com/2.png",
    "http://e.com/{{ mood }}.png",
    "relative.png",
    "https://e.com/{{ a }}.jpg",
]
blank = st.sampled_from([" ", "  ", "\t", " \t "])
optional_blank = st.sampled_from(["", " ", "   ", "\t"])
comment = st.sampled_from(["# note", "#", '# with "quotes" and {{ braces }}', "#  spaced   ", "# 東京"])


def string(draw, texts) -> str:
    body = draw(texts)
    if draw(st.booleans()):
        return '"' + body + '"'
    inner = draw(st.sampled_from(["\n    ", "\n", "", "\n  \n  "]))
    return '"""' + inner + body + draw(st.sampled_from(["\n", "", "   \n"])) + '"""'


prompt_texts = st.sampled_from(
    [
        "@a meets @hero",
        "@cafe at {{ mood }}",
        "plain words",
        "raw @Image1 and @Element1",
        "@@at",
        'esc \\" \\\\ \\n \\t \\{',
        "{% for i in range(2) %}{{ i }} {% endfor %}@b",
        "",
        "# not a comment",
        "{{ undefined_name }}",
        "@東京 @x_1 {{ lib_mood }} @lib_set",
    ]
)
value_texts = st.sampled_from(["dusk", "{{ a }}", "x y", "", 'say \\"hi\\"'])


@st.composite
def let_value(draw, depth=0) -> str:
    kind = draw(st.sampled_from(["int", "bool", "string"] + (["list"] if depth < 2 else [])))
    if kind == "int":
        return str(draw(st.integers(-5, 30)))
    if kind == "bool":
        return draw(st.sampled_from(["true", "false"]))
    if kind == "string":
        return string(draw, value_texts)
    items = draw(st.lists(let_value(depth + 1), max_size=3))
    sep = draw(st.sampled_from([",", " , ", ", "]))
    trailing = draw(st.sampled_from(["", ","])) if items else ""
    return "[" + draw(optional_blank) + sep.join(items) + trailing + draw(optional_blank) + "]"


@st.composite
def statement(draw) -> str:
    kind = draw(st.sampled_from(["setting", "use", "let", "image", "element", "frame", "shot", "shot"]))
    b = lambda: draw(blank)  # noqa: E731
    if kind == "setting":
        key, values = draw(
            st.sampled_from(
                [
                    (
                        "model",
                        ["kling-video-o3-pro-reference-to-video", "nope", '"kling-video-o3-pro-reference-to-video"'],
                    ),
                    ("aspect", ["9:16", "16:9", "4:3", '"1:1"']),
                    ("audio", ["on", "off", "maybe"]),
                    ("negative", ['"blur"', '"{{ mood }}"']),
                    ("format", ["url", "b64"]),
                    ("namespace", ["my-org", '"bad space"']),
                    ("generations", ["1", "2", '"3"', "9"]),
                    ("assets", ["aurora/refs", "aurora/refs@media", '"aurora/{{ team }}"']),
                ]
            )
        )
        return key + b() + draw(st.sampled_from(values))
    if kind == "use":
        return "use" + b() + draw(st.sampled_from(['"lib.kvs"', '"missing.kvs"']))
    if kind == "let":
        return (
            "let"
            + b()
            + draw(st.sampled_from(NAMES))
            + draw(optional_blank)
            + "="
            + draw(optional_blank)
            + draw(let_value())
        )
    if kind == "image":
        return (
            "image"
            + b()
            + draw(st.sampled_from(NAMES))
            + draw(optional_blank)
            + "="
            + draw(optional_blank)
            + '"'
            + draw(st.sampled_from(URIS))
            + '"'
        )
    if kind == "frame":
        return draw(st.sampled_from(["start", "end"])) + b() + '"' + draw(st.sampled_from(URIS)) + '"'
    if kind == "shot":
        name = draw(st.sampled_from([*NAMES, ""]))
        duration = draw(st.sampled_from(["5", "5s", "3s", "2.5s", "5.0s", "16s", "0"]))
        return "shot" + b() + (name + b() if name else "") + duration + b() + string(draw, prompt_texts)
    return element(draw)


def element(draw) -> str:
    """An element block laid out in any way the grammar allows, comments inside."""

    def newline() -> str:
        out = draw(optional_blank)
        if draw(st.booleans()):
            out += " " + draw(comment)
        out += "\n"
        while draw(st.integers(0, 3)) == 0:
            out += draw(st.sampled_from(["\n", "  " + draw(comment) + "\n", "\t\n"]))
        return out + draw(optional_blank)

    def uri() -> str:
        return '"' + draw(st.sampled_from(URIS)) + '"'

    fields = []
    for kind in draw(st.lists(st.sampled_from(["front", "refs"]), max_size=3)):
        uris = [uri() for _ in range(1 if kind == "front" else draw(st.integers(1, 4)))]
        text = uris[0]
        for more in uris[1:]:
            text += "," + (newline() if draw(st.booleans()) else draw(optional_blank)) + more
        fields.append(kind + draw(blank) + text)
    one_line = draw(st.booleans())
    sep = (lambda: draw(blank)) if one_line else newline
    body = sep() + sep().join(fields) + sep() if fields else sep()
    return "element" + draw(blank) + draw(st.sampled_from(NAMES)) + draw(optional_blank) + "{" + body + "}"


@st.composite
def script(draw) -> str:
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    lines = []
    if draw(st.booleans()):
        lines += [draw(comment) for _ in range(draw(st.integers(1, 3)))] + [""]
    for text in draw(st.lists(statement(), min_size=1, max_size=10)):
        while draw(st.integers(0, 3)) == 0:
            lines.append(draw(st.sampled_from(["", draw(comment), "  " + draw(comment)])))
        lead = draw(st.sampled_from(["", "", " ", "\t"]))
        tail = draw(optional_blank) + (" " + draw(comment) if draw(st.integers(0, 3)) == 0 else "")
        lines.append(lead + text + tail)
    text = newline.join(line.replace("\n", newline) for line in lines)
    return text + draw(st.sampled_from(["", newline, newline * 3]))


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fmt")


@settings(
    max_examples=int(os.environ.get("KLINGSPEC_PROP_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.large_base_example,
        HealthCheck.data_too_large,
    ],
)
@given(text=script())
def test_generated_scripts_compile_the_same(text: str, folder: Path) -> None:
    formatted = format_text(text, "main.kvs")
    assert formatted is not None, f"a generated script does not parse:\n{text}"
    assert format_text(formatted, "main.kvs") == formatted
    assert "\r" not in formatted
    same_compilation(folder, text, formatted)


def test_never_formats_a_script_with_errors() -> None:
    assert format_text('shot a "x"\n') is None
    assert format_text('element e {\n  front "x"\n') is None
    assert format_text('shot a 5s "x"\nshot b 5s "y" "z"\n') is None


def test_keeps_the_language_server_signature() -> None:
    assert format_text(text='shot  a 5 "x"', name="buffer.kvs") == 'shot a 5s "x"\n'


# -- command line ----------------------------------------------------------------------------

UGLY = 'aspect   9:16\nshot a 5 "x"   # c\n'
PRETTY = 'aspect 9:16\n\nshot a 5s "x"  # c\n'


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _no_color(monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")


def test_cli_check(tmp_path: Path, capsys) -> None:
    ugly, pretty = tmp_path / "ugly.kvs", tmp_path / "pretty.kvs"
    ugly.write_text(UGLY)
    pretty.write_text(PRETTY)
    assert _cli(capsys, "fmt", "--check", str(pretty)) == (0, "", "")
    code, out, _ = _cli(capsys, "fmt", "--check", str(pretty), str(ugly))
    assert (code, out) == (1, f"{ugly}\n")
    assert ugly.read_text() == UGLY, "--check never writes"


def test_cli_writes_in_place(tmp_path: Path, capsys) -> None:
    path = tmp_path / "a.kvs"
    path.write_text(UGLY)
    os.chmod(path, 0o640)
    code, out, err = _cli(capsys, "fmt", str(path))
    assert (code, out) == (0, "")
    assert str(path) in err
    assert path.read_text() == PRETTY
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.kvs"], "no temporary file left behind"
    mtime = os.stat(path).st_mtime_ns
    assert _cli(capsys, "fmt", str(path)) == (0, "", "")
    assert os.stat(path).st_mtime_ns == mtime, "an unchanged file is not rewritten"


def test_cli_writes_through_a_symlink(tmp_path: Path, capsys) -> None:
    """As black does: the link's target is formatted, the link stays a link."""
    target = tmp_path / "shared" / "a.kvs"
    target.parent.mkdir()
    target.write_text(UGLY)
    link = tmp_path / "scene.kvs"
    link.symlink_to(Path("shared") / "a.kvs")  # relative, as links in a project usually are
    code, _, err = _cli(capsys, "fmt", str(link))
    assert code == 0 and str(link) in err
    assert link.is_symlink() and os.readlink(link) == str(Path("shared") / "a.kvs")
    assert target.read_text() == PRETTY
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.kvs", "shared"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.kvs"], "no temporary file left behind"


def test_cli_stdin_is_read_no_further_than_a_script_may_be(monkeypatch, capsys) -> None:
    """`fmt - < /dev/zero` ends: stdin is read up to the size limit and one byte more."""

    from klingspec.loading import MAX_FILE_BYTES

    class Zeros(io.RawIOBase):
        """Zero bytes, as /dev/zero, but ending after 4 limits so a test cannot hang."""

        served = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
            n = min(len(buffer), 4 * MAX_FILE_BYTES - self.served)
            buffer[:n] = bytes(n)
            self.served += n
            return n

    zeros = Zeros()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BufferedReader(zeros)))
    code, out, err = _cli(capsys, "fmt", "-")
    assert (code, out) == (1, "") and "KVS-file-too-large" in err
    assert zeros.served < 2 * MAX_FILE_BYTES


def test_cli_crlf_file_is_rewritten(tmp_path: Path, capsys) -> None:
    path = tmp_path / "a.kvs"
    path.write_bytes(PRETTY.replace("\n", "\r\n").encode())
    assert _cli(capsys, "fmt", "--check", str(path))[0] == 1
    assert _cli(capsys, "fmt", str(path))[0] == 0
    assert path.read_bytes() == PRETTY.encode()


def test_cli_syntax_error_left_untouched(tmp_path: Path, capsys) -> None:
    bad, good = tmp_path / "bad.kvs", tmp_path / "good.kvs"
    bad.write_text('aspect  9:16\nshot a "x"\n')
    good.write_text(UGLY)
    code, _out, err = _cli(capsys, "fmt", str(bad), str(good))
    assert code == 1
    assert f"{bad}:2:8: error[KVS-syntax-unexpected]" in err
    assert bad.read_text() == 'aspect  9:16\nshot a "x"\n'
    assert good.read_text() == PRETTY, "the other files are still formatted"


def test_cli_missing_and_undecodable_files(tmp_path: Path, capsys) -> None:
    code, _, err = _cli(capsys, "fmt", str(tmp_path / "nope.kvs"))
    assert code == 1 and "KVS-file-not-found" in err
    binary = tmp_path / "b.kvs"
    binary.write_bytes(b'shot a 5s "\xff"\n')
    code, _, err = _cli(capsys, "fmt", str(binary))
    assert code == 1 and "KVS-encoding" in err
    assert binary.read_bytes() == b'shot a 5s "\xff"\n'


def test_cli_stdin(monkeypatch, capsys) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(UGLY.encode())))
    assert _cli(capsys, "fmt", "-") == (0, PRETTY, "")
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(UGLY.encode())))
    assert _cli(capsys, "fmt", "--check", "-") == (1, "<stdin>\n", "")
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b'shot "x"\n')))
    code, out, err = _cli(capsys, "fmt", "-")
    assert (code, out) == (1, "") and "<stdin>:1:6: error[KVS-syntax-unexpected]" in err


def test_cli_diff(tmp_path: Path, capsys) -> None:
    path = tmp_path / "a.kvs"
    path.write_text(UGLY)
    code, out, _ = _cli(capsys, "fmt", "--diff", str(path))
    assert code == 0
    assert f"--- {path} (original)\n+++ {path} (formatted)\n" in out
    assert '-aspect   9:16\n-shot a 5 "x"   # c\n+aspect 9:16\n+\n+shot a 5s "x"  # c\n' in out
    assert path.read_text() == UGLY, "--diff never writes"
    assert _cli(capsys, "fmt", "--diff", "--check", str(path))[0] == 1


def test_cli_folder(tmp_path: Path, capsys) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.kvs").write_text(UGLY)
    (tmp_path / "notes.txt").write_text("not a script")
    code, out, _ = _cli(capsys, "fmt", "--check", str(tmp_path))
    assert (code, out) == (1, f"{tmp_path / 'sub' / 'a.kvs'}\n")


def test_cli_needs_a_file(capsys) -> None:
    assert _cli(capsys, "fmt")[0] == 2


# -- the repository's own scripts ------------------------------------------------------------


def test_examples_are_canonical(monkeypatch, capsys) -> None:
    """`klingspec fmt --check examples/` passes: the examples users copy are in the layout
    `klingspec fmt` gives. (The grammar tests under editors/vscode/tests/ and the inputs
    under tests/cases/ are deliberately not canonical.) If this fails, run
    `klingspec fmt examples/`, then `npm run snap:update --prefix editors/vscode`."""
    monkeypatch.chdir(ROOT)
    assert _cli(capsys, "fmt", "--check", "examples/") == (0, "", "")
