"""Finds the data files shipped with klingspec: the grammar, the schemas, the model matrix.

`grammar/` and `schema/` live at the top of the repository (they are the language's and
the API's definitions, not code) and are copied into the wheel as `klingspec/_data/`.
An installed klingspec reads them through `importlib.resources`; a source checkout or
an editable install falls back to the repository folders.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

PACKAGE = Path(__file__).resolve().parent
_REPO = PACKAGE.parent


def _data_dir(name: str) -> Path:
    """The installed copy inside the package, else the repository's folder. A plain path,
    not `importlib.resources`: a wheel installs as files, and that module alone costs
    more start-up time than the check it serves."""
    packaged = PACKAGE / "_data" / name
    return packaged if packaged.is_dir() else _REPO / name


def data_dirs() -> tuple[Path, ...]:
    """Every folder klingspec reads its own data from (the check cache fingerprints them)."""
    return (PACKAGE, *(d for d in (_data_dir("grammar"), _data_dir("schema")) if not d.is_relative_to(PACKAGE)))


def home_dir() -> str:
    """The klingspec home: the ledger and the caches live here (KLINGSPEC_HOME, else ~/.klingspec)."""
    return os.environ.get("KLINGSPEC_HOME") or os.path.join(os.path.expanduser("~"), ".klingspec")


@cache
def read_text(folder: str, filename: str) -> str:
    """The text of a shipped data file, e.g. `read_text("grammar", "kvs.lark")`."""
    return (_data_dir(folder) / filename).read_text(encoding="utf-8")


def models_dir() -> Path:
    """The capability matrix: one TOML file per model, inside the package."""
    return PACKAGE / "models"
