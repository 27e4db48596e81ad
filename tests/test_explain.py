"""`klingspec explain CODE`: a code's page in the terminal (docs/cli.md).

Plain Markdown when stdout is not a terminal (or NO_COLOR is set), rich's rendering on a
terminal; test directives left out, relative links made absolute; an unknown code is a
usage error (exit 2) with the closest code suggested.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click
import pytest

from klingspec.cli import main
from klingspec.codes import CODES

ROOT = Path(__file__).resolve().parent.parent
PAGES = ROOT / "docs" / "codes"


def explain(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["explain", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("code", sorted(CODES))
def test_every_code_shows_its_page(capsys, code):
    status, out, err = explain(capsys, code)
    assert (status, err) == (0, "")
    page = (PAGES / f"{code}.md").read_text(encoding="utf-8")
    assert out.startswith(f"# {code}\n\n**{CODES[code].severity}**: {CODES[code].title}\n")
    assert "<!--" not in out, "test directives are not for readers"
    for heading in re.findall(r"^## .*$", page, re.M):
        assert f"\n{heading}\n" in out


@pytest.mark.parametrize("typed", ["kvs-model-unknown", "KVS-MODEL-UNKNOWN", "model-unknown", " Kvs-Model-Unknown "])
def test_codes_are_case_insensitive_and_the_prefix_optional(capsys, typed):
    status, out, _ = explain(capsys, typed)
    assert status == 0 and out.startswith("# KVS-model-unknown\n")


def test_relative_links_point_at_the_published_docs(capsys):
    status, out, _ = explain(capsys, "KVS-model-unknown")
    assert status == 0
    assert "[All diagnostic codes](https://github.com/klingspec/klingspec/blob/main/docs/codes/README.md)" in out
    assert "](README.md)" not in out


def test_links_leaving_the_folder_resolve_too(capsys):
    page = next(p for p in sorted(PAGES.glob("KVS-*.md")) if "](../" in p.read_text(encoding="utf-8"))
    status, out, _ = explain(capsys, page.stem)
    assert status == 0 and "](../" not in out
    assert "](https://github.com/klingspec/klingspec/blob/main/docs/" in out


def test_an_unknown_code_exits_2_with_did_you_mean(capsys):
    status, out, err = explain(capsys, "KVS-modle-unknwn")
    assert (status, out) == (2, "")
    assert "`KVS-modle-unknwn` is not a klingspec diagnostic code; did you mean `KVS-model-unknown`?" in err


def test_a_code_like_nothing_points_at_the_list(capsys):
    status, _, err = explain(capsys, "zzzz")
    assert status == 2 and "`klingspec explain` lists every code" in err


def test_without_a_code_every_code_is_listed(capsys):
    status, out, _ = explain(capsys)
    lines = out.splitlines()
    assert status == 0 and len(lines) == len(CODES)
    for line, entry in zip(lines, CODES.values(), strict=True):
        assert line.split(None, 2) == [entry.code, entry.severity, entry.title]


def test_a_terminal_gets_rendered_markdown(capsys, monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    status, out, _ = explain(capsys, "KVS-no-shots")
    assert status == 0 and "\x1b[" in out
    assert "KVS-no-shots" in out and "## What it means" not in out and "What it means" in out


def test_no_color_keeps_a_terminal_plain(capsys, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    status, out, _ = explain(capsys, "KVS-no-shots")
    assert status == 0 and "\x1b[" not in out and out.startswith("# KVS-no-shots\n")


def test_completion_offers_codes():
    from klingspec.cli.explain import explain as command

    [argument] = command.params
    offered = [item.value for item in argument.shell_complete(click.Context(command), "kvs-model-")]
    assert offered == ["KVS-model-unknown", "KVS-model-unsupported", "KVS-model-retired"]
