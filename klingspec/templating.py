"""Templating: Jinja2 inside strings only, sandboxed, strict about undefined names.

Each string literal is its own template, so an error's line is a line of that string and
maps straight back to the script. Undefined names are found statically (Jinja's runtime
`UndefinedError` carries no position) and underlined where they are written. Expansion
is bounded in size and time: a template that loops forever or grows to megabytes is
stopped and reported, not waited for.
"""

from __future__ import annotations

import math
import re
import sys
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any, cast

from klingspec import ast
from klingspec.diagnostics import Diagnostic, Related, Suggestion, close_matches
from klingspec.loading import Program, Var
from klingspec.source import Span

if TYPE_CHECKING:  # Jinja is imported on first use
    from collections.abc import Callable
    from types import FrameType

    from jinja2 import Environment, Template
    from jinja2.runtime import Context
    from jinja2.sandbox import SandboxedEnvironment

MAX_EXPANSION_CHARS = 100_000
MAX_EXPANSION_SECONDS = 0.5
MAX_REPEAT = 100_000
_MARKERS = ("{{", "{%", "{#")
_BLOCK = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)
_SIMPLE = re.compile(r"\{\{\s*([^\W\d]\w*)\s*\}\}")


@dataclass(frozen=True)
class Expansion:
    """The expanded value of every string literal, keyed by the literal's identity."""

    texts: dict[int, str]
    variables: dict[str, Any]
    failed: frozenset[int] = frozenset()  # literals whose template failed (and was reported)

    def __getitem__(self, text: ast.Text) -> str:
        found = self.texts.get(id(text))
        return found if found is not None else text.literal

    def did_fail(self, text: ast.Text) -> bool:
        """Whether `text`'s template failed: its value is unknown, so no later phase
        should judge it (the literal `{{ ... }}` is no URI, model or aspect ratio)."""
        return id(text) in self.failed


def has_template(value: str) -> bool:
    return any(marker in value for marker in _MARKERS)


def fold(value: str) -> str:
    """Triple-quoted strings: lines stripped, blank lines dropped, joined by single spaces."""
    return " ".join(line.strip() for line in value.splitlines() if line.strip())


class _Limit(Exception):
    pass


# Bounds on the values a template builds, checked from the operands BEFORE the result is
# made: Python builds a string, a list or an integer in C without a call our time bound
# could stop, so a single `replace` or `**` would otherwise allocate gigabytes first.
MAX_VALUE_CHARS = 1_000_000  # text in any one value a template makes (the output is 100,000)
MAX_ITEMS = MAX_REPEAT  # items in any one list
MAX_INT_BITS = 14_000  # about 4,200 digits: Python's own limit for turning a number into text


def _weight(value: Any, budget: int = MAX_VALUE_CHARS) -> int:
    """At least the length of `str(value)`, counted without making it; the count stops
    once it passes `budget` (so a list of a million lists costs no more than the budget).
    Nested values are walked with a stack, not recursion; a list held twice is counted
    twice, as `str` prints it twice (so a list that holds itself counts past any budget)."""
    if isinstance(value, str):
        return len(value)
    from jinja2.utils import Namespace

    total = 0
    stack = [value]
    while stack and total <= budget:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 2
        elif isinstance(item, (list, tuple, set, frozenset, dict, Namespace)):
            if isinstance(item, Namespace):
                item = object.__getattribute__(item, "_Namespace__attrs")
            total += 2 + 2 * len(item)
            if total <= budget:
                stack.extend(item.items() if isinstance(item, dict) else item)
        else:
            total += 40  # a float, a macro, a loop: their text is short
    return total


def _check_text(size: int, what: str) -> None:
    if size > MAX_VALUE_CHARS:
        raise _Limit(f"{what} would make more than {MAX_VALUE_CHARS:,} characters")


def _check_items(count: int, what: str) -> None:
    if count > MAX_ITEMS:
        raise _Limit(f"{what} would make more than {MAX_ITEMS:,} items")


def _check_bits(bits: int) -> None:
    if bits > MAX_INT_BITS:
        raise _Limit(f"a number past {MAX_INT_BITS * 3 // 10:,} digits is too large")


def _materialized(values: Any, what: str) -> list[Any]:
    """An iterable as a list, stopped once it has too many items or too much text: a
    filter chain's generator may make each item large, and only the list would show it."""
    if isinstance(values, (list, tuple)):
        _check_items(len(values), what)
        return list(values)
    if isinstance(values, (str, dict, set, frozenset)):
        return list(values)
    items = []
    size = 0
    for item in values:
        items.append(item)
        size += _weight(item)
        _check_items(len(items), what)
        _check_text(size, what)
    return items


def _binop_bound(operator: str, left: Any, right: Any) -> None:
    """Refuse an arithmetic operator whose result would be too large, from its operands."""
    numbers = isinstance(left, int) and isinstance(right, int)
    if operator == "**":
        # past 64 always (as before); below it, when the result would be too long
        too_long = numbers and right > 0 and abs(left) > 1 and (abs(left).bit_length() - 1) * right > MAX_INT_BITS
        if (isinstance(right, int) and abs(right) > 64) or too_long:
            raise _Limit(f"`** {right}` is too large an exponent")
    elif operator == "*":
        if numbers:
            _check_bits(abs(left).bit_length() + abs(right).bit_length())
        for sequence, times in ((left, right), (right, left)):
            if (
                isinstance(sequence, (str, list, tuple))
                and isinstance(times, int)
                and len(sequence) * times > MAX_REPEAT
            ):
                raise _Limit("repeating a value that many times is too large")
    elif operator == "+":
        if isinstance(left, str) and isinstance(right, str):
            _check_text(len(left) + len(right), "joining two strings")
        elif isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
            _check_items(len(left) + len(right), "joining two lists")
    elif operator == "%" and isinstance(left, str):
        _percent_bound(left, right)


