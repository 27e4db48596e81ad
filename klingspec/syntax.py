"""Parsing: the Lark LALR parser over grammar/kvs.lark, and the tree -> ast step.

The parser is Lark's stand-alone one, generated into `_kvs_parser.py` by
tools/generate_parser.py (a test keeps it equal to the grammar): the same classes as
Lark's, without importing Lark or building its tables at start-up.

Syntax errors never stop at the first one: after an error the statement around it is
blanked out (same offsets, so later positions stay true) and the text is parsed again,
up to `MAX_SYNTAX_ERRORS`. Each error is named from the parser state (Lark's
`match_examples`) and says what was expected, not which parser state failed.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import TYPE_CHECKING

from klingspec import ast
from klingspec.diagnostics import Diagnostic, Suggestion, close_matches
from klingspec.source import Source, Span

if TYPE_CHECKING:  # Lark's own annotations describe the generated copy of its classes
    from lark import Lark, Token, Tree
    from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

    def Lark_StandAlone() -> Lark: ...
else:
    from klingspec._kvs_parser import (
        Lark,
        Lark_StandAlone,
        Token,
        Tree,
        UnexpectedCharacters,
        UnexpectedEOF,
        UnexpectedInput,
        UnexpectedToken,
    )

MAX_SYNTAX_ERRORS = 20
MAX_NESTING = 16
STATEMENT_KEYWORDS = (
    "model",
    "aspect",
    "resolution",
    "audio",
    "negative",
    "format",
    "namespace",
    "generations",
    "assets",
    "use",
    "let",
    "image",
    "element",
    "start",
    "end",
    "shot",
    "scene",
)
_ESCAPE = r"\\(.)"  # a backslash and the character it escapes
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "{": ast.OPEN_BRACE, "}": ast.CLOSE_BRACE}


@cache
def parser() -> Lark:
    """The one parser: grammar/kvs.lark's tables, as tools/generate_parser.py wrote them."""
    return Lark_StandAlone()


def parse(source: Source) -> tuple[ast.Script, list[Diagnostic]]:
    """Parse one source into a Script (partial where there were errors) and diagnostics."""
    diagnostics: list[Diagnostic] = []
    text = source.text if source.text.endswith("\n") else source.text + "\n"
    tree = None
    while tree is None:
        try:
            tree = parser().parse(text)
        except UnexpectedInput as error:
            diagnostic, region = _describe(error, source, text)
            diagnostics.append(diagnostic)
            text, progressed = _blank_statement(text, _error_offset(error, text), *region)
            if not progressed or len(diagnostics) >= MAX_SYNTAX_ERRORS:
                if progressed:
                    end = len(source.text.rstrip())
                    diagnostics.append(
                        Diagnostic.of(
                            "KVS-syntax-too-many",
                            source.span(end),
                            f"stopped after {MAX_SYNTAX_ERRORS} syntax errors; the rest of the file was not checked",
                            "fix the errors above and check again",
                        )
                    )
                return ast.Script(source, (), partial=True), diagnostics
    builder = _Builder(source)
    scenes = tuple(builder.scene(c) for c in tree.children if isinstance(c, Tree) and c.data == "scene")
    statements = tuple(
        s
        for s in (builder.statement(c) for c in tree.children if not (isinstance(c, Tree) and c.data == "scene"))
        if s is not None
    )
    script = ast.Script(
        source,
        statements,
        tuple(ast.Comment(t.value, builder.span(t)) for t in _comments(source.text)),
        partial=bool(diagnostics),
        scenes=scenes,
    )
    return script, diagnostics + builder.diagnostics


# A comment, or a string to skip (it may hold a `#`): the grammar's STRING and
# TRIPLE_STRING, unterminated ones running to the line's or the text's end. One regex,
# not a loop per character: a 5 MB literal is scanned in C.
_COMMENT_OR_STRING = r'''#[^\n]*|"""(?:[^"\\]++|\\.|"(?!""))*+(?:""")?|"(?:[^"\\\n]++|\\.)*+"?'''


