"""A property: no script from a grammar-aware generator makes klingspec allocate past a
fixed bound (tracemalloc's peak over the whole pipeline).

The generator writes valid statements whose strings hold templates built from the
operations that can amplify a value (repetition, `+`, `~`, `**`, `replace`, `join`,
`format`, `%`, `indent`, `sum`, ...) nested into each other and into loops that double a
value, plus deep nesting and long literals: the shapes of the template bombs, not random
bytes, so that an unbounded operation is found rather than merely possible."""

from __future__ import annotations

import os
import tracemalloc

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from klingspec.pipeline import Options, run_pipeline

PATH = os.path.abspath("/nonexistent-klingspec-memory/main.kvs")
PEAK_BOUND = 64_000_000  # bytes; a checked script is a few KB, the bounds allow ~1 MB values

sizes = st.sampled_from([0, 1, 7, 64, 999, 9_999, 90_000, 99_999, 100_000, 10**6, 10**9])
small = st.sampled_from([1, 2, 9, 40, 64, 65, 200])

atoms = st.one_of(
    sizes.map(lambda n: f"('ab' * {n})"),
    sizes.map(lambda n: f"([1] * {n})"),
    sizes.map(lambda n: f"range({n})"),
    small.map(str),
    st.just("'x'"),
    st.just("'\\\\t'"),
    st.just("'{0}{0}{0}{0}'"),
    st.just("'%s%s'"),
    st.just("'{:{}}'"),
)


def _combine(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    pair = st.tuples(inner, inner)
    return st.one_of(
        pair.map(lambda p: f"({p[0]} * {p[1]})"),
        pair.map(lambda p: f"({p[0]} + {p[1]})"),
        pair.map(lambda p: f"({p[0]} ~ {p[1]})"),
        pair.map(lambda p: f"({p[0]} ** {p[1]})"),
        pair.map(lambda p: f"({p[0]} % {p[1]})"),
        pair.map(lambda p: f"({p[0]} | replace('a', {p[1]}))"),
        pair.map(lambda p: f"({p[0]}).replace('', {p[1]})"),
        pair.map(lambda p: f"({p[0]} | join({p[1]}))"),
        pair.map(lambda p: f"({p[0]}).join({p[1]})"),
        pair.map(lambda p: f"({p[0]}).format({p[1]}, {p[1]})"),
        pair.map(lambda p: f"({p[0]} | format({p[1]}, {p[1]}))"),
        pair.map(lambda p: f"({p[0]} | indent({p[1]}))"),
        pair.map(lambda p: f"({p[0]} | center({p[1]}))"),
        pair.map(lambda p: f"([{p[0]}] * {p[1]})"),
        pair.map(lambda p: f"(({p[0]}).expandtabs({p[1]}))"),
        inner.map(lambda e: f"({e} | list)"),
        inner.map(lambda e: f"({e} | tojson)"),
        inner.map(lambda e: f"({e} | map('string') | list)"),
        inner.map(lambda e: f"([{e}] | sum(start=[]))"),
        inner.map(lambda e: f"[{e}, {e}, {e}, {e}]"),
    )


expressions = st.recursive(atoms, _combine, max_leaves=6)


def _doubling(expression: str) -> str:
    return (
        f"{{% set ns = namespace(v={expression}) %}}"
        "{% for i in range(30) %}{% set ns.v = ns.v ~ ns.v %}{% endfor %}{{ ns.v | length }}"
    )


templates = st.one_of(
    expressions.map(lambda e: "{{ " + e + " }}"),
    expressions.map(lambda e: "{{ (" + e + ") | length }}"),
    expressions.map(_doubling),
    expressions.map(
        lambda e: "{% set b %}{% for i in range(99999) %}{{ " + e + " }}{% endfor %}{% endset %}{{ b | length }}"
    ),
    small.map(lambda n: "{{ " + "(" * n + "1" + ")" * n + " }}"),
    small.map(lambda n: "{% if true %}" * n + "x" + "{% endif %}" * n),
)


@st.composite
def scripts(draw) -> str:
    lines = [f'let v = "{draw(templates)}"']
    for i in range(draw(st.integers(1, 3))):
        template = draw(templates).replace('"', '\\"')
        lines.append(f'shot s{i} 5s "{template}"')
    if draw(st.booleans()):
        lines.append('shot long 5s "' + "word " * draw(st.sampled_from([10, 10_000, 200_000])) + '"')
    return "\n".join(lines) + "\n"


@settings(
    max_examples=int(os.environ.get("KLINGSPEC_MEMORY_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scripts())
def test_no_generated_script_allocates_past_the_bound(text):
    run_pipeline(PATH, Options(overlays={PATH: 'shot a 5s "{{ 1 }}"\n'}))  # imports outside the measurement
    tracemalloc.start()
    try:
        result = run_pipeline(PATH, Options(overlays={PATH: text}))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < PEAK_BOUND, (peak, text[:300])
    assert all(d.code != "KVS-internal" for d in result.diagnostics), [d.message for d in result.diagnostics]
