"""Template bombs: each one is refused from its operands, before Python allocates the
result. The bound is memory, measured with tracemalloc: the old sandbox reached gigabytes
on these (or a 25 s big-integer power chain) before any time or size check ran."""

from __future__ import annotations

import tracemalloc

import pytest
from helpers import codes, run

BOMBS = {
    "replace-filter": "{{ ('x' * 90000) | replace('x', 'x' * 90000) }}",
    "replace-method": "{{ ('x' * 90000).replace('x', 'x' * 90000) }}",
    "join-filter": "{{ (['x' * 90000] * 1000) | join('') }}",
    "join-separator": "{{ ('x' * 90000) | join('y' * 90000) }}",
    "join-method": "{{ ('y' * 90000).join('x' * 90000) }}",
    "format-width-argument": "{{ '{0:{1}}'.format('a', '999999999') }}",
    "format-repeated-field": "{{ '{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}{0}'.format('x' * 90000) }}",
    "format-map": "{{ '{a}{a}{a}{a}{a}{a}{a}{a}{a}{a}{a}{a}'.format_map({'a': 'x' * 90000}) }}",
    "percent-repeated": "{{ '%(a)s%(a)s%(a)s%(a)s%(a)s%(a)s%(a)s%(a)s%(a)s%(a)s%(a)s%(a)s' % {'a': 'x' * 90000} }}",
    "format-filter": "{{ '%(a)s%(a)s%(a)s%(a)s%(a)s%(a)s%(a)s%(a)s%(a)s%(a)s%(a)s%(a)s' | format(a='x' * 90000) }}",
    "string-doubling": "{% set ns = namespace(s='x' * 90000) %}"
    "{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}",
    "plus-doubling": "{% set ns = namespace(s='x' * 90000) %}"
    "{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s | length }}",
    "list-doubling": "{% set a = [1] * 90000 %}{% set b = a + a %}{{ (b + b) | length }}",
    "list-extend": "{% set a = [1] * 90000 %}{% for i in range(40) %}{{ a.extend(a) }}{% endfor %}",
    "list-printed": "{{ ['x' * 90000] * 90000 }}",
    "list-tojson": "{{ (['x' * 90000] * 90000) | tojson | length }}",
    "set-block": "{% set a = 'x' * 90000 %}{% set b %}{% for i in range(100000) %}{{ a }}{% endfor %}"
    "{% endset %}{{ b | length }}",
    "map-chain": "{{ range(100000) | map('string') | map('center', 99999) | list | length }}",
    "expandtabs": "{{ ('\\t' * 90000).expandtabs(90000) }}",
    "translate": "{{ ('x' * 90000).translate({120: 'y' * 90000}) }}",
    "indent": "{{ ('\\n' * 90000) | indent('y' * 90000) }}",
    "power-chain": "{{ ((((9 ** 64) ** 64) ** 64) ** 64) ** 64 }}",
    "squaring": "{% set ns = namespace(n=9) %}{% for i in range(40) %}{% set ns.n = ns.n * ns.n %}{% endfor %}"
    "{{ ns.n > 1 }}",
    "sum-of-lists": "{{ ([[1] * 90000] * 90000) | sum(start=[]) | length }}",
}


@pytest.mark.parametrize("template", BOMBS.values(), ids=BOMBS.keys())
def test_template_bomb_is_refused_before_it_allocates(tmp_path, template):
    text = 'shot a 5s "' + template.replace('"', '\\"') + '"\n'
    run(tmp_path, 'shot a 5s "{{ 1 }}"\n')  # Jinja imported and warm outside the measurement
    tracemalloc.start()
    try:
        result = run(tmp_path, text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert codes(result) == ["KVS-template-limit"]
    [diagnostic] = result.diagnostics
    assert diagnostic.span.start_position == (1, 11)
    assert peak < 40_000_000, peak


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ ['a', 'b'] | join(', ') }}", "a, b"),
        ("{{ 'a-b' | replace('-', ' and ') }}", "a and b"),
        ("{{ '{:>5}|{:.2f}'.format('a', 1.5) }}", "    a|1.50"),
        ("{{ '{w}'.format_map({'w': 'x'}) }}", "x"),
        ("{{ '%03d' % 7 }}", "007"),
        ("{{ 'a' ~ 1 ~ [2] }}", "a1[2]"),
        ("{{ 2 ** 64 }}", str(2**64)),
        ("{{ (10 ** 60) * (10 ** 60) > 0 }}", "True"),
        ("{% set b %}{% for i in range(3) %}{{ i }}{% endfor %}{% endset %}{{ b }}", "012"),
        ("{{ range(3) | map('string') | join }}", "012"),
        ("{{ '-'.join(range(3) | map('string')) }}", "0-1-2"),
        ("{{ [[1], [2]] | sum(start=[]) }}", "[1, 2]"),
    ],
)
def test_bounded_operations_still_work(tmp_path, template, expected):
    result = run(tmp_path, 'shot a 5s "' + template.replace('"', '\\"') + '"\n')
    assert result.ok, codes(result)
    assert result.request.body["prompt"] == expected