def _comments(text: str) -> list[Token]:
    """Comments are ignored by the grammar; find them with the same tokenizer rules."""
    found = []
    for match in re.finditer(_COMMENT_OR_STRING, text, re.S):
        if match.group().startswith("#"):
            value = match.group().rstrip("\r")
            found.append(Token("COMMENT", value, start_pos=match.start(), end_pos=match.start() + len(value)))
    return found


# -- errors -------------------------------------------------------------------

_EXAMPLES: dict[str, tuple[str, str]] = {
    # label: (message, help)
    "shot-duration": (
        "a shot needs a duration before its prompt",
        'write it as `shot NAME 5s "prompt"` (whole seconds)',
    ),
    "shot-prompt": ("a shot needs a prompt string after its duration", 'write it as `shot NAME 5s "prompt"`'),
    "setting-value": ("this setting needs a value", "for example `aspect 16:9`, `audio on`, `format url`"),
    "let-equals": ("a `let` needs `=` between the name and the value", 'write it as `let mood = "dusk"`'),
    "bind-equals": ("a binding needs `=` between the name and the URI", 'write it as `image cafe = "https://..."`'),
    "bind-uri": ("a binding needs a quoted URI", 'write it as `image cafe = "https://..."`'),
    "element-brace": ("an element's fields go inside `{ }`", 'write it as `element hero {\n  front "https://..."\n}`'),
    "element-field": (
        "an element block holds only `front` and `refs` lines",
        'write `front "URI"` once and `refs "URI", "URI"` for extra angles',
    ),
    "one-per-line": ("one statement per line", "start the next statement on a new line"),
    "name-expected": ("a name is expected here", "names are letters, digits and `_`, starting with a letter"),
}

_EXAMPLE_TEXTS: dict[str, list[str]] = {
    "shot-duration": ['shot a "x"\n', 'shot "x"\n'],
    "shot-prompt": ["shot a 5s\n", "shot 5s\n", "shot a 5s a\n"],
    "setting-value": [
        "aspect\n",
        "resolution\n",
        "model\n",
        "audio\n",
        "negative\n",
        "format\n",
        "namespace\n",
        "generations\n",
        "assets\n",
    ],
    "let-equals": ['let a "x"\n', "let a 1\n"],
    "bind-equals": ['image a "x"\n'],
    "bind-uri": ["image a =\n", "image a = b\n"],
    "element-brace": ['element a front "x"\n', "element a\n"],
    "element-field": ["element a { x\n", 'element a { "x"\n'],
    "one-per-line": [
        "aspect 9:16 audio\n",
        'use "a" "b"\n',
        'image a = "x" "y"\n',
        'shot a 5s "x" "y"\n',
        'start "x" "y"\n',
    ],
    "name-expected": ["let\n", "image\n", "element\n", 'let "x"\n', 'image "x"\n', "element {\n"],
}


@cache
def _example_index() -> dict[tuple[int | None, str | None], str]:
    """Parser state (and found token type) -> example label, like Lark's match_examples.

    Keyed by the LALR state number alone, not the whole stack, so that an error after
    fifty statements is named the same as one on the first line.
    """
    index: dict[tuple[int | None, str | None], str] = {}
    for label, texts in _EXAMPLE_TEXTS.items():
        for text in texts:
            try:
                parser().parse(text)
            except UnexpectedToken as error:
                index.setdefault((error.state.position, error.token.type), label)
                index.setdefault((error.state.position, None), label)
            except UnexpectedInput:
                pass
    return index


_HUMAN = {
    "NAME": "a name",
    "DURATION": "a duration such as `5s`",
    "INT": "an integer",
    "FLOAT": "a number",
    "WORD": "a value",
    "STRING": "a string",
    "TRIPLE_STRING": "a string",
    "_NL": "end of line",
    "$END": "end of file",
    "COMMENT": "a comment",
}


