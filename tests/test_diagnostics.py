"""`Diagnostic` values: severity comes from the code catalogue, equality and order as before."""

from __future__ import annotations

import pytest

from klingspec.codes import CODES
from klingspec.diagnostics import Diagnostic, sort_unique
from klingspec.source import Source


def test_severity_is_the_catalogue_entry_of_the_code():
    span = Source("a.kvs", 'shot a 5s "x"\n').span(0, 4)
    for code, entry in CODES.items():
        assert Diagnostic(code, span, "m").severity == entry.severity
        assert Diagnostic.of(code, span, "m").severity == entry.severity


def test_severity_cannot_be_given_and_an_unknown_code_fails_at_once():
    span = Source("a.kvs", "x").span(0)
    with pytest.raises(TypeError):
        Diagnostic("KVS-binding-unused", span, "m", severity="error")  # type: ignore[call-arg]
    with pytest.raises(KeyError):
        Diagnostic("KVS-made-up", span, "m")


def test_sorting_ranks_errors_before_warnings_and_drops_exact_repeats():
    source = Source("a.kvs", 'shot a 5s "x"\n')
    warning = Diagnostic.of("KVS-binding-unused", source.span(0, 4), "w")
    error = Diagnostic.of("KVS-no-shots", source.span(0, 4), "e")
    assert sort_unique([warning, error, warning]) == (error, warning)
    assert Diagnostic.of("KVS-no-shots", source.span(0, 4), "e") == error
