"""Small helpers shared by the unit tests: write a script to disk, run the real pipeline,
and name positions by the text they point at (computed here, independently of
`klingspec.source`, so a wrong line/column in the core cannot agree with itself).
"""

from __future__ import annotations

import os

from klingspec.pipeline import Options, Result, run_pipeline

VALID = 'shot opening 5s "a red balloon rises into a blue sky"\n'


def write(tmp_path, text: str | bytes, name: str = "main.kvs") -> str:
    """Write `text` (exactly, no newline translation) under tmp_path; return its path."""
    path = os.path.join(str(tmp_path), name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = text if isinstance(text, bytes) else text.encode("utf-8")
    with open(path, "wb") as handle:
        handle.write(data)
    return path


def run(
    tmp_path,
    text: str | bytes,
    name: str = "main.kvs",
    *,
    var_options=(),
    var_files=(),
    validate_schema: bool = True,
    library_ok: bool = False,
) -> Result:
    """Write the script and run the whole pipeline over it, as `compile` does."""
    path = write(tmp_path, text, name)
    return run_pipeline(
        path,
        Options(
            var_options=tuple(var_options),
            var_files=tuple(var_files),
            validate_schema=validate_schema,
            library_ok=library_ok,
        ),
    )


def codes(result) -> list[str]:
    """The codes of a result's (or a list's) diagnostics, in report order."""
    diagnostics = result.diagnostics if hasattr(result, "diagnostics") else result
    return [d.code for d in diagnostics]


def errors(result) -> list[str]:
    return [d.code for d in result.diagnostics if d.severity == "error"]


def only(result, code: str):
    """The single diagnostic with `code` (fails the test if there is not exactly one)."""
    found = [d for d in result.diagnostics if d.code == code]
    assert len(found) == 1, f"expected one {code}, got {[(d.code, d.message) for d in result.diagnostics]}"
    return found[0]


def where(diagnostic) -> tuple[int, int, int, int]:
    """(line, column, end_line, end_column) of a diagnostic's primary span, 1-based."""
    return (*diagnostic.span.start_position, *diagnostic.span.end_position)


def locate(text: str, needle: str, nth: int = 0) -> tuple[int, int, int, int]:
    """1-based (line, column, end_line, end_column) of the nth occurrence of `needle`,
    counted by hand from the text (code points, lines split on "\\n")."""
    index = -1
    for _ in range(nth + 1):
        index = text.index(needle, index + 1)

    def position(offset: int) -> tuple[int, int]:
        before = text[:offset]
        line = before.count("\n") + 1
        column = offset - (before.rfind("\n") + 1) + 1
        return line, column

    return (*position(index), *position(index + len(needle)))


def is_film(path) -> bool:
    """Whether the file at `path` is a film (a file of `scene`s), as the parser tells."""
    from pathlib import Path

    from klingspec.source import Source
    from klingspec.syntax import parse

    script, _ = parse(Source(str(path), Path(path).read_text(encoding="utf-8")))
    return script.film