def _human(parser_: Lark, terminal: str) -> str:
    if terminal in _HUMAN:
        return _HUMAN[terminal]
    try:
        pattern = parser_.get_terminal(terminal).pattern
    except KeyError:
        return terminal
    return f"`{pattern.value}`" if pattern.type == "str" else terminal.lower()


def _found(token: Token) -> str:
    if token.type == "$END":
        return "end of file"
    if token.type == "_NL":
        return "end of line"
    value = str(token.value)
    return f"`{value[:40]}`" + ("..." if len(value) > 40 else "")


def _error_offset(error: UnexpectedInput, text: str) -> int:
    if isinstance(error, UnexpectedToken) and error.token.type == "$END":
        return len(text.rstrip())
    pos = getattr(error, "pos_in_stream", None)
    if pos is None and isinstance(error, UnexpectedToken):
        pos = error.token.start_pos
    return min(pos if pos is not None else len(text), len(text))


def _expected(error: UnexpectedInput) -> set[str]:
    """What the parser would accept here: asked of the parser state itself, which is
    exact, unlike the LALR lookahead set that merged states share."""
    try:
        return set(error.interactive_parser.accepts())  # type: ignore[no-untyped-call]  # lark leaves it unannotated
    except Exception:  # not every error carries a parser; fall back to Lark's estimate
        return set(getattr(error, "expected", ()) or ())


def _describe(
    error: UnexpectedInput, source: Source, text: str
) -> tuple[Diagnostic, tuple[int, int] | tuple[None, None]]:
    """The diagnostic for one syntax error, and the region to blank before re-parsing
    ((None, None): the statement around the error)."""
    unclosed = _unclosed_element(error, source, text)
    if unclosed:
        return unclosed
    return _describe_one(error, source, text), (None, None)


def _unclosed_element(error: UnexpectedInput, source: Source, text: str) -> tuple[Diagnostic, tuple[int, int]] | None:
    """`element x {` whose `}` never comes: say so at the `{`, and drop the block, so
    the statements after it are still parsed."""
    if not isinstance(error, UnexpectedToken) or "RBRACE" not in _expected(error):
        return None
    token = error.token
    at_eof = token.type == "$END"
    line_start = text.rfind("\n", 0, token.start_pos) + 1 if not at_eof else len(text)
    if not at_eof and (token.start_pos != line_start or str(token) not in STATEMENT_KEYWORDS):
        return None
    element = text.rfind("\nelement", 0, line_start)
    element = element + 1 if element != -1 else (0 if text.startswith("element") else -1)
    brace = text.find("{", element, line_start) if element != -1 else -1
    if brace == -1:
        return None
    name = text[element + len("element") : brace].strip()
    diagnostic = Diagnostic.of(
        "KVS-syntax-unexpected",
        source.span(brace, brace + 1),
        f"the block of element `{name}` is never closed",
        "add `}` on its own line after the element's `front` and `refs`",
        label="opened here",
    )
    return diagnostic, (element, line_start)


