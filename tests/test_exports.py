"""The public surface: `klingspec.__all__` is sorted and every name in it is importable."""

from __future__ import annotations

import importlib

import klingspec


def test_all_is_sorted():
    assert klingspec.__all__ == sorted(klingspec.__all__)


def test_all_has_no_duplicates():
    assert len(klingspec.__all__) == len(set(klingspec.__all__))


def test_every_name_is_importable():
    for name in klingspec.__all__:
        value = getattr(klingspec, name)
        assert value is not None, name
        exec(f"from klingspec import {name}", {})


def test_star_import_gives_exactly_all():
    namespace: dict = {}
    exec("from klingspec import *", namespace)
    assert set(klingspec.__all__) <= set(namespace)


def test_exports_are_the_real_objects():
    from klingspec.diagnostics import Diagnostic
    from klingspec.pipeline import Options, Result, run_pipeline
    from klingspec.source import Source, Span

    assert klingspec.run_pipeline is run_pipeline
    assert klingspec.Options is Options and klingspec.Result is Result
    assert klingspec.Diagnostic is Diagnostic
    assert klingspec.Source is Source and klingspec.Span is Span


def test_core_api_is_exported():
    assert {"run_pipeline", "Options", "Result", "Diagnostic", "Source", "Span", "__version__"} <= set(
        klingspec.__all__
    )


def test_version_is_a_string():
    assert isinstance(klingspec.__version__, str) and klingspec.__version__.count(".") >= 1


def test_unknown_attribute_raises_attribute_error():
    try:
        klingspec.no_such_thing  # noqa: B018
    except AttributeError as error:
        assert "no_such_thing" in str(error)
    else:
        raise AssertionError("expected AttributeError")


def test_lazy_table_matches_all():
    lazy = set(getattr(klingspec, "_EXPORTS", {}))
    assert lazy <= set(klingspec.__all__)
    for name in lazy:
        module = importlib.import_module(klingspec._EXPORTS[name])
        assert getattr(module, name) is getattr(klingspec, name)
