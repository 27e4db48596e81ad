"""Long inputs cost their own size, not a multiple of it.

Measured with tracemalloc against the length of the text: the STRING terminal used to
keep backtracking state per character (a 5 MB literal cost 874 MB to parse), each literal
kept a Python int per character for its offsets, and comments were found by a Python loop
over every character."""

from __future__ import annotations

import tracemalloc

import pytest
from helpers import codes, run

from klingspec.formatting import format_source
from klingspec.source import Source
from klingspec.syntax import parse

SIZE = 1_000_000


def peak_of(function, *args):
    tracemalloc.start()
    try:
        result = function(*args)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


LITERALS = {
    "plain": 'shot a 5s "' + "word " * (SIZE // 5) + '"\n',
    "escapes": 'shot a 5s "' + 'a\\"b ' * (SIZE // 5) + '"\n',
    "triple": 'shot a 5s """' + 'a "quoted" line\n' * (SIZE // 16) + '"""\n',
}


@pytest.mark.parametrize("text", LITERALS.values(), ids=LITERALS.keys())
def test_parsing_a_long_literal_costs_a_few_times_its_size(text):
    parse(Source("main.kvs", 'shot a 5s "x"\n'))  # the parser loaded outside the measurement
    (script, diagnostics), peak = peak_of(parse, Source("main.kvs", text))
    assert not diagnostics
    assert peak < 16 * len(text), peak  # 200 times before


@pytest.mark.parametrize("text", LITERALS.values(), ids=LITERALS.keys())
def test_formatting_a_long_literal_costs_a_few_times_its_size(text):
    format_source('shot a 5s "x"\n')
    (formatted, diagnostics), peak = peak_of(format_source, text)
    assert formatted is not None and not diagnostics
    assert peak < 24 * len(text), peak


def test_positions_inside_a_long_literal_with_escapes_stay_exact(tmp_path):
    text = 'shot a 5s "' + 'a\\"b ' * 1000 + '{{ nope }}"\n'
    result = run(tmp_path, text)
    [diagnostic] = [d for d in result.diagnostics if d.code == "KVS-template-undefined"]
    column = text.index("nope") + 1
    assert diagnostic.span.start_position == (1, column)
    assert diagnostic.span.end_position == (1, column + 4)


def test_unknown_escape_keeps_both_characters_and_its_place(tmp_path):
    result = run(tmp_path, 'shot a 5s "x\\q {{ nope }}"\n')
    assert codes(result) == ["KVS-syntax-escape", "KVS-template-undefined"]
    escape, undefined = result.diagnostics
    assert escape.span.start_position == (1, 13)
    assert undefined.span.start_position == (1, 19)