def _describe_one(error: UnexpectedInput, source: Source, text: str) -> Diagnostic:
    offset = _error_offset(error, text)
    if isinstance(error, UnexpectedCharacters):
        char = text[offset] if offset < len(text) else ""
        if char == '"':
            if text[max(0, offset - 2) : offset] == '""':  # lexed as "" then a lone quote
                return Diagnostic.of(
                    "KVS-syntax-string",
                    source.span(offset - 2, offset + 1),
                    'this `"""` string is never closed',
                    'close it with `"""`',
                    label="string starts here",
                )
            end = text.find("\n", offset)
            span = source.span(offset, end if end != -1 else len(source.text))
            return Diagnostic.of(
                "KVS-syntax-string",
                span,
                "this string is never closed",
                'close it with `"` on the same line, or use `"""` for several lines',
                label="string starts here",
            )
        return _bad_character(source, text, offset, char)
    token = error.token if isinstance(error, UnexpectedToken) else None
    at_end = token is not None and token.type == "_NL" and not text[token.end_pos :].strip()
    if token is None or token.type == "$END" or isinstance(error, UnexpectedEOF) or at_end:
        expected = sorted({_human(parser(), t) for t in _expected(error)})
        label = _label(error, token) if token is not None else None
        if label:
            message, hint = _EXAMPLES[label]
            return Diagnostic.of(
                "KVS-syntax-eof",
                source.span(offset),
                f"the script ends early: {message}",
                hint,
                label=f"expected {_either(expected)}",
            )
        return Diagnostic.of(
            "KVS-syntax-eof",
            source.span(offset),
            "the script ends in the middle of a statement",
            f"expected {_either(expected)}" if expected else None,
        )
    span = source.span(token.start_pos, max(token.end_pos, token.start_pos + 1))
    near = _foreign_quotes(source, text, token) or _setting_separator(source, text, token)
    if near:
        return near
    if token.type in ("NAME", "WORD") and _at_statement_start(error):
        return _unknown_statement(source, text, token, span)
    accepted = _expected(error)
    if "STRING" in accepted and "://" in text[token.start_pos : token.start_pos + 12]:
        end = token.start_pos
        while end < len(text) and not text[end].isspace():
            end += 1
        return Diagnostic.of(
            "KVS-syntax-unexpected",
            source.span(token.start_pos, end),
            "a URI must be a quoted string",
            'put it in double quotes: "https://..."',
        )
    label = _label(error, token)
    expected = sorted({_human(parser(), t) for t in accepted})
    if label:
        message, hint = _EXAMPLES[label]
        return Diagnostic.of(
            "KVS-syntax-unexpected",
            span,
            f"{message}; found {_found(token)}",
            hint,
            label=f"expected {_either(expected)}",
        )
    return Diagnostic.of("KVS-syntax-unexpected", span, f"unexpected {_found(token)}", f"expected {_either(expected)}")


# -- near-misses from other formats: `key: value`, `duration 10s`, curly quotes ----------

SETTING_KEYWORDS = STATEMENT_KEYWORDS[:9]
# field names of the API's request body (and other tools' words) -> the statement
_ALIASES = {
    "aspect_ratio": "aspect",
    "ratio": "aspect",
    "negative_prompt": "negative",
    "generate_audio": "audio",
    "sound": "audio",
    "response_format": "format",
    "target_namespace": "namespace",
    "num_generations": "generations",
    "model_name": "model",
}
_SHOT_WORDS = {"duration": "a duration", "length": "a duration", "seconds": "a duration", "prompt": "a prompt"}
_QUOTES = {"\u201c": "\u201d", "\u201e": "\u201d", "\u2018": "\u2019", "'": "'", "\u201d": "\u201d"}
_WORD = re.compile(r'[^\s"#{}\[\],=\ufeff]+\Z')
_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"\Z')


def _line(text: str, offset: int) -> tuple[int, str]:
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    return start, text[start : end if end != -1 else len(text)].rstrip("\r")