def _percent_bound(spec: str, args: Any) -> None:
    """`spec % args` (and the `format` filter): every conversion is at most the widest
    argument plus the widest width or precision written in `spec`."""
    _check_format(spec)
    conversions = spec.count("%")
    if not conversions:
        return
    values = list(args.values()) if isinstance(args, dict) else list(args) if isinstance(args, tuple) else [args]
    widest = max((_weight(value) for value in values), default=0)
    padding = max((int(width) for width in re.findall(r"\d+", spec)), default=0)
    _check_text(len(spec) + conversions * (widest + padding), "the `%` formatting")


def _str_method_bound(method: str, text: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """The size of what a `str` method returns, for the methods that can grow text."""
    if method == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        _replace_bound(text, args[0], args[1], args[2] if len(args) > 2 else None)
    elif method == "join" and args:
        items = _materialized(args[0], "`join`")
        _check_text(sum(_weight(item) for item in items) + len(text) * len(items), "`join`")
    elif method == "expandtabs":
        tab = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(tab, int):
            _check_text(len(text) + text.count("\t") * tab, "`expandtabs`")
    elif method == "translate" and args and isinstance(args[0], dict):
        widest = max((_weight(value) for value in args[0].values()), default=0)
        _check_text(len(text) * max(widest, 1), "`translate`")


def _replace_bound(text: str, old: str, new: str, count: Any) -> None:
    found = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    _check_text(len(text) + found * max(len(new) - len(old), 0), "`replace`")


def _filter_bound(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """What a filter would make, from its arguments (the value first)."""
    if not args:
        return
    value, rest = args[0], args[1:]
    if name == "replace" and len(rest) >= 2:
        _replace_bound(
            str(value) if not isinstance(value, str) else value,
            str(rest[0]),
            str(rest[1]),
            rest[2] if len(rest) > 2 else kwargs.get("count"),
        )
    elif name == "join":
        items = _materialized(value, "`join`")
        separator = rest[0] if rest else kwargs.get("d", "")
        _check_text(sum(_weight(item) for item in items) + _weight(separator) * len(items), "`join`")
    elif name == "indent" and isinstance(value, str):
        width = rest[0] if rest else kwargs.get("width", 4)
        _check_text(len(value) + (value.count("\n") + 1) * _weight(width), "`indent`")
    elif name == "wordwrap" and isinstance(value, str):
        wrapstring = rest[2] if len(rest) > 2 else kwargs.get("wrapstring") or "\n"
        _check_text(len(value) * (1 + _weight(wrapstring)), "`wordwrap`")
    elif name == "format" and isinstance(value, str):
        _percent_bound(value, kwargs or rest)
    elif name == "sum":
        start = rest[1] if len(rest) > 1 else kwargs.get("start", 0)
        if not isinstance(start, (int, float)):
            _check_text(_weight(_materialized(value, "`sum`")) + _weight(start), "`sum`")
    elif name in _STRINGIFYING:
        _check_text(_weight(value), f"the `{name}` filter")


# Filters that turn their whole value into text: bounded by the value's text.
_STRINGIFYING = frozenset(
    (
        "string", "e", "escape", "forceescape", "pprint", "tojson", "urlencode", "xmlattr", "urlize",
        "title", "upper", "lower", "capitalize", "trim", "striptags", "truncate", "wordcount", "safe",
        "center", "list", "unique", "sort", "reverse", "dictsort",
    )
)  # fmt: skip


@cache
def environment() -> SandboxedEnvironment:
    """One sandboxed environment; imported lazily so template-free scripts never load Jinja."""
    from string import Formatter

    from jinja2 import StrictUndefined
    from jinja2.compiler import CodeGenerator, Frame
    from jinja2.nodes import Concat
    from jinja2.sandbox import SandboxedEnvironment, SandboxedFormatter

    class BoundedFormatter(SandboxedFormatter):
        """`str.format` that counts what it makes: a width may come from an argument
        (`'{:{}}'.format(x, w)`) and one field may repeat (`'{0}{0}{0}'`), so the spec
        string alone cannot tell."""

        made = 0

        def format_field(self, value: Any, format_spec: str) -> Any:
            _check_format(format_spec)
            padding = max((int(width) for width in re.findall(r"\d+", format_spec)), default=0)
            self.made += _weight(value) + padding
            _check_text(self.made, "`format`")
            return Formatter.format_field(self, value, format_spec)

    class BoundedCode(CodeGenerator):
        """`a ~ b` as a call to the environment, so its size is checked before the join."""

        def visit_Concat(self, node: Concat, frame: Frame) -> None:
            self.write("environment.bounded_concat((")
            for arg in node.nodes:
                self.visit(arg, frame)
                self.write(", ")
            self.write("))")

    class Bounded(SandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**", "%", "+"})
        code_generator_class = BoundedCode

        def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
            _binop_bound(operator, left, right)
            return super().call_binop(context, operator, left, right)

        def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
            _check_sizes(args, kwargs)
            receiver = getattr(__obj, "__self__", None)
            if isinstance(receiver, str) and getattr(__obj, "__name__", "") == "join" and args:
                args = (_materialized(args[0], "`join`"), *args[1:])  # a generator is read once
            if isinstance(receiver, str):
                _str_method_bound(getattr(__obj, "__name__", ""), receiver, args, kwargs)
            elif isinstance(receiver, list) and getattr(__obj, "__name__", "") == "extend" and args:
                _check_items(len(receiver) + len(_materialized(args[0], "`extend`")), "`extend`")
            return super().call(__context, __obj, *args, **kwargs)

        def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
            if getattr(value, "__name__", "") not in ("format", "format_map") or not isinstance(
                getattr(value, "__self__", None), str
            ):
                return None
            spec: str = value.__self__

            def bounded(*args: Any, **kwargs: Any) -> str:
                _check_sizes(args, kwargs)
                if value.__name__ != "format_map":
                    return BoundedFormatter(self).vformat(spec, args, kwargs)
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                return BoundedFormatter(self).vformat(spec, (), args[0])

            bounded.__name__ = value.__name__
            return bounded

        @staticmethod
        def concat(parts: Iterable[str]) -> str:  # every block's buffer: `{% set %}`, macros
            parts = list(parts)
            _check_text(sum(len(part) for part in parts), "the template")
            return "".join(parts)

        @staticmethod
        def bounded_concat(parts: tuple[Any, ...]) -> str:
            _check_text(sum(_weight(part) for part in parts), "`~`")
            return "".join(map(str, parts))

    def finalize(value: Any) -> Any:
        size = _weight(value)
        _check_text(size, "printing a value")
        printed = _PRINTED.get(None)
        if printed is not None:  # all a render prints, into its output or a block's buffer
            printed[0] += size
            _check_text(printed[0], "the template's printed values")
        return value

    env = Bounded(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, cache_size=4096, finalize=finalize
    )
    for name, function in list(env.filters.items()):
        env.filters[name] = _sized(name, function)
    env.globals["lipsum"] = _sized("lipsum", cast("Callable[..., Any]", env.globals["lipsum"]))
    return env


def _check_sizes(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Any whole number past the expansion bound given to a call or filter is refused
    before the call can build a value that large."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_EXPANSION_CHARS:
            shown = f"{value:,}" if value.bit_length() < 64 else "a number"
            raise _Limit(f"{shown} is larger than the {MAX_EXPANSION_CHARS:,}-character bound")


# The patterns of the error paths are kept as strings: `re` compiles each on first use
# and caches it, so a script whose templates are fine never pays for them at start-up.
_WIDTH = r"\d{6,}"


def _check_format(spec: str) -> None:
    if re.search(_WIDTH, spec) or "*" in spec:
        raise _Limit("a format width that large is refused")


def _sized(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """`function` (a filter) with its result's size checked from its arguments first;
    a filter that returns a generator has the generator bounded as it is read."""
    skip = 1 if hasattr(function, "jinja_pass_arg") else 0  # the environment or context

    def bounded(*args: Any, **kwargs: Any) -> Any:
        if name in ("join", "sum") and len(args) > skip and isinstance(args[skip], Iterator):
            args = (*args[:skip], _materialized(args[skip], f"`{name}`"), *args[skip + 1 :])  # read once
        _check_sizes(args[skip:], kwargs)
        _filter_bound(name, args[skip:], kwargs)
        result = function(*args, **kwargs)
        if isinstance(result, Iterator):
            return _bounded_items(result, f"the `{name}` filter")
        return result

    bounded.__name__ = function.__name__
    for attribute in ("jinja_pass_arg",):
        if hasattr(function, attribute):
            setattr(bounded, attribute, getattr(function, attribute))
    return bounded


def _bounded_items(items: Iterator[Any], what: str) -> Iterator[Any]:
    size = 0
    for count, item in enumerate(items, 1):
        size += _weight(item)
        _check_items(count, what)
        _check_text(size, what)
        yield item


@lru_cache(maxsize=4096)
def _compiled(value: str) -> tuple[Template, frozenset[str]]:
    env = environment()
    return env.from_string(value), _undeclared(env, value)


def _undeclared(env: Environment, value: str) -> frozenset[str]:
    from jinja2 import meta

    return frozenset(meta.find_undeclared_variables(env.parse(value)))


class Expander:
    def __init__(self, variables: dict[str, Any], var_spans: dict[str, Any]):
        self.variables = variables
        self.var_spans = var_spans
        self.used: set[str] = set()
        self.failed: set[str] = set()  # lets whose value could not be expanded
        self.diagnostics: list[Diagnostic] = []

    def expand(self, text: ast.Text) -> str | None:
        value = text.value
        if has_template(value):
            rendered = self._render(text)
            if rendered is None:
                return None
            value = rendered
        value = ast.restore_braces(value)
        return fold(value) if text.triple else value

    def _render(self, text: ast.Text) -> str | None:
        simple = self._substitute(text)
        if simple is not None:
            return simple
        from jinja2 import TemplateSyntaxError
        from jinja2.exceptions import SecurityError, UndefinedError

        try:
            try:
                template, names = _compiled(text.value)
            except TemplateSyntaxError as error:
                self.diagnostics.append(syntax_error(text, error.message or ""))
                return None
        except (RecursionError, MemoryError, SyntaxError):
            # Jinja's parser and compiler recurse once per level of nesting, and Python
            # compiles no more than 100 nested blocks (an IndentationError, a SyntaxError)
            self.diagnostics.append(
                Diagnostic.of(
                    "KVS-template-limit",
                    text.span,
                    "template expansion stopped: the template nests too deep",
                    "nest fewer parentheses, brackets or blocks; a `let` can hold a part",
                )
            )
            return None
        env = environment()
        missing = [n for n in names if n not in self.variables and n not in env.globals]
        self.used.update(n for n in names if n in self.variables)
        if missing:
            for name in sorted(set(missing) - self.failed):  # a failed let is reported once, at the let
                self.diagnostics.append(self._undefined(text, name))
            return None
        try:
            return _bounded_render(template, self.variables)
        except _Limit as error:
            self.diagnostics.append(
                Diagnostic.of(
                    "KVS-template-limit",
                    text.span,
                    f"template expansion stopped: {error}",
                    f"a string may expand to at most {MAX_EXPANSION_CHARS:,} characters within "
                    f"{MAX_EXPANSION_SECONDS:g} s",
                )
            )
        except SecurityError as error:
            self.diagnostics.append(
                Diagnostic.of(
                    "KVS-template-unsafe",
                    text.span,
                    f"the template sandbox refused: {error}",
                    "templates may format values, not reach into Python",
                )
            )
        except UndefinedError as error:
            self.diagnostics.append(
                Diagnostic.of(
                    "KVS-template-undefined",
                    text.span,
                    _undefined_words(error.message or ""),
                    "check the attribute or key name",
                )
            )
        except OverflowError as error:
            self.diagnostics.append(
                Diagnostic.of(
                    "KVS-template-limit",
                    text.span,
                    "template expansion stopped: a range or number is too large",
                    f"ranges may have at most {MAX_REPEAT:,} items" if "range" in str(error).lower() else None,
                )
            )
        except RecursionError:
            self.diagnostics.append(
                Diagnostic.of(
                    "KVS-template-limit",
                    text.span,
                    "template expansion stopped: recursion too deep",
                    "a macro calls itself without end",
                )
            )
        except Exception as error:  # any runtime failure inside the user's template
            message, hint = _runtime_words(error)
            self.diagnostics.append(Diagnostic.of("KVS-template-error", text.span, message, hint))
        return None

    def _substitute(self, text: ast.Text) -> str | None:
        """Fast path for strings whose only template parts are `{{ name }}` of defined
        variables: the same result Jinja gives (`str(value)`), without compiling a template
        (or importing Jinja at all). Anything else returns None and goes to Jinja."""
        value = text.value
        if "{%" in value or "{#" in value:
            return None
        names = _SIMPLE.findall(value)
        if not all(name in self.variables for name in names):
            return None
        rest = _SIMPLE.sub("", value)
        if "{{" in rest:
            return None
        self.used.update(names)
        variables = self.variables
        out = _SIMPLE.sub(lambda m: str(variables[m.group(1)]), value)
        if len(out) > MAX_EXPANSION_CHARS:
            return None  # let the bounded renderer report it
        return out

    def _undefined(self, text: ast.Text, name: str) -> Diagnostic:
        span = _name_span(text, name)
        close = close_matches(name, list(self.variables), n=1)
        hint = (
            f"did you mean `{close[0]}`?" if close else f"define it with `let {name} = ...` or pass `--var {name}=...`"
        )
        fix = [Suggestion.did_you_mean(span, close[0])] if close and span.text == name else []
        return Diagnostic.of(
            "KVS-template-undefined", span, f"`{name}` is not defined", hint, label="undefined name", suggestions=fix
        )


# What the render in progress has printed so far, counted by `finalize`: a `{% set %}`
# block or a macro fills a buffer the output bound never sees, with a new value each
# loop iteration (`{% for i in range(99999) %}{{ 'ab' * 999 }}{% endfor %}`: 200 MB).
_PRINTED: ContextVar[list[int]] = ContextVar("klingspec_printed")


def _bounded_render(template: Template, variables: dict[str, Any]) -> str:
    """Render under the size bound and the time bound (checked on every Python call, so a
    loop or a slow global cannot run on; plain `{{ name }}` never gets here)."""
    deadline = time.monotonic() + MAX_EXPANSION_SECONDS
    previous = sys.gettrace()

    def tick(frame: FrameType, event: str, arg: Any) -> None:
        if time.monotonic() > deadline:
            raise _Limit(f"it ran longer than {MAX_EXPANSION_SECONDS:g} s")
        return None

    sys.settrace(tick)
    printed = _PRINTED.set([0])
    try:
        size = 0
        chunks = []
        for chunk in template.generate(variables):
            size += len(chunk)
            if size > MAX_EXPANSION_CHARS:
                raise _Limit(f"it grew past {MAX_EXPANSION_CHARS:,} characters")
            chunks.append(chunk)
        return "".join(chunks)
    finally:
        _PRINTED.reset(printed)
        sys.settrace(previous)


def _line_span(text: ast.Text, lineno: int | None) -> Span:
    lines = text.value.split("\n")
    index = max(0, min((lineno or 1) - 1, len(lines) - 1))
    start = sum(len(line) + 1 for line in lines[:index])
    line = lines[index]
    stripped = len(line) - len(line.lstrip())
    return text.span_of(start + stripped, start + len(line.rstrip()))


def _name_span(text: ast.Text, name: str) -> Span:
    pattern = re.compile(r"(?<![\w.'\"])" + re.escape(name) + r"\b")
    for block in _BLOCK.finditer(text.value):
        found = pattern.search(text.value, block.start(), block.end())
        if found:
            return text.span_of(found.start(), found.end())
    return text.span


@dataclass(frozen=True)
class _Token:
    """A Jinja token with where it is in the string (Jinja itself keeps only the line)."""

    start: int
    end: int
    kind: str  # the lexer's name: variable_begin, block_begin, name, operator, ...
    value: str


@dataclass(frozen=True)
class _Failure:
    """Where Jinja's parser or lexer stopped: the token it stood on (None at the end of
    the string), the tokens read so far, the statements still open (each its tag's name
    token) and, for a lexer error, the offset of the character it could not read."""

    token: _Token | None
    tokens: list[_Token]
    open_tags: list[_Token]
    at: int | None


def _locate_failure(value: str) -> _Failure | None:
    """Parse `value` again, keeping each token's offset, and say where the parse failed
    (None if it does not fail). Only run for a string that failed to compile."""
    from jinja2 import TemplateSyntaxError
    from jinja2.lexer import Token, TokenStream
    from jinja2.parser import Parser

    env = environment()
    tokens: list[_Token] = []
    where: dict[int, _Token] = {}
    opened: list[_Token] = []
    lexed_to: list[int] = []

    def positioned() -> Iterable[tuple[int, str, str]]:
        position = 0
        try:
            for lineno, kind, text in env.lexer.tokeniter(value, None):
                start = value.find(text, position) if text else position
                start = position if start < 0 else start
                position = start + len(text)
                tokens.append(_Token(start, position, kind, text))
                yield lineno, kind, text
        except TemplateSyntaxError:
            lexed_to.append(position)
            raise

    kept: list[Token] = []  # alive, so no other token reuses an id of `where`

    def wrapped() -> Iterable[Token]:
        for token in env.lexer.wrap(positioned()):
            if tokens:
                kept.append(token)
                where[id(token)] = tokens[-1]
            yield token

    class Locating(Parser):
        def parse_statement(self) -> Any:
            opened.append(where.get(id(self.stream.current), _Token(len(value), len(value), "eof", "")))
            result = super().parse_statement()
            opened.pop()
            return result

    parser = Locating(env, "")
    try:
        parser.stream = TokenStream(wrapped(), None, None)  # reads the first token
        parser.parse()
    except TemplateSyntaxError:
        current = None if lexed_to else where.get(id(parser.stream.current))
        return _Failure(current, tokens, opened, lexed_to[0] if lexed_to else None)
    return None


_TAG_EXAMPLES = {
    "for": "{% for item in items %}",
    "if": "{% if mood %}",
    "elif": "{% elif mood %}",
    "set": "{% set name = value %}",
    "macro": "{% macro name() %}",
    "with": "{% with name = value %}",
    "filter": "{% filter upper %}",
    "call": "{% call name() %}",
}
_CLOSERS = {"variable_begin": "}}", "block_begin": "%}", "comment_begin": "#}"}
_SHOWN = {"variable_begin": "{{", "block_begin": "{%", "comment_begin": "{#"}
_INNERMOST = r"innermost block that needs to be closed is '(\w+)'"
_UNKNOWN_TAG = r"unknown tag '(\w+)'"
_EXPECTED = r"expected token '([^']+)', got '([^']*)'"
_JINJA_WORDS = {
    "end of print statement": "`}}`",
    "end of statement block": "`%}`",
    "end of template": "the end of the string",
    "name": "a name",
}


_BRACKET = r"unexpected '.', expected '([)\]}])'"
_PAIRS = {"(": ")", "[": "]", "{": "}"}


def _unclosed_bracket(tokens: list[_Token], closer: str) -> _Token | None:
    """The innermost bracket still open at the end of `tokens`."""
    stack: list[_Token] = []
    for token in tokens:
        if token.kind in _CLOSERS:
            stack = []
        elif token.kind == "operator" and token.value in _PAIRS:
            stack.append(token)
        elif token.kind == "operator" and token.value in _PAIRS.values() and stack:
            stack.pop()
    return stack[-1] if stack and _PAIRS[stack[-1].value] == closer else None


def _opener(tokens: list[_Token]) -> _Token | None:
    """The `{{`, `{%` or `{#` the failure is inside: the last one not yet closed."""
    for token in reversed(tokens):
        if token.kind in _CLOSERS:
            return token
        if token.kind in ("variable_end", "block_end", "comment_end"):
            return None
    return None


def _tag_span(text: ast.Text, failure: _Failure, name: _Token) -> Span:
    """The whole `{% ... %}` tag whose name token is `name` (the name alone if the tag is
    not closed)."""
    index = failure.tokens.index(name) if name in failure.tokens else -1
    start = next((t.start for t in reversed(failure.tokens[:index]) if t.kind == "block_begin"), name.start)
    end = next((t.end for t in failure.tokens[index:] if t.kind == "block_end"), name.end)
    return text.span_of(start, len(text.value[:end].rstrip()))


_NO_FILTER = r"No (filter|test) named '([^']+)'"


def _compile_error(text: ast.Text, message: str, lineno: int | None) -> Diagnostic:
    """A template the parser takes but Jinja's compiler refuses: an unknown filter or
    test, named in plain words at its place, with the close ones."""
    named = re.search(_NO_FILTER, message)
    if named is None:
        what = message.rstrip(".") or "it cannot be compiled"
        return Diagnostic.of("KVS-template-syntax", _line_span(text, lineno), f"template error: {what}")
    kind, name = named.groups()
    env = environment()
    known = sorted(env.filters if kind == "filter" else env.tests)
    close = close_matches(name, known, n=3)
    at = text.value.find(name)
    span = text.span_of(at, at + len(name)) if at >= 0 else _line_span(text, lineno)
    return Diagnostic.of(
        "KVS-template-syntax",
        span,
        f"`{name}` is not a template {kind}",
        ("did you mean " + " or ".join(f"`{c}`" for c in close) + "?") if close else f"the {kind}s: {', '.join(known)}",
        suggestions=[Suggestion.did_you_mean(span, close[0])] if close and at >= 0 else [],
    )


def syntax_error(text: ast.Text, compiled: str = "") -> Diagnostic:
    """A template that does not parse (or compile: `compiled` is what the compiler said),
    at the character where it goes wrong, in klingspec's words, with the fix where it is
    certain."""
    from jinja2 import TemplateSyntaxError

    message = ""
    lineno = None
    try:
        environment().parse(text.value)
    except TemplateSyntaxError as error:
        message, lineno = error.message or "", error.lineno
    failure = _locate_failure(text.value)
    if failure is None:  # it parses: the compiler refused it (an unknown filter or test)
        return _compile_error(text, compiled or message, lineno)
    value = text.value
    opener = _opener(failure.tokens)
    if failure.at is not None:  # the lexer stopped at a character
        at = failure.at
        char = value[at : at + 1]
        unclosed = re.search(_BRACKET, message)
        if unclosed:
            bracket = _unclosed_bracket(failure.tokens, unclosed.group(1))
            if bracket is not None:
                return Diagnostic.of(
                    "KVS-template-syntax",
                    text.span_of(bracket.start, bracket.end),
                    f"`{bracket.value}` is never closed",
                    f"close it with `{unclosed.group(1)}` before `{value[at : at + 2].strip()}`",
                    label="opened here",
                )
        if opener is not None and char == "}":
            closer = _CLOSERS[opener.kind]
            start = at - 1 if at > 0 and value[at - 1] in "%#" else at
            end = at + 2 if value[at + 1 : at + 2] == "}" else at + 1
            written = value[start:end]
            span = text.span_of(start, end)
            return Diagnostic.of(
                "KVS-template-syntax",
                span,
                f"`{_SHOWN[opener.kind]}` is closed by `{written}`",
                f"write `{closer}` to close the `{_SHOWN[opener.kind]}`",
                label=f"expected `{closer}`",
                related=[Related(text.span_of(opener.start, opener.end), f"`{_SHOWN[opener.kind]}` opened here")],
                suggestions=[Suggestion(span, closer, f"Replace `{written}` with `{closer}`", preferred=True)],
            )
        if char in "\"'":
            return Diagnostic.of(
                "KVS-template-syntax",
                text.span_of(at, at + 1),
                "a quoted string inside the template is never closed",
                f"close it with a matching {char}",
                label="opened here",
            )
        if (opener is not None and opener.kind == "comment_begin") or "comment" in message:
            start = opener.start if opener is not None else at
            return Diagnostic.of(
                "KVS-template-syntax",
                text.span_of(start, start + 2),
                "`{#` is never closed",
                "close the comment with `#}`",
                label="opened here",
            )
        if char in ")]}":
            return Diagnostic.of(
                "KVS-template-syntax",
                text.span_of(at, at + 1),
                f"`{char}` closes nothing",
                f"remove it, or open it with `{dict(zip(')]}', '([{', strict=True))[char]}` before",
                label="unmatched",
            )
        return Diagnostic.of(
            "KVS-template-syntax",
            text.span_of(at, at + 1),
            f"`{char}` cannot be used here in a template" if char.strip() else "a template cannot be read here",
            _syntax_help(message),
        )
    token = failure.token
    if message == "expected name or number":  # the parser has stepped past the `.`
        dot = next((t for t in reversed(failure.tokens) if t.value == "."), None)
        if dot is not None:
            return Diagnostic.of(
                "KVS-template-syntax",
                text.span_of(dot.start, dot.end),
                "an attribute name after `.` is missing",
                "name one, as in `{{ shot.title }}`, or remove the `.`",
                label="nothing follows this `.`",
            )
    if token is None:  # the parser ran off the end of the string
        innermost = re.search(_INNERMOST, message)
        if innermost and failure.open_tags:
            tag = failure.open_tags[-1]
            name = innermost.group(1)
            return Diagnostic.of(
                "KVS-template-syntax",
                _tag_span(text, failure, tag),
                f"`{{% {name} %}}` is never closed",
                f"close it with `{{% end{name} %}}` where its part ends",
                label="opened here",
            )
        if opener is not None:
            begin = _SHOWN[opener.kind]
            return Diagnostic.of(
                "KVS-template-syntax",
                text.span_of(opener.start, opener.end),
                f"`{begin}` is never closed",
                f"close it with `{_CLOSERS[opener.kind]}` inside this string",
                label="opened here",
            )
        end = len(value.rstrip())
        return Diagnostic.of(
            "KVS-template-syntax",
            text.span_of(end, end),
            "the template ends too early",
            _syntax_help(message),
        )
    span = text.span_of(token.start, token.end)
    unknown = re.search(_UNKNOWN_TAG, message)
    if unknown:
        name = unknown.group(1)
        innermost = re.search(_INNERMOST, message)
        if name.startswith("end") and innermost and len(failure.open_tags) >= 2:
            block = innermost.group(1)
            return Diagnostic.of(
                "KVS-template-syntax",
                span,
                f"`{{% {name} %}}` comes before the `{{% {block} %}}` inside it is closed",
                f"close the `{{% {block} %}}` first with `{{% end{block} %}}`",
                label="closes the wrong block",
                related=[Related(_tag_span(text, failure, failure.open_tags[-2]), f"`{{% {block} %}}` opened here")],
            )
        if name.startswith("end") or name in ("else", "elif"):
            return Diagnostic.of(
                "KVS-template-syntax",
                span,
                f"`{{% {name} %}}` has no block to close"
                if name.startswith("end")
                else f"`{{% {name} %}}` outside an `{{% if %}}`",
                "remove it, or open the block it belongs to before it",
                label="nothing open here",
            )
        return Diagnostic.of(
            "KVS-template-syntax",
            span,
            f"`{name}` is not a template tag",
            _syntax_help(message),
            label="unknown tag",
        )
    expected = re.search(_EXPECTED, message)
    before = failure.tokens[: failure.tokens.index(token)]
    previous = next((t for t in reversed(before) if t.kind != "whitespace"), None)
    if expected and expected.group(1) == "name" and previous is not None and previous.value in ("|", "."):
        after = "a filter name after `|`" if previous.value == "|" else "an attribute name after `.`"
        example = "`{{ mood | upper }}`" if previous.value == "|" else "`{{ shot.title }}`"
        return Diagnostic.of(
            "KVS-template-syntax",
            text.span_of(previous.start, previous.end),
            f"{after} is missing",
            f"name one, as in {example}, or remove the `{previous.value}`",
            label=f"nothing follows this `{previous.value}`",
        )
    shown = f"`{token.value.strip()}`" if token.value.strip() else "this"
    if expected:
        want = _JINJA_WORDS.get(expected.group(1), f"`{expected.group(1)}`")
        return Diagnostic.of(
            "KVS-template-syntax",
            span,
            f"expected {want} in the template, found {shown}",
            _syntax_help(message),
            label=f"expected {want}",
        )
    if token.kind in ("variable_end", "block_end") and previous is not None and previous.kind == "operator":
        return Diagnostic.of(
            "KVS-template-syntax",
            text.span_of(previous.start, previous.end),
            f"`{previous.value}` needs a value after it",
            f"write the value after `{previous.value}`, or remove it",
            label="nothing follows",
        )
    if token.kind == "block_end" and previous is not None and previous.value in _TAG_EXAMPLES:
        return Diagnostic.of(
            "KVS-template-syntax",
            _tag_span(text, failure, previous),
            f"`{{% {previous.value} %}}` is incomplete",
            f"write it whole, as in `{_TAG_EXAMPLES[previous.value]}`",
            label="incomplete tag",
        )
    if token.kind in ("variable_end", "block_end") and previous is not None and previous.kind in _CLOSERS:
        return Diagnostic.of(
            "KVS-template-syntax",
            text.span_of(previous.start, token.end),
            f"`{previous.value.strip()} {token.value.strip()}` is empty",
            "write a name or an expression inside it, or remove it",
            label="nothing inside",
        )
    return Diagnostic.of(
        "KVS-template-syntax",
        span,
        f"{shown} is not expected here in the template",
        _syntax_help(message),
        label="unexpected",
    )


def _syntax_help(message: str) -> str | None:
    if "expected token" in message:
        return "check the expression inside `{{ }}`: a filter after `|` needs a name, e.g. `{{ mood | upper }}`"
    if "end of template" in message or "Unexpected end" in message:
        return "a `{{` or `{%` is not closed inside this string"
    if "unknown tag" in message:
        return "only Jinja's own tags work here (`if`, `for`, `set`, `macro`, ...)"
    return None


_NO_ATTRIBUTE = r"^'?(.+?)(?: object)?'? has no attribute '(.+)'$"
_NO_ELEMENT = r"^'?(.+?) object'? has no element (.+)$"
_UNDEFINED = r"^'(.+)' is undefined$"
_PYTHON_TYPES = {
    "str": "text",
    "int": "a whole number",
    "float": "a number",
    "bool": "true/false",
    "list": "a list",
    "tuple": "a list",
    "dict": "a mapping",
    "NoneType": "nothing (none)",
    "None": "nothing (none)",
}


def _kind(python_type: str) -> str:
    return _PYTHON_TYPES.get(python_type, f"a {python_type}")


def _undefined_words(message: str) -> str:
    """Jinja's undefined-value messages, said in klingspec's words."""
    found = re.match(_NO_ATTRIBUTE, message)
    if found:
        return f"{_kind(found.group(1))} has no attribute or key `{found.group(2)}`"
    found = re.match(_NO_ELEMENT, message)
    if found:
        return f"{_kind(found.group(1))} has no item {found.group(2)}"
    found = re.match(_UNDEFINED, message)
    if found:
        return f"`{found.group(1)}` is not defined"
    return f"a template used a value that is not defined: {message}"


_TYPES = "str|int|float|NoneType|list|dict|tuple|bool"
_TYPE_NAMES = rf"'({_TYPES})'|\b({_TYPES})\b"
_FILTER_NAME = r"\bdo_(\w+)\(\)"


def _runtime_words(error: Exception) -> tuple[str, str | None]:
    """A failure while a template ran, in plain words: never a Python exception's name."""
    if isinstance(error, ZeroDivisionError):
        return (
            "division by zero in a template",
            "a divisor that can be zero needs a guard: `{% if n %}...{% endif %}`, or another value",
        )
    detail = re.sub(_TYPE_NAMES, lambda m: _kind(m.group(1) or m.group(2)), str(error)).strip()
    detail = re.sub(_FILTER_NAME, lambda m: f"the `{m.group(1)}` filter", detail)
    if isinstance(error, TypeError):
        return (
            f"a template used a value of the wrong kind: {detail}",
            "convert it first, e.g. `{{ n | string }}` or `{{ text | int }}`",
        )
    if isinstance(error, ValueError):
        return f"a template was given a value it cannot use: {detail}", None
    if isinstance(error, (KeyError, IndexError)):
        return f"a template looked up an item that is not there: {detail}", "check the key or index"
    if isinstance(error, MemoryError):
        return "template expansion stopped: it needs too much memory", None
    return f"a template failed while it was expanded{': ' + detail if detail else ''}", None


def _python(value: ast.Value, expander: Expander) -> Any:
    if isinstance(value, ast.Text):
        return expander.expand(value)
    if isinstance(value, ast.ListValue):
        items = [_python(item, expander) for item in value.items]
        return None if any(item is None for item in items) else items  # an item failed: the list is unknown
    return value.value


def expand(program: Program, overrides: Iterable[Var] = ()) -> tuple[Expansion, list[Diagnostic]]:
    """Expand every string literal of `program`.

    `let`s are evaluated in order, each seeing the ones before it; a `--var`/`--vars`
    value replaces a `let` of the same name (and is used as given, not expanded), taking
    the type of the `let`'s value (`typed_value`).
    """
    by_name = {var.name: var for var in overrides}
    variables: dict[str, Any] = {}
    expander = Expander(variables, {})
    diagnostics: list[Diagnostic] = []
    seen: dict[str, ast.Let] = {}
    texts: dict[int, str] = {}
    failed: set[int] = set()
    winning = {s.name.value: s for s in program.statements if isinstance(s, ast.Let)}  # the last `let` of a name
    for statement in program.statements:
        if not isinstance(statement, ast.Let):
            continue
        name = statement.name.value
        if name in seen:
            diagnostics.append(
                Diagnostic.of(
                    "KVS-let-duplicate",
                    statement.name.span,
                    f"`{name}` is defined again; this value wins",
                    "remove one of the definitions",
                    related=[Related(seen[name].name.span, "first defined here")],
                )
            )
        seen[name] = statement
        if name in by_name and winning[name] is statement:
            typed, problem = typed_value(by_name[name], statement)
            if problem is None:
                variables[name] = typed
                continue
            diagnostics.append(problem)  # the default is used instead, so nothing follows from it
        elif name in by_name:
            continue
        value = _python(statement.value, expander)
        if value is not None:
            variables[name] = value
            expander.failed.discard(name)
        else:
            expander.failed.add(name)
    for name, var in by_name.items():
        variables.setdefault(name, var.value)
    for statement in program.statements:
        if isinstance(statement, ast.Let):
            continue  # expanded above, in order
        for text in ast.template_texts(statement):
            value = expander.expand(text)
            if value is not None:
                texts[id(text)] = value
            else:
                failed.add(id(text))
    unused: dict[str, list[Var]] = {}  # by origin: a vars file, or --var
    for name, var in by_name.items():
        if name not in seen and name not in expander.used:
            unused.setdefault(var.origin, []).append(var)
    for origin, names in unused.items():
        diagnostics.extend(_unused(origin, names))
    return Expansion(texts, variables, frozenset(failed)), diagnostics + expander.diagnostics


_UNUSED_SHOWN = 5  # names a summary of unused variables lists


def _unused(origin: str, unused: list[Var]) -> list[Diagnostic]:
    """One warning per unused `--var`; one for all the unused variables of a vars file
    (a file of 10,000 keys gave 10,000 warnings), at the first of them."""
    hint = "check the spelling against the script's `{{ }}` names"
    if origin == "--var" or len(unused) == 1:
        return [
            Diagnostic.of("KVS-var-unused", var.span, f"`{var.name}` ({var.origin}) is not used by the script", hint)
            for var in unused
        ]
    names = ", ".join(f"`{var.name}`" for var in unused[:_UNUSED_SHOWN])
    more = f" and {len(unused) - _UNUSED_SHOWN:,} more" if len(unused) > _UNUSED_SHOWN else ""
    return [
        Diagnostic.of(
            "KVS-var-unused",
            unused[0].span,
            f"{len(unused):,} variables of {origin} are not used by the script: {names}{more}",
            hint,
            label="the first of them",
        )
    ]


# -- typed variables from outside --------------------------------------------------

_KINDS: dict[type, str] = {
    ast.Boolean: "a boolean",
    ast.Integer: "an integer",
    ast.Float: "a number",
    ast.Text: "a string",
    ast.ListValue: "a list",
}
_INTEGER = r"[+-]?[0-9]+\Z"
_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z"


def _kind_of(value: Any) -> str:
    """What a JSON/TOML value is, in the words of `_KINDS`."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"  # a TOML date or time


def typed_value(var: Var, let: ast.Let) -> tuple[Any, Diagnostic | None]:
    """`var`'s value as the type of `let`'s default, or a diagnostic at the `let`.

    A `--var` string is read as that type (`false` is false, `3` is 3); a vars-file value
    keeps its JSON/TOML type and must be that type already (an integer for a number too).
    """
    default = let.value
    expected = _KINDS.get(type(default), "a string")
    value = var.value
    if var.origin == "--var" or var.as_text:
        assert isinstance(value, str)  # the command line and a CSV cell give text
        converted = _from_text(value, default)
        if converted is not None:
            return converted[0], None
        message = (
            f"`--var {var.name}={value}` is not {expected}"
            if var.origin == "--var"
            else f"`{value}` in column `{var.name}` of {var.origin} is not {expected}"
        )
    else:
        if _fits(value, default):
            return value, None
        import json  # only a mistyped vars-file value needs it

        shown = ""
        if isinstance(value, (str, int, float)):  # a long value is shown by its start only
            written = json.dumps(value[:40] if isinstance(value, str) else value)
            shown = f" (`{written[:40]}...`)" if len(written) > 40 or len(str(value)) > 40 else f" (`{written}`)"
        message = f"`{var.name}` in {var.origin} is {_kind_of(value)}{shown}, not {expected}"
    return None, Diagnostic.of(
        "KVS-var-type",
        default.span,
        message,
        _type_help(var, default),
        label=f"`{var.name}` is {expected}, as its `let` says",
        related=[Related(var.span, "the value is given here")],
    )


def _from_text(value: str, default: ast.Value) -> tuple[Any] | None:
    """A `--var` string as the type of `default` (in a 1-tuple), or None if it is not one."""
    if isinstance(default, ast.Boolean):
        lowered = value.strip().lower()
        return (lowered == "true",) if lowered in ("true", "false") else None
    if isinstance(default, ast.Integer):
        text = value.strip()
        # Python refuses to read more than 4,300 digits; no count of anything needs 100
        return (int(text),) if re.match(_INTEGER, text) and len(text) <= 100 else None
    if isinstance(default, ast.Float):
        number = float(value) if re.match(_NUMBER, value.strip()) else None
        return (number,) if number is not None and math.isfinite(number) else None  # never inf or nan
    if isinstance(default, ast.ListValue):
        return None  # a list is given in a vars file
    return (value,)


def _fits(value: Any, default: ast.Value) -> bool:
    if isinstance(default, ast.Boolean):
        return isinstance(value, bool)
    if isinstance(default, ast.Integer):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, ast.Float):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if isinstance(default, ast.ListValue):
        return isinstance(value, list)
    return isinstance(value, str)


def _type_help(var: Var, default: ast.Value) -> str:
    name = var.name
    if var.as_text and var.origin != "--var":
        if isinstance(default, ast.ListValue):
            return "a list cannot be given in a CSV cell: use a JSON Lines table (.jsonl)"
        return f"the column `{name}` must hold {_KINDS.get(type(default), 'a string')} in every row"
    if var.origin == "--var":
        if isinstance(default, ast.Boolean):
            return f"pass `--var {name}=true` or `--var {name}=false`"
        if isinstance(default, ast.Integer):
            return f"pass a whole number, such as `--var {name}={default.value}`"
        if isinstance(default, ast.Float):
            return f"pass a number, such as `--var {name}={default.span.text}`"
        return f'a list is given in a `--vars` file, such as `{name} = ["a", "b"]` in TOML'
    if isinstance(default, ast.Boolean):
        return "write `true` or `false`, without quotes"
    if isinstance(default, ast.Integer):
        return f"write a whole number without quotes, such as `{default.value}`"
    if isinstance(default, ast.Float):
        return f"write a number without quotes, such as `{default.span.text}`"
    if isinstance(default, ast.ListValue):
        return 'write a list, such as `["a", "b"]`'
    return "put the value in double quotes: the `let` makes it a string"
