"""`Positions`: code-point offsets to LSP positions and back, in each encoding, against
an independent count (no client)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lsprotocol import types as lsp
from pygls.workspace import PositionCodec

from klingspec.lsp.server import Positions
from tests.lsp.conftest import units

ENCODINGS = ["utf-16", "utf-8", "utf-32"]
# ASCII, 2- and 3-byte characters, an astral one, LSP's three line breaks, and characters
# `str.splitlines` breaks at but LSP does not
PIECES = ["a", "é", "東", "🌃", "\n", "\r", "\r\n", "\u2028", "\x85", "\x0c"]


def expected(text: str, offset: int, encoding: str) -> lsp.Position:
    ends = [m.end() for m in re.finditer("\r\n|\n|\r", text) if m.end() <= offset]
    start = ends[-1] if ends else 0
    return lsp.Position(len(ends), units(text[start:offset], encoding))


@pytest.mark.parametrize("encoding", ENCODINGS)
@given(pieces=st.lists(st.sampled_from(PIECES), max_size=12), data=st.data())
def test_positions_match_an_independent_count_and_map_back(encoding, pieces, data):
    text = "".join(pieces)
    positions = Positions(PositionCodec(encoding))
    offset = data.draw(st.integers(0, len(text)))
    found = positions.position(text, offset)
    assert found == expected(text, offset, encoding)
    if not (text[offset - 1 : offset] == "\r" and text[offset : offset + 1] == "\n"):
        assert positions.offset(text, found) == offset


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_column_past_the_end_of_a_line_means_its_end(encoding):
    text = "ab🌃\r\nlast 東"
    positions = Positions(PositionCodec(encoding))
    asked = lsp.Position(0, 99)
    assert positions.offset(text, asked) == text.index("\r")
    assert asked == lsp.Position(0, 99), "the caller's position is left as it was"
    assert positions.offset(text, lsp.Position(0, units("ab🌃", encoding) + 1)) == text.index("\r")
    assert positions.offset(text, lsp.Position(1, 99)) == len(text)
    assert positions.offset(text, lsp.Position(7, 0)) == len(text)


def test_the_default_is_utf16():
    assert Positions().position("🌃x", 2) == lsp.Position(0, 3)