def _unknown_statement(source: Source, text: str, token: Token, span: Span) -> Diagnostic:
    """An unknown first word: a keyword's near-miss (`shto`, `Aspect:`, `aspect_ratio =`),
    or a word that belongs inside a shot (`duration 10s`)."""
    start = _position(token.start_pos)
    line_start, line = _line(text, start)
    found = re.match(r"([^\s:=]+)(\s*[:=]\s*)?", line[start - line_start :])
    key, separator = (found.group(1), found.group(2) or "") if found else (str(token.value), "")
    shot = _SHOT_WORDS.get(key.lower())
    if shot is not None:
        seconds = re.search(r"(?<![\w.])(\d+(?:\.\d+)?)\s*s?\b", line[start - line_start + len(key) :])
        duration = f"{seconds.group(1)}s" if seconds and shot == "a duration" else "5s"
        return Diagnostic.of(
            "KVS-syntax-unexpected",
            source.span(start, start + len(key)),
            f"unknown statement `{key}`",
            f'{shot} belongs to a shot: write it as `shot NAME {duration} "..."`',
        )
    lowered = key.lower()
    close = (
        [_ALIASES[lowered]]
        if lowered in _ALIASES
        else [lowered]
        if lowered in STATEMENT_KEYWORDS
        else close_matches(lowered, STATEMENT_KEYWORDS, n=1)
    )
    if not close:
        return Diagnostic.of(
            "KVS-syntax-unexpected",
            span,
            f"unknown statement `{token.value}`",
            "a statement starts with one of: " + ", ".join(f"`{k}`" for k in STATEMENT_KEYWORDS),
        )
    fix: list[Suggestion] = []
    if separator.strip():  # `aspect_ratio: 16:9`: the name and the `:` are replaced together
        written = source.span(start, start + len(key) + len(separator))
        fix = [Suggestion(written, close[0] + " ", f"Replace `{written.text.strip()}` with `{close[0]}`", True)]
        hint = f"did you mean `{close[0]}`? a setting's value follows it after a space, without `{separator.strip()}`"
    else:
        hint = f"did you mean `{close[0]}`?"
        if span.text == key:
            fix = [Suggestion.did_you_mean(span, close[0])]
    return Diagnostic.of("KVS-syntax-unexpected", span, f"unknown statement `{token.value}`", hint, suggestions=fix)


def _setting_separator(source: Source, text: str, token: Token) -> Diagnostic | None:
    """`aspect: 16:9`, `model = kling-...`, `aspect_ratio 16:9`: a setting written as
    YAML, TOML or the request body would."""
    line_start, line = _line(text, _position(token.start_pos))
    found = re.match(r"(\s*)(\w+)(\s*[:=]\s*|\s+)(\S.*?)\s*\Z", line)
    if found is None:
        return None
    key, separator, value = found.group(2), found.group(3), found.group(4)
    target = _ALIASES.get(key.lower()) or (key.lower() if key.lower() in SETTING_KEYWORDS else None)
    sign = separator.strip()
    if target is None or (target == key and not sign):
        return None
    single = bool(_WORD.match(value) or _STRING.match(value))
    shown = value if single else '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if target == key:  # only the separator is wrong
        at = line_start + found.start(3)
        written = source.span(at, at + len(separator))
        return Diagnostic.of(
            "KVS-syntax-unexpected",
            written,
            f"a setting's value follows its name after a space, not `{sign}`",
            f"write it as `{key} {shown}`",
            label=f"remove this `{sign}`",
            suggestions=[Suggestion(written, " ", f"Remove `{sign}`", preferred=True)] if single else [],
        )
    at = line_start + found.start(2)
    written = source.span(at, line_start + found.end(3))
    return Diagnostic.of(
        "KVS-syntax-unexpected",
        source.span(at, at + len(key)),
        f"unknown statement `{key}`",
        f"the setting is `{target}`: write it as `{target} {shown}`",
        suggestions=[Suggestion(written, target + " ", f"Use `{target}`", preferred=True)] if single else [],
    )


def _foreign_quotes(source: Source, text: str, token: Token) -> Diagnostic | None:
    """A string in typographic quotes (pasted from a document) or single quotes, at or
    before the token the parser stopped at."""
    error_at = _position(token.start_pos)
    line_start, line = _line(text, error_at)
    i, limit = 0, error_at - line_start
    while i <= min(limit, len(line) - 1):
        char = line[i]
        if char == "#":
            return None
        if char == '"':  # a straight string: skip it
            i += 1
            while i < len(line) and line[i] != '"':
                i += 2 if line[i] == "\\" else 1
            i += 1
            continue
        if char in _QUOTES and (i == 0 or line[i - 1] in " \t=,["):
            return _quoted(source, line_start, line, i)
        i += 1
    return None


