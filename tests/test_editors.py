"""The VS Code extension under editors/vscode: manifest, language configuration, TextMate grammar.

The pure-Python checks need nothing but the files. The tokenizer checks run the grammar
through the engine VS Code itself uses (vscode-textmate + vscode-oniguruma, via
vscode-tmgrammar-test and scripts/tokenize.js); they need `npm ci --prefix editors/vscode`
first and are skipped, with that hint, when editors/vscode/node_modules is missing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from lark import Lark, Token

ROOT = Path(__file__).resolve().parent.parent
EXT = ROOT / "editors" / "vscode"
EXAMPLES = sorted((ROOT / "examples").rglob("*.kvs"))
NODE_MODULES = EXT / "node_modules"


def load_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def manifest() -> dict:
    return load_json(EXT / "package.json")


@pytest.fixture(scope="module")
def grammar() -> dict:
    return load_json(EXT / "syntaxes" / "kvs.tmLanguage.json")


@pytest.fixture(scope="module")
def langconf() -> dict:
    return load_json(EXT / "language-configuration.json")


# -- the manifest ---------------------------------------------------------------------------------


def test_manifest_is_a_vscode_extension(manifest):
    assert manifest["name"] == "klingspec"
    assert manifest["publisher"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"])
    assert re.fullmatch(r"\^1\.\d+\.\d+", manifest["engines"]["vscode"])
    assert manifest["activationEvents"] == ["onLanguage:kvs"]
    assert (EXT / manifest["main"]).is_file()
    assert "vscode-languageclient" in manifest["dependencies"]
    # the client library must not need a newer VS Code than the manifest promises
    lock = load_json(EXT / "package-lock.json")
    client = lock["packages"]["node_modules/vscode-languageclient"]
    assert client["engines"]["vscode"] == manifest["engines"]["vscode"]


def test_manifest_contributes_the_kvs_language_and_grammar(manifest, grammar):
    (language,) = manifest["contributes"]["languages"]
    assert language["id"] == "kvs"
    assert language["extensions"] == [".kvs"]
    load_json(EXT / language["configuration"])
    (contribution,) = manifest["contributes"]["grammars"]
    assert contribution["language"] == "kvs"
    assert contribution["scopeName"] == "source.kvs" == grammar["scopeName"]
    assert (EXT / contribution["path"]).resolve() == (EXT / "syntaxes" / "kvs.tmLanguage.json").resolve()


def test_manifest_settings_and_commands(manifest):
    properties = manifest["contributes"]["configuration"]["properties"]
    assert properties["klingspec.serverPath"]["default"] == "klingspec"
    assert properties["klingspec.serverArgs"]["default"] == []
    assert "klingspec.trace.server" in properties  # read by vscode-languageclient for client id "klingspec"
    assert manifest["contributes"]["configurationDefaults"]["[kvs]"]["editor.tabSize"] == 2
    assert [c["command"] for c in manifest["contributes"]["commands"]] == ["klingspec.restartServer"]


def test_extension_starts_klingspec_lsp_over_stdio(manifest):
    source = (EXT / manifest["main"]).read_text(encoding="utf-8")
    assert "require('vscode-languageclient/node')" in source
    assert "args: ['lsp', ...extra]" in source
    assert "transport: TransportKind.stdio" in source
    assert "getConfiguration('klingspec')" in source and "'serverPath'" in source
    assert "new LanguageClient('klingspec'" in source


def test_cli_has_the_lsp_command_the_extension_starts():
    from klingspec import cli

    group = getattr(cli, "main_group", None)
    if group is None or "lsp" not in getattr(group, "commands", {}):
        pytest.skip("klingspec has no `lsp` command yet; the extension starts `klingspec lsp`")
    assert "lsp" in group.commands


def test_npm_test_tooling_is_declared_and_locked(manifest):
    dev = manifest["devDependencies"]
    assert {"vscode-tmgrammar-test", "vscode-textmate", "vscode-oniguruma"} <= set(dev)
    assert "vscode-tmgrammar-test" in manifest["scripts"]["test"]
    assert "vscode-tmgrammar-snap" in manifest["scripts"]["test"]
    lock = load_json(EXT / "package-lock.json")
    assert lock["lockfileVersion"] >= 2
    for name in [*dev, *manifest["dependencies"]]:
        assert f"node_modules/{name}" in lock["packages"], f"{name} is not in package-lock.json"
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    assert "node_modules/" in ignored


def test_grammar_tests_and_snapshots_exist():
    assert sorted(p.name for p in (EXT / "tests").glob("*.test.kvs"))
    for example in EXAMPLES:
        copy = EXT / "tests" / "snap" / "examples" / example.relative_to(ROOT / "examples")
        assert copy.is_file() and copy.read_bytes() == example.read_bytes(), (
            f"{copy} is missing or stale: run `npm run snap:update --prefix editors/vscode`"
        )
        assert Path(f"{copy}.snap").is_file()


# -- the language configuration -----------------------------------------------------------------


def test_language_configuration(langconf):
    assert langconf["comments"] == {"lineComment": "#"}
    assert ["{", "}"] in langconf["brackets"] and ["[", "]"] in langconf["brackets"]
    pairs = {p["open"]: p["close"] for p in langconf["autoClosingPairs"]}
    assert pairs['"'] == '"' and pairs["{{"] == "}}" and pairs["{%"] == "%}"

    increase = re.compile(langconf["indentationRules"]["increaseIndentPattern"])
    decrease = re.compile(langconf["indentationRules"]["decreaseIndentPattern"])
    assert increase.search("element hero {") and increase.search("  element hero {   # the lead")
    assert not increase.search('element hero { front "https://a.example/f.png" }')
    assert increase.search("scene outro {") and increase.search("scene outro continues walk take 2 {  # the end")
    assert not increase.search('scene intro "intro.kvs"') and not increase.search('scene a { shot 3s "x" }')
    assert not increase.search('shot a 5s "{{ mood }} {"')
    assert decrease.search("}") and decrease.search("  }  # end") and not decrease.search('front "}"')


@pytest.mark.parametrize(
    "text, word",
    [
        ("@hero's cup", "@hero"),
        ("@Image2,", "@Image2"),
        ("@josé walks", "@josé"),
        ("shot café 5s", "café"),
        ("6s ", "6s"),
        ("@@aurora", "@@"),
        ("{{ brand|upper }}", "brand"),
    ],
)
def test_word_pattern(langconf, text, word):
    assert word in [m.group(0) for m in re.finditer(langconf["wordPattern"], text)]


# -- the grammar, without a tokenizer -------------------------------------------------------------

ONIGURUMA_ONLY = re.compile(r"\\[hHGKRXyY]|\\p\{|\\x\{|\(\?<[^=!]|\\k<|[*+?}]\+|\(\?~")


def grammar_rules(node, path="$"):
    """(path, rule) for every rule object in the grammar."""
    if isinstance(node, dict):
        if any(k in node for k in ("match", "begin", "include", "patterns", "name")):
            yield path, node
        for key, value in node.items():
            yield from grammar_rules(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from grammar_rules(value, f"{path}[{i}]")


def test_grammar_regexes_compile_with_python_re(grammar):
    compiled = 0
    for path, rule in grammar_rules(grammar):
        for key in ("match", "begin", "end", "while"):
            if key not in rule:
                continue
            pattern = rule[key]
            try:
                regex = re.compile(pattern)
            except re.error as err:
                # Oniguruma-only syntax is fine; anything else is a broken pattern
                assert ONIGURUMA_ONLY.search(pattern), f"{path}.{key}: {pattern!r}: {err}"
                continue
            compiled += 1
            captures = rule.get("captures" if key == "match" else f"{key}Captures", {})
            for group in captures:
                assert int(group) <= regex.groups, f"{path}.{key}: no group {group} in {pattern!r}"
    assert compiled >= 40


def test_grammar_includes_and_scope_names(grammar):
    repository = grammar["repository"]
    used = set()
    for path, rule in grammar_rules(grammar):
        include = rule.get("include")
        if include:
            assert include.startswith("#") and include[1:] in repository, f"{path}: {include}"
            used.add(include[1:])
    assert set(repository) == used, f"unused rules: {set(repository) - used}"
    names = {rule.get("name") for path, rule in grammar_rules(grammar) if path != "$"} - {None}
    for name in names:
        assert re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)*\.(kvs|jinja)", name), name
    for scope in [
        "comment.line.number-sign.kvs",
        "string.quoted.double.kvs",
        "string.quoted.triple.kvs",
        "constant.character.escape.kvs",
        "meta.embedded.jinja",
        "constant.numeric.duration.kvs",
        "variable.other.reference.kvs",
        "support.variable.reference.raw.kvs",
        "keyword.operator.assignment.kvs",
        "support.constant.setting.kvs",
    ]:
        assert scope in names


def test_grammar_names_and_mentions_follow_the_language(grammar):
    """Names, mentions and raw references use the same patterns as the parser and the binder."""
    from klingspec import binding

    text = json.dumps(grammar)
    name = re.search(r"^NAME: /(.*?)/", (ROOT / "grammar" / "kvs.lark").read_text(encoding="utf-8"), re.M).group(1)
    assert json.dumps(name)[1:-1] in text
    mentions = [re.compile(r["match"]) for r in grammar["repository"]["reference"]["patterns"] if r["match"] != "@@"]
    samples = ["@hero meets @Element1 in @Image2", "a@b.com @@x @Image2x @josé's", "@@@y @_x @9 (@cafe)"]
    for sample in samples:
        expected = {m.group(0) for m in binding._MENTION.finditer(sample) if m.group(1)}
        found = {m.group(0) for regex in mentions for m in regex.finditer(sample)}
        assert found == expected, sample


# -- the grammar through VS Code's tokenizer --------------------------------------------------------


def _node_tools():
    if not NODE_MODULES.is_dir():
        pytest.skip(
            "editors/vscode/node_modules is missing: run `npm ci --prefix editors/vscode` "
            "to test the grammar with vscode-textmate"
        )
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm are not on PATH")


def test_npm_test_passes():
    """vscode-tmgrammar-test assertions, snapshots of every example, the example checks and extension.js."""
    _node_tools()
    result = subprocess.run(
        ["npm", "test", "--prefix", str(EXT)], capture_output=True, text=True, timeout=180, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr


# Everything the parser's lexer produces, classified the way the highlighting should show it.
KEYWORD_SCOPES = {
    **{
        k: "keyword.control.setting.kvs"
        for k in ("model", "aspect", "resolution", "audio", "negative", "format", "namespace", "generations", "assets")
    },
    "use": "keyword.control.import.kvs",
    "let": "storage.type.let.kvs",
    "image": "storage.type.image.kvs",
    "element": "storage.type.element.kvs",
    "start": "keyword.control.frame.kvs",
    "end": "keyword.control.frame.kvs",
    "shot": "keyword.control.shot.kvs",
    "scene": "keyword.control.scene.kvs",
    "continues": "keyword.control.continues.kvs",
    "take": "keyword.other.take.kvs",
    "front": "keyword.other.field.kvs",
    "refs": "keyword.other.field.kvs",
    "true": "constant.language.boolean.kvs",
    "false": "constant.language.boolean.kvs",
    "=": "keyword.operator.assignment.kvs",
    "{": "punctuation.section.block.begin.kvs",
    "}": "punctuation.section.block.end.kvs",
    "[": "punctuation.section.list.begin.kvs",
    "]": "punctuation.section.list.end.kvs",
}
TERMINAL_SCOPES = {
    "COMMENT": "comment.line.number-sign.kvs",
    "STRING": "string.quoted.double.kvs",
    "TRIPLE_STRING": "string.quoted.triple.kvs",
    "DURATION": "constant.numeric.duration.kvs",
    "INT": "constant.numeric.integer.kvs",
    "WORD": "support.constant.setting.kvs",
}
NAME_SCOPES = {
    "let": "entity.name.variable.let.kvs",
    "image": "entity.name.function.image.kvs",
    "element": "entity.name.function.element.kvs",
    "shot": "entity.name.tag.shot.kvs",
    "scene": "entity.name.section.scene.kvs",
    "continues": "variable.other.scene.kvs",
}

# Valid, and exercising what the examples do not: keywords as names, lists, booleans,
# escapes, Jinja statements, raw references, CRLF-free non-ASCII text.
KITCHEN_SINK = '''\
# A script that uses every construct.
model kling-video-o3-pro-reference-to-video
negative "no {{ 'text' }} # not a comment"
namespace "{{ team }}"
use "lib/characters.kvs"   # not a template: {{ x }}
let team = "aurora"
let shot = 3
let loud = false
let mix = ["a", -2, true, ["b"],]
let café = "crème brûlée \\"quoted\\" \\\\ \\n \\t \\{ \\}"
image model = "https://assets.example.com/{{ team }}/m.png"
image 東京 = "https://assets.example.com/tokyo.jpg"
element hero { front "https://assets.example.com/hero.png" }
element josé {
  front "https://assets.example.com/jose/front.png"   # front
  refs  "https://assets.example.com/jose/left.png",

        "https://assets.example.com/jose/right.png"
}
start "https://assets.example.com/first.png"
end "https://assets.example.com/last.png"
shot end 2s "@hero meets @josé at @東京 with @model, @Image1 and @Element2; follow @@aurora"
shot 3 """
    {% for c in mix %}{{ c }} "and" ""more""{% endfor %} — “ünïcödé”
    {# a note #}{{ café | upper }}
"""
'''


# A film: scenes from files and written in place, `continues` with and without `take`, and
# a keyword of films used as a name.
FILM_SINK = """\
# A film that uses every construct of films.
scene intro "scenes/intro.kvs"   # a scene script
scene walk "scenes/walk.kvs" continues intro take 2
scene take "scenes/{{ not_a_template }}.kvs" continues walk
scene outro continues take take 1 {   # written in place
  aspect 16:9
  element hero { front "https://assets.example.com/hero.png" }
  shot scene 4s "@hero and the logo on black"
}
scene card {
  shot 3s "a title card"
}
scene empty continues card take 1 {}   # an empty scene written on one line
scene bare { }
shot after 5s "after the film's scenes"
"""


def lark_tokens(text: str) -> list[Token]:
    """Every token the parser's contextual lexer produces (comments included), in order."""
    tokens: list[Token] = []

    def keep(token: Token) -> Token:
        tokens.append(token)
        return token

    grammar_text = (ROOT / "grammar" / "kvs.lark").read_text(encoding="utf-8")
    names = set(re.findall(r"^([A-Z_][A-Z_0-9]*)(?:\.\d+)?:", grammar_text, re.M))
    probe = Lark(grammar_text, parser="lalr", lexer="contextual")
    names |= {t.name for t in probe.terminals}
    Lark(grammar_text, parser="lalr", lexer="contextual", lexer_callbacks={name: keep for name in names}).parse(
        text if text.endswith("\n") else text + "\n"
    )
    return tokens


def expected_scope(token: Token, previous: list[Token]) -> str | None:
    if token.type in TERMINAL_SCOPES:
        return TERMINAL_SCOPES[token.type]
    if token.type == "NAME":
        statement = next(t for t in reversed(previous) if t.type not in ("COMMENT", "_NL") and t.value.strip())
        return NAME_SCOPES[statement.value]
    if token.value in KEYWORD_SCOPES:
        return KEYWORD_SCOPES[token.value]
    return None  # newlines, commas


def utf16_column(line: str, column: int) -> int:
    return len(line[:column].encode("utf-16-le")) // 2


def tm_scopes_by_position(tokenized_lines, lines):
    """{(line index, code point column): scopes} from the vscode-textmate output."""
    at = {}
    for index, (tokens, line) in enumerate(zip(tokenized_lines, lines, strict=False)):
        columns = [utf16_column(line, c) for c in range(len(line) + 1)]
        for column, unit in enumerate(columns[:-1]):
            for token in tokens:
                if token["start"] <= unit < token["end"]:
                    at[(index, column)] = token["scopes"]
                    break
    return at


def tokenize_with_textmate(paths: list[Path]):
    result = subprocess.run(
        ["node", str(EXT / "scripts" / "tokenize.js"), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return {Path(entry["file"]): entry["lines"] for entry in json.loads(result.stdout)}


def test_textmate_agrees_with_the_parser_on_every_example(tmp_path):
    """Each token the real lexer finds has the matching scope on every character, and no
    character outside a comment or string token is scoped as one."""
    _node_tools()
    sink = tmp_path / "sink.kvs"
    sink.write_text(KITCHEN_SINK, encoding="utf-8")
    film_sink = tmp_path / "film-sink.kvs"
    film_sink.write_text(FILM_SINK, encoding="utf-8")
    files = [*EXAMPLES, sink, film_sink]
    assert len(EXAMPLES) >= 8
    tokenized = tokenize_with_textmate(files)
    for path in files:
        text = path.read_text(encoding="utf-8")
        lines = text.split("\n")
        at = tm_scopes_by_position(tokenized[path], lines)
        covered = {}
        tokens = lark_tokens(text)
        for i, token in enumerate(tokens):
            scope = expected_scope(token, tokens[:i])
            if scope is None:
                continue
            # walk the token's characters, across lines for triple-quoted strings
            line, column = token.line - 1, token.column - 1
            for char in token.value:
                if char == "\n":
                    line, column = line + 1, 0
                    continue
                where = f"{path.name}:{line + 1}:{column + 1} ({token.type} {token.value[:40]!r})"
                assert scope in at.get((line, column), []), f"{where}: expected {scope}, got {at.get((line, column))}"
                covered[(line, column)] = token.type
                column += 1
        for (line, column), scopes in at.items():
            for kind, scope in (
                ("COMMENT", TERMINAL_SCOPES["COMMENT"]),
                ("STRING", TERMINAL_SCOPES["STRING"]),
                ("TRIPLE_STRING", TERMINAL_SCOPES["TRIPLE_STRING"]),
            ):
                if scope in scopes:
                    assert covered.get((line, column)) == kind, (
                        f"{path.name}:{line + 1}:{column + 1}: {scope} outside a {kind} token"
                    )
