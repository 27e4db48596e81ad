"""source.py: offsets are the truth; line/column derived, 1-based, code points; CRLF aware."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from klingspec.source import Source, Span


def test_positions_of_a_small_text():
    source = Source("a.kvs", "ab\ncd\n\nxyz")
    assert source.position(0) == (1, 1)
    assert source.position(1) == (1, 2)
    assert source.position(2) == (1, 3)  # the newline itself ends line 1
    assert source.position(3) == (2, 1)
    assert source.position(6) == (3, 1)  # the empty line
    assert source.position(7) == (4, 1)
    assert source.position(10) == (4, 4)  # end of text
    assert source.line_starts == (0, 3, 6, 7)


def test_positions_are_clamped():
    source = Source("a.kvs", "ab\ncd")
    assert source.position(-5) == (1, 1)
    assert source.position(999) == (2, 3)
    assert source.offset(0, 0) == 0
    assert source.offset(99, 1) == 3
    assert source.offset(1, 99) == 5


def test_crlf_lines_and_columns():
    text = 'shot a 5s "x"\r\nshot b 5s "y"\r\n'
    source = Source("a.kvs", text)
    b = text.index("b")
    assert source.position(b) == (2, 6)
    assert source.line_text(1) == 'shot a 5s "x"'  # no stray \r
    assert source.line_text(2) == 'shot b 5s "y"'
    assert source.offset(2, 6) == b
    assert source.position(text.index("\r")) == (1, 14)


def test_non_ascii_columns_count_code_points():
    text = 'shot a 5s "東京 café 🎬 @hero"\n'
    source = Source("a.kvs", text)
    at = text.index("@hero")
    assert source.position(at) == (1, 22)
    assert source.offset(1, 22) == at
    assert Span(source, at, at + 5).text == "@hero"


def test_line_text_of_last_line_without_newline():
    source = Source("a.kvs", "one\ntwo")
    assert source.line_text(2) == "two"
    assert len(source.line_starts) == 2


def test_empty_source():
    source = Source("empty.kvs", "")
    assert source.position(0) == (1, 1)
    assert source.whole() == Span(source, 0, 0)
    assert source.line_text(1) == ""


def test_span_properties():
    source = Source("dir/a.kvs", "hello\nworld\n")
    span = source.span(6, 11)
    assert span.text == "world"
    assert span.path == "dir/a.kvs"
    assert span.start_position == (2, 1) and span.end_position == (2, 6)
    assert source.span(3).start == source.span(3).end == 3


def test_span_sub_and_cover():
    source = Source("a.kvs", "0123456789")
    span = source.span(2, 8)
    assert span.sub(1, 3).text == "34"
    assert span.sub(-5, 2) == Span(source, 2, 4)  # clamped at the start
    assert span.sub(4, 100) == Span(source, 6, 8)  # clamped at the end
    assert span.sub(5, 1).start <= span.sub(5, 1).end  # never inverted
    assert source.span(1, 3).cover(source.span(6, 9)) == Span(source, 1, 9)
    assert source.span(6, 9).cover(source.span(1, 3)) == Span(source, 1, 9)


def test_sources_compare_by_identity():
    a, b = Source("a.kvs", "x"), Source("a.kvs", "x")
    assert a != b and a == a
    assert Span(a, 0, 1) != Span(b, 0, 1)


texts = st.text(alphabet=st.sampled_from(list('ab \t\r\n東é🎬"')), max_size=60)


@settings(max_examples=200, deadline=None)
@given(texts, st.data())
def test_offset_position_round_trip(text, data):
    source = Source("p.kvs", text)
    offset = data.draw(st.integers(0, len(text)))
    line, column = source.position(offset)
    assert source.offset(line, column) == offset
    # the same position counted by hand
    before = text[:offset]
    assert line == before.count("\n") + 1
    assert column == offset - (before.rfind("\n") + 1) + 1


@settings(max_examples=100, deadline=None)
@given(texts)
def test_line_texts_rebuild_the_text(text):
    source = Source("p.kvs", text)
    lines = [source.line_text(n) for n in range(1, len(source.line_starts) + 1)]
    assert lines == [line.rstrip("\r") for line in text.split("\n")]


@pytest.mark.parametrize("text", ["a\r\nb", "a\nb", "a\rb"])
def test_lone_cr_is_not_a_line_break(text):
    source = Source("a.kvs", text)
    assert len(source.line_starts) == (1 if text == "a\rb" else 2)