def _quoted(source: Source, line_start: int, line: str, i: int) -> Diagnostic:
    opener = line[i]
    closers = {_QUOTES[opener], opener} if opener != "'" else {"'"}
    end = next(
        (j for j in range(i + 1, len(line)) if line[j] in closers and (j + 1 == len(line) or line[j + 1] in " \t,]#")),
        None,
    )
    kind = "single quotes" if opener == "'" else "typographic quotes"
    message = f'strings are written in straight double quotes `"`, not {kind}'
    if end is None:
        at = line_start + i
        return Diagnostic.of("KVS-syntax-unexpected", source.span(at, at + 1), message, 'write the string as "..."')
    inner = line[i + 1 : end]
    replacement = '"' + inner.replace("\\", "\\\\").replace('"', '\\"') + '"'
    written = source.span(line_start + i, line_start + end + 1)
    return Diagnostic.of(
        "KVS-syntax-unexpected",
        written,
        message,
        f"write it as `{replacement}`",
        suggestions=[Suggestion(written, replacement, "Use straight double quotes", preferred=True)],
    )


def _label(error: UnexpectedInput, token: Token) -> str | None:
    index = _example_index()
    position = error.state.position if error.state is not None else None
    return index.get((position, token.type)) or index.get((position, None))


def _at_statement_start(error: UnexpectedInput) -> bool:
    expected = _expected(error)
    return "SHOT" in expected and "LET" in expected


