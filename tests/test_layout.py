"""The layout shows the architecture: the language core never reaches into a wing, and
module names say what they are."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import klingspec

PACKAGE = Path(klingspec.__file__).parent
CORE = (
    "__init__",
    "__main__",
    "source",
    "diagnostics",
    "codes",
    "targets",
    "catalogue",
    "ast",
    "syntax",
    "_kvs_parser",  # syntax's parser, generated from grammar/kvs.lark by tools/generate_parser.py
    "loading",
    "templating",
    "binding",
    "checking",
    "media_urls",
    "compiling",
    "pricing",
    "pipeline",
    "comparing",
    "variants",
    "films",
    "allowances",
    "project",
    "assets",
    "images",
    "formatting",
    "printing",
    "resources",
)
WINGS = ("klingspec.run", "klingspec.lsp", "klingspec.cli", "klingspec.sandbox", "klingspec.preview")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_the_core_is_flat_and_complete() -> None:
    flat = {p.stem for p in PACKAGE.glob("*.py")}
    assert flat == set(CORE), "a module at the top of klingspec/ is language core; wings live in folders"


def test_the_core_never_imports_a_wing() -> None:
    for name in CORE:
        reaching = {m for m in imported_modules(PACKAGE / f"{name}.py") if m.startswith(WINGS)}
        if name == "__main__":  # `python -m klingspec` is the command line's door
            reaching -= {"klingspec.cli", "klingspec.cli.main"}
        assert not reaching, f"klingspec/{name}.py imports {sorted(reaching)}"


def test_the_wings_have_folders() -> None:
    for wing in WINGS:
        assert (PACKAGE / wing.removeprefix("klingspec.") / "__init__.py").is_file()


def test_no_two_modules_share_a_name() -> None:
    names = Counter(p.stem for p in PACKAGE.rglob("*.py") if p.stem != "__init__")
    assert [n for n, count in names.items() if count > 1] == []
    assert not (PACKAGE / "render.py").exists(), "a render is a video; diagnostics are printed by printing.py"
