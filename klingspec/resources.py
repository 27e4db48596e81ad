"""Finds the data files shipped with klingspec: the grammar, the schemas, the model matrix,
the diagnostic codes' pages.

`grammar/` and `schema/` live at the top of the repository (they are the language's and
the API's definitions, not code) and are copied into the wheel as `klingspec/_data/`;
so is `docs/codes/` (as `klingspec/_data/docs/codes/`, for `klingspec explain`).
An installed klingspec reads them through `importlib.resources`; a source checkout or
an editable install falls back to the repository folders.
"""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

# Plain strings and os.path, not pathlib: `check` reads its model matrix through here, and
# pathlib (with urllib.parse, fnmatch...) is start-up time that a check need not pay.
PACKAGE = os.path.dirname(os.path.realpath(__file__))
_REPO = os.path.dirname(PACKAGE)
MODELS = os.path.join(PACKAGE, "models")


def _data_dir(name: str) -> str:
    """The installed copy inside the package, else the repository's folder. A plain path,
    not `importlib.resources`: a wheel installs as files, and that module alone costs
    more start-up time than the check it serves."""
    packaged = os.path.join(PACKAGE, "_data", name)
    return packaged if os.path.isdir(packaged) else os.path.join(_REPO, name)


def data_dirs() -> tuple[str, ...]:
    """Every folder klingspec reads its own data from (the check cache fingerprints them)."""
    inside = PACKAGE + os.sep
    return (PACKAGE, *(d for d in (_data_dir("grammar"), _data_dir("schema")) if not d.startswith(inside)))


def home_dir() -> str:
    """The klingspec home: the ledger and the caches live here (KLINGSPEC_HOME, else ~/.klingspec)."""
    return os.environ.get("KLINGSPEC_HOME") or os.path.join(os.path.expanduser("~"), ".klingspec")


def ledger_path() -> str:
    """Where the job ledger is by default (`run.ledger.default_path`), known without
    loading the ledger: a command that only reads an existing ledger looks here first."""
    return os.path.join(home_dir(), "ledger.sqlite")


def private_dir(path: str) -> str:
    """Make `path` (and its missing parents) readable by the user alone (0700): the
    klingspec home holds the ledger, whose result URLs are presigned, and the caches."""
    os.makedirs(path, mode=0o700, exist_ok=True)  # the mode applies to folders it creates
    return path


def private_file(path: str) -> str:
    """Create `path` readable by the user alone (0600) if it is missing, and tighten it if
    it exists with wider rights (an older klingspec made the ledger 0644)."""
    descriptor = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        if os.fstat(descriptor).st_mode & 0o077:
            os.fchmod(descriptor, 0o600)
    finally:
        os.close(descriptor)
    return path


@cache
def read_text(folder: str, filename: str) -> str:
    """The text of a shipped data file, e.g. `read_text("grammar", "kvs.lark")` or
    `read_text("docs/codes", "KVS-no-shots.md")`."""
    with open(os.path.join(_data_dir(folder), filename), encoding="utf-8") as handle:
        return handle.read()


def models_dir() -> Path:
    """The capability matrix: one TOML file per model, inside the package (`MODELS`)."""
    from pathlib import Path

    return Path(MODELS)