def _either(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


def _bad_character(source: Source, text: str, offset: int, char: str) -> Diagnostic:
    import unicodedata

    span = source.span(offset, offset + 1)
    code = f"U+{ord(char):04X}" if char else "?"
    name = unicodedata.name(char, "").lower() if char else ""
    if char and (unicodedata.category(char) in ("Zs", "Cf") or char in "\u00a0\u3000"):
        return Diagnostic.of(
            "KVS-syntax-character",
            span,
            f"unexpected {name or 'invisible character'} ({code})",
            "replace it with a normal space (editors often paste these from documents)",
        )
    shown = f"`{char}`" if char.isprintable() and char else code
    return Diagnostic.of("KVS-syntax-character", span, f"unexpected character {shown}", _character_help(text, offset))


def _character_help(text: str, offset: int) -> str:
    line_start = text.rfind("\n", 0, offset) + 1
    before = text[line_start:offset].split()
    if (before and before[0] in ("image", "start", "end", "use", "front", "refs")) or "://" in text[
        offset : offset + 12
    ]:
        return "URIs and paths are strings: put them in double quotes"
    return "strings go in double quotes; comments start with `#`"


def _blank_statement(text: str, offset: int, start: int | None = None, end: int | None = None) -> tuple[str, bool]:
    """Blank the statement holding `offset`, keeping line breaks so offsets stay true.

    The statement runs from the last line at or before `offset` that starts at column 0
    (indented lines and `}` lines continue a statement) up to the next such line.
    """
    if start is None:
        start = text.rfind("\n", 0, offset) + 1
        while start > 0 and text[start : start + 1] in (" ", "\t", "}"):
            start = text.rfind("\n", 0, start - 1) + 1
    if end is None:
        end = offset
        while True:
            nl = text.find("\n", end)
            if nl == -1:
                end = len(text)
                break
            end = nl + 1
            if end >= len(text) or text[end] not in " \t\r\n}#":
                break
    if start >= end:
        return text, False
    region = text[start:end]
    blanked = "".join(c if c == "\n" else " " for c in region)
    if blanked == region:
        return text, False
    return text[:start] + blanked + text[end:], True


# -- tree -> ast -------------------------------------------------------------------


def _tree(node: Tree[Token] | Token) -> Tree[Token]:
    """A child the grammar makes a rule (lark types every child as either)."""
    assert isinstance(node, Tree), node
    return node


def _token(node: Tree[Token] | Token) -> Token:
    """A child the grammar makes a terminal (lark types every child as either)."""
    assert isinstance(node, Token), node
    return node


def _position(offset: int | None) -> int:
    """Lark types token positions as optional; its lexer always sets them."""
    assert offset is not None
    return offset


class _Builder:
    """Turns Lark trees into ast dataclasses. Collects diagnostics; never raises."""

    def __init__(self, source: Source):
        self.source = source
        self.diagnostics: list[Diagnostic] = []

    def span(self, node: Tree[Token] | Token) -> Span:
        if isinstance(node, Token):
            return Span(self.source, _position(node.start_pos), _position(node.end_pos))
        return Span(self.source, node.meta.start_pos, node.meta.end_pos)

    def statement(self, tree: Tree[Token] | Token) -> ast.Statement | None:
        if not isinstance(tree, Tree):
            return None
        build: Callable[[Tree[Token]], ast.Statement] = getattr(self, "_" + tree.data)
        return build(tree)

    def _setting(self, t: Tree[Token]) -> ast.Setting:
        key, value = t.children
        key_token = _tree(key).children[0]
        setting_value = self.value(_tree(value))
        assert isinstance(setting_value, (ast.Text, ast.Word))  # the grammar allows only these
        if isinstance(setting_value, ast.Word):
            setting_value = self._near_word(str(key_token), setting_value)
        return ast.Setting(ast.Name(str(key_token), self.span(key_token)), setting_value, self.span(t))

    def _near_word(self, key: str, word: ast.Word) -> ast.Word:
        """A one-word setting value that parses but was meant otherwise: `aspect:16:9`
        (a `:` after the name) or `model 'kling-...'` (quoted, but not with `"`). Reported,
        and read as meant, so nothing follows from it."""
        value, span = word.value, word.span
        if value.startswith(":") and len(value) > 1:
            colon = Span(self.source, span.start, span.start + 1)
            self.diagnostics.append(
                Diagnostic.of(
                    "KVS-syntax-unexpected",
                    colon,
                    "a setting's value follows its name after a space, not `:`",
                    f"write it as `{key} {value[1:]}`",
                    label="remove this `:`",
                    suggestions=[Suggestion(colon, " ", "Remove `:`", preferred=True)],
                )
            )
            return ast.Word(value[1:], Span(self.source, span.start + 1, span.end))
        closer = _QUOTES.get(value[:1])
        if closer and len(value) > 2 and value[-1] in (closer, value[0]):
            inner = value[1:-1]
            kind = "single quotes" if value[0] == "'" else "typographic quotes"
            self.diagnostics.append(
                Diagnostic.of(
                    "KVS-syntax-unexpected",
                    span,
                    f'strings are written in straight double quotes `"`, not {kind}',
                    f'write it as `"{inner}"`',
                    suggestions=[Suggestion(span, f'"{inner}"', "Use straight double quotes", preferred=True)],
                )
            )
            return ast.Word(inner, Span(self.source, span.start + 1, span.end - 1))
        return word

    def _use(self, t: Tree[Token]) -> ast.Use:
        return ast.Use(self.text(_tree(t.children[0])), self.span(t))

    def _let(self, t: Tree[Token]) -> ast.Let:
        name, value = t.children
        return ast.Let(self.name(_token(name)), self.value(_tree(value)), self.span(t))

    def _image(self, t: Tree[Token]) -> ast.Image:
        name, uri = t.children
        return ast.Image(self.name(_token(name)), self.text(_tree(uri)), self.span(t))

    def _element(self, t: Tree[Token]) -> ast.Element:
        name, *fields = t.children
        built = tuple(
            ast.ElementField(
                str(_tree(f.children[0]).children[0]), tuple(self.text(_tree(u)) for u in f.children[1:]), self.span(f)
            )
            for f in fields
            if isinstance(f, Tree)
        )
        return ast.Element(self.name(_token(name)), built, self.span(t))

    def _frame(self, t: Tree[Token]) -> ast.Frame:
        kind, uri = t.children
        return ast.Frame(str(_tree(kind).children[0]), self.text(_tree(uri)), self.span(t))

    def _shot(self, t: Tree[Token]) -> ast.Shot:
        *maybe_name, duration, prompt = t.children
        name = self.name(_token(maybe_name[0])) if maybe_name else None
        token = _tree(duration).children[0]
        raw = str(token).removesuffix("s")
        try:
            seconds = Decimal(raw)
        except InvalidOperation:  # the token regex makes this unreachable; stay total anyway
            seconds = Decimal(0)
        return ast.Shot(name, ast.Duration(seconds, self.span(token)), self.text(_tree(prompt)), self.span(t))

    def scene(self, t: Tree[Token]) -> ast.Scene:
        name, *rest = t.children
        path = None
        continues = None
        body: list[ast.Statement] = []
        block = False
        for child in rest:
            if isinstance(child, Tree) and child.data == "text":
                path = self.text(child)
            elif isinstance(child, Tree) and child.data == "continues":
                scene, *take = child.children
                number = self.value(_tree(take[0])) if take else None
                assert number is None or isinstance(number, ast.Integer)  # the grammar allows only this
                continues = ast.Continues(self.name(_token(scene)), number, self.span(child))
            else:
                block = True
                built = self.statement(child)
                if built is not None:
                    body.append(built)
        if path is None:
            block = True
        return ast.Scene(self.name(_token(name)), path, tuple(body) if block else None, continues, self.span(t))

    def name(self, token: Token) -> ast.Name:
        return ast.Name(str(token), self.span(token))

    def value(self, t: Tree[Token], depth: int = 0) -> ast.Value:
        kind = t.data
        if kind == "text":
            return self.text(t)
        if kind == "word":
            token = t.children[0]
            return ast.Word(str(token), self.span(token))
        if kind == "integer":
            token = t.children[0]
            return ast.Integer(int(str(token)), self.span(token))
        if kind == "float":
            token = t.children[0]
            return ast.Float(float(str(token)), self.span(token))
        if kind == "boolean":
            token = t.children[0]
            return ast.Boolean(str(token) == "true", self.span(token))
        if depth >= MAX_NESTING:
            self.diagnostics.append(
                Diagnostic.of(
                    "KVS-syntax-nesting",
                    self.span(t),
                    f"lists are nested more than {MAX_NESTING} deep",
                    "a template variable holds text, numbers and simple lists",
                )
            )
            return ast.ListValue((), self.span(t))
        return ast.ListValue(tuple(self.value(c, depth + 1) for c in t.children if isinstance(c, Tree)), self.span(t))

    def text(self, t: Tree[Token]) -> ast.Text:
        token = _token(t.children[0])
        raw = str(token)
        quote = 3 if token.type == "TRIPLE_STRING" else 1
        base = _position(token.start_pos) + quote
        body = raw[quote : len(raw) - quote]
        pieces: list[str] = []  # joined every 4,096 into `done`: a million small strings are 50 MB
        done: list[str] = []
        indices, offsets = array("q", [0]), array("q", [base])  # see ast.Text
        copied = 0  # body[:copied] is in `pieces`; found by regex, so a long literal costs its size
        length = 0  # of the value so far
        for escape in re.finditer(_ESCAPE, body, re.S):
            i, nxt = escape.start(), escape.group(1)
            pieces.append(body[copied:i])
            length += i - copied
            replacement = _ESCAPES.get(nxt)
            if replacement is None:
                self.diagnostics.append(
                    Diagnostic.of(
                        "KVS-syntax-escape",
                        Span(self.source, base + i, base + i + 2),
                        f"unknown escape `\\{nxt}`",
                        'known escapes: `\\"`, `\\\\`, `\\n`, `\\t`, `\\{`, `\\}`; write `\\\\` for a backslash',
                    )
                )
                replacement = "\\" + nxt
            for k in range(len(replacement)):  # each at the escape
                indices.append(length + k)
                offsets.append(base + i)
            pieces.append(replacement)
            if len(pieces) > 4096:
                done.append("".join(pieces))
                pieces.clear()
            length += len(replacement)
            copied = i + 2
            indices.append(length)
            offsets.append(base + copied)
        pieces.append(body[copied:])
        done.append("".join(pieces))
        return ast.Text("".join(done), self.span(token), indices, offsets, quote == 3)
