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
    assert "ZeroDivisionError" in diagnostic.message


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
