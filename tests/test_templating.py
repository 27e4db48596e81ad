"""templating.py: Jinja inside strings, undefined names at the name, lets in order, --var."""

from __future__ import annotations

import pytest
from helpers import codes, errors, locate, only, run, where


def test_undefined_name_caret_inside_triple_quoted_multiline_string(tmp_path):
    text = 'let mood = "dusk"\nshot a 5s """\n    First line.\n    The {{ mod | upper }} light.\n"""\n'
    diagnostic = only(run(tmp_path, text), "KVS-template-undefined")
    assert where(diagnostic) == (*locate(text, "mod |")[:2], 4, locate(text, "mod |")[1] + 3)
    assert diagnostic.span.text == "mod"
    assert diagnostic.help == "did you mean `mood`?"


def test_undefined_name_on_a_later_line_of_a_block(tmp_path):
    text = 'shot a 5s """\n  {% if true %}\n    {{ ghost }}\n  {% endif %}\n"""\n'
    diagnostic = only(run(tmp_path, text), "KVS-template-undefined")
    assert where(diagnostic) == locate(text, "ghost")


def test_undefined_name_not_confused_with_text_or_attribute(tmp_path):
    # "mood" appears as plain text and as an attribute before the real use
    text = 'let x = "1"\nshot a 5s "mood {{ x }} {{ mood }}"\n'
    diagnostic = only(run(tmp_path, text), "KVS-template-undefined")
    assert where(diagnostic) == locate(text, "mood", 1)


def test_several_undefined_names_each_reported(tmp_path):
    text = 'let brand = "x"\nshot a 5s "{{ brnad }} and {{ other }}"\n'
    result = run(tmp_path, text)
    found = [d for d in result.diagnostics if d.code == "KVS-template-undefined"]
    assert [d.span.text for d in found] == ["brnad", "other"]
    assert found[0].help == "did you mean `brand`?"
    assert "--var other=" in found[1].help


def test_lets_see_earlier_lets(tmp_path):
    text = 'let a = "A"\nlet b = "{{ a }}-B"\nlet c = "{{ b }}-C"\nshot a 5s "{{ c }}"\n'
    assert run(tmp_path, text).request.body["prompt"] == "A-B-C"


def test_lets_do_not_see_later_lets(tmp_path):
    text = 'let b = "{{ a }}-B"\nlet a = "A"\nshot a 5s "x {{ a }}"\n'
    diagnostic = only(run(tmp_path, text), "KVS-template-undefined")
    assert where(diagnostic) == (*locate(text, "a }}")[:2], 1, locate(text, "a }}")[1] + 1)


@pytest.mark.parametrize("first", ['let mood = "{{ 1 + }}"', 'let mood = "{{ later }}"'])
def test_failed_let_does_not_cascade(tmp_path, first):
    result = run(tmp_path, f'{first}\nshot a 5s "{{{{ mood }}}}"\nlet later = "x"\n')
    assert [d.span.start_position[0] for d in result.diagnostics if d.is_error] == [1]


def test_let_values_of_every_type(tmp_path):
    text = 'let xs = ["a", "b", 3]\nlet t = true\nlet n = 4\nshot a 5s "{{ xs | join(\'-\') }} {{ t }} {{ n * 2 }}"\n'
    assert run(tmp_path, text).request.body["prompt"] == "a-b-3 True 8"


def test_var_overrides_let(tmp_path):
    text = 'let mood = "day"\nshot a 5s "{{ mood }}"\n'
    result = run(tmp_path, text, var_options=["mood=night"])
    assert result.request.body["prompt"] == "night"
    assert "KVS-var-unused" not in codes(result)


def test_var_override_is_not_expanded(tmp_path):
    result = run(tmp_path, 'shot a 5s "{{ mood }}"\n', var_options=["mood={{ x }}"])
    assert result.request.body["prompt"] == "{{ x }}"


def test_var_override_feeds_later_lets(tmp_path):
    text = 'let mood = "day"\nlet line = "at {{ mood }}"\nshot a 5s "{{ line }}"\n'
    assert run(tmp_path, text, var_options=["mood=night"]).request.body["prompt"] == "at night"


def test_var_defines_a_name_without_let(tmp_path):
    result = run(tmp_path, 'shot a 5s "{{ mood }}"\n', var_options=["mood=night"])
    assert codes(result) == [] and result.request.body["prompt"] == "night"


def test_unused_var_warns(tmp_path):
    result = run(tmp_path, 'shot a 5s "x"\n', var_options=["mood=night"])
    diagnostic = only(result, "KVS-var-unused")
    assert diagnostic.severity == "warning" and result.request is not None


