"""The pure editor layer (no client): template uses, string contexts, the CLI stays light."""

from __future__ import annotations

import subprocess
import sys

from klingspec.lsp.completions import string_start
from klingspec.lsp.symbols import template_names


def test_template_names_skip_attributes_filters_locals_and_literals():
    value = "{% for c in palette %}{{ c | upper }}{% endfor %} {{ x.y }} {{ 'lit' }} {{ f(k=v) }} {{- t -}}"
    assert [name for name, _, _ in template_names(value)] == ["palette", "x", "f", "v", "t"]
    for name, start, end in template_names(value):
        assert value[start:end] == name


def test_string_start_follows_the_tokenizer():
    text = 'shot a 5s "one # two"  # a "comment\nshot b 5s """\n  x\n"""\nshot c 5s "open'
    assert string_start(text, text.index("two")) == text.index('"one')
    assert string_start(text, text.index("comment")) is None
    assert string_start(text, text.index("  x")) == text.index('"""')
    assert string_start(text, len(text)) == text.index('"open')
    assert string_start(text, text.index("shot b")) is None


def test_importing_the_cli_does_not_import_pygls():
    code = "import sys, klingspec.cli; print(any(m.split('.')[0] in ('pygls', 'lsprotocol') for m in sys.modules))"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )


def test_lsp_command_is_listed():
    out = subprocess.run(
        [sys.executable, "-m", "klingspec", "lsp", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "language server" in out and "--vars" in out
