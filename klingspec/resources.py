"""Finds the data files shipped with klingspec: the grammar, the schemas, the model matrix.

`grammar/` and `schema/` live at the top of the repository (they are the language's and
the API's definitions, not code) and are copied into the wheel as `klingspec/_data/`.
An installed klingspec reads them through `importlib.resources`; a source checkout or
an editable install falls back to the repository folders.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

_REPO = Path(__file__).resolve().parent.parent


def _data_dir(name: str) -> Traversable:
    packaged = resources.files("klingspec") / "_data" / name
    if packaged.is_dir():
        return packaged
    return _REPO / name


@cache
def read_text(folder: str, filename: str) -> str:
    """The text of a shipped data file, e.g. `read_text("grammar", "kvs.lark")`."""
    return (_data_dir(folder) / filename).read_text(encoding="utf-8")


def models_dir() -> Traversable:
    """The capability matrix: one TOML file per model, inside the package."""
    return resources.files("klingspec") / "models"