def test_vars_file_values_keep_their_types(tmp_path):
    from helpers import write

    path = write(tmp_path, '{"n": 3, "xs": ["a", "b"]}', "v.json")
    result = run(tmp_path, 'shot a 5s "{{ n + 1 }} {{ xs | length }}"\n', var_files=[path])
    assert result.request.body["prompt"] == "4 2"


def test_template_syntax_error_points_at_the_line(tmp_path):
    text = 'shot a 5s """\nline one\n  {% for %}\n"""\n'
    diagnostic = only(run(tmp_path, text), "KVS-template-syntax")
    assert where(diagnostic) == locate(text, "{% for %}")


def test_template_runtime_error(tmp_path):
    text = 'shot a 5s "{{ 1/0 }}"\n'
    diagnostic = only(run(tmp_path, text), "KVS-template-error")
    assert where(diagnostic) == locate(text, '"{{ 1/0 }}"')
    assert diagnostic.message == "division by zero in a template"


_PYTHON_NAMES = ("Error", "Exception", "do_", "NoneType", "'str'", "'int'")


@pytest.mark.parametrize(
    "template",
    [
        "{{ 1/0 }}",
        "{{ 10 // n }}",
        "{{ 'a' + 1 }}",
        "{{ 1 + 'a' }}",
        "{{ '%d' % 'x' }}",
        "{{ '{:d}'.format('a') }}",
        "{{ x | int(1, 2, 3) }}",
        "{{ xs.foo }}",
        "{{ xs[5] }}",
        "{{ none.x }}",
        "{{ 2 ** 1000 }}",
    ],
)
def test_template_failures_name_no_python_exception(tmp_path, template):
    text = f'let n = 0\nlet x = "1"\nlet xs = ["a"]\nshot a 5s "{template}"\n'
    (diagnostic,) = [d for d in run(tmp_path, text).diagnostics if d.code.startswith("KVS-template")]
    shown = diagnostic.message + (diagnostic.help or "")
    assert not any(name in shown for name in _PYTHON_NAMES), shown


def _syntax(tmp_path, template: str):
    text = f'let mood = "dusk"\nshot a 5s """{template}"""\n'
    return text, only(run(tmp_path, text), "KVS-template-syntax")


def test_single_closing_brace_is_pointed_at_with_a_fix(tmp_path):
    text, diagnostic = _syntax(tmp_path, "a {{ mood } b")
    assert diagnostic.span.text == "}" and diagnostic.message == "`{{` is closed by `}`"
    assert diagnostic.related[0].span.text == "{{"
    (fix,) = diagnostic.suggestions
    assert (fix.span, fix.replacement, fix.preferred) == (diagnostic.span, "}}", True)


@pytest.mark.parametrize(
    ("template", "span", "message"),
    [
        ("{% if mood }x{% endif %}", "}", "`{%` is closed by `}`"),
        ("{{ mood %}", "%}", "`{{` is closed by `%}`"),
        ("{{ mood ", "{{", "`{{` is never closed"),
        ("{# note", "{#", "`{#` is never closed"),
        ("x\n{% for i in range(3) %}\n{{ i }}\nmore\n", "{% for i in range(3) %}", "`{% for %}` is never closed"),
        ("{% if mood %}x{% endfor %}", "endfor", "`{% endfor %}` comes before the `{% if %}` inside it is closed"),
        ("{% endif %}", "endif", "`{% endif %}` has no block to close"),
        ("{% frobnicate %}", "frobnicate", "`frobnicate` is not a template tag"),
        ("{% for %}", "{% for %}", "`{% for %}` is incomplete"),
        ("{{ mood | }}", "|", "a filter name after `|` is missing"),
        ("{{ mood. }}", ".", "an attribute name after `.` is missing"),
        ("{{ 1 + }}", "+", "`+` needs a value after it"),
        ("{{ (1 }}", "(", "`(` is never closed"),
        ("{{ 1) }}", ")", "`)` closes nothing"),
        ("{{ }}", "{{ }}", "`{{ }}` is empty"),
        ("{{ 'abc }}", "'", "a quoted string inside the template is never closed"),
    ],
)
def test_syntax_errors_point_at_the_offending_character(tmp_path, template, span, message):
    text, diagnostic = _syntax(tmp_path, template)
    assert (diagnostic.span.text, diagnostic.message) == (span, message)
    assert where(diagnostic)[:2] == locate(text, span)[:2]


def test_unclosed_for_is_found_on_its_own_line_not_the_last(tmp_path):
    text, diagnostic = _syntax(tmp_path, "\n  one\n  {% for i in range(2) %}\n  {{ i }}\n")
    assert diagnostic.span.start_position[0] == 4 and diagnostic.label == "opened here"
    assert diagnostic.help == "close it with `{% endfor %}` where its part ends"


def test_undefined_name_in_a_let_is_reported_once_without_follow_ons(tmp_path):
    text = (
        'let base = "https://cdn.example.com/{{ hosst }}"\n'
        'let xs = ["{{ nope }}", "b"]\n'
        'image one = "{{ base }}/1.png"\nimage two = "{{ base }}/2.png"\n'
        'shot a 5s "{{ xs | join }} @one @two"\n'
    )
    result = run(tmp_path, text)
    assert [(d.code, d.span.text) for d in result.diagnostics] == [
        ("KVS-template-undefined", "hosst"),
        ("KVS-template-undefined", "nope"),
    ]


def test_a_uri_or_setting_whose_template_failed_is_not_judged(tmp_path):
    text = (
        'model "{{ m }}"\naspect "{{ a }}"\ngenerations "{{ g }}"\naspect "1:1"\n'
        'image hero = "https://example.com/{{ pth }} x.png"\nstart "{{ s }}"\nshot a 5s "@hero"\n'
    )
    result = run(tmp_path, text)
    assert codes(result) == ["KVS-template-undefined"] * 5


def test_templates_in_uris_and_settings(tmp_path):
    text = (
        'let host = "cdn.example.com"\nlet ns = "aurora"\nnamespace "{{ ns }}-studio"\n'
        'image cafe = "https://{{ host }}/c.png"\nshot a 5s "@cafe"\n'
    )
    body = run(tmp_path, text).request.body
    assert body["input_image"] == ["https://cdn.example.com/c.png"]
    assert body["target_namespace"] == "aurora-studio"


def test_no_templates_outside_strings(tmp_path):
    # `{{` outside a string is not a template: a syntax error, not an expansion
    result = run(tmp_path, "shot a 5s {{ x }}\n")
    assert all(code.startswith("KVS-syntax") for code in errors(result))


def test_duplicate_let_warns_and_later_wins(tmp_path):
    text = 'let mood = "a"\nlet mood = "b"\nshot a 5s "{{ mood }}"\n'
    result = run(tmp_path, text)
    diagnostic = only(result, "KVS-let-duplicate")
    assert where(diagnostic) == locate(text, "mood", 1)
    assert diagnostic.related[0].span.start_position == (1, 5)
    assert result.request.body["prompt"] == "b"


def test_expansion_then_folding(tmp_path):
    text = 'let brand = "Aurora"\nshot a 5s """\n   The {{ brand | upper }}\n   logo.\n"""\n'
    assert run(tmp_path, text).request.body["prompt"] == "The AURORA logo."


def test_an_unknown_filter_is_named_at_its_place_with_the_close_ones(tmp_path):
    from helpers import locate, run, where

    text = 'let x = "a"\nshot a 5s "{{ x | uper }}"\n'
    [d] = run(tmp_path, text).diagnostics
    assert d.code == "KVS-template-syntax" and d.message == "`uper` is not a template filter"
    assert where(d) == locate(text, "uper") and d.help == "did you mean `upper`?"
    assert [s.replacement for s in d.suggestions] == ["upper"]
    [t] = run(tmp_path, 'let x = 1\nshot a 5s "{{ x is nosuchtest }}"\n', "t.kvs").diagnostics
    assert t.message == "`nosuchtest` is not a template test"


def test_numbers_from_the_command_line_are_finite_and_of_sane_size(tmp_path):
    from helpers import codes, run

    float_let = 'let speed = 1.5\nshot a 5s "at {{ speed }}"\n'
    for given in ("1e999", "nan", "inf", "-1e400"):
        assert codes(run(tmp_path, float_let, var_options=[f"speed={given}"])) == ["KVS-var-type"], given
    int_let = 'let n = 3\nshot a 5s "take {{ n }}"\n'
    assert codes(run(tmp_path, int_let, "i.kvs", var_options=["n=" + "9" * 5000])) == ["KVS-var-type"]
    vars_file = tmp_path / "v.json"
    vars_file.write_text('{"speed": 1e999}')
    assert codes(run(tmp_path, float_let, "j.kvs", var_files=[str(vars_file)])) == ["KVS-var-type"]
