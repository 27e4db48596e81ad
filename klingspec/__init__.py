"""klingspec: scene scripts (.kvs) to checked, priced, deterministic Kling video requests.

The public API is the pipeline (`run_pipeline`, `Options`, `Result`) and the values it
returns; everything else is internal and may change. Names are imported on first use so
that `import klingspec` (and commands that need no parser) stay cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what `__getattr__` returns, for type checkers
    from klingspec.diagnostics import Diagnostic
    from klingspec.pipeline import Options, Result, run_pipeline
    from klingspec.source import Source, Span

__version__ = "0.1.0"

_EXPORTS = {
    "Diagnostic": "klingspec.diagnostics",
    "Options": "klingspec.pipeline",
    "Result": "klingspec.pipeline",
    "Source": "klingspec.source",
    "Span": "klingspec.source",
    "run_pipeline": "klingspec.pipeline",
}

__all__ = ["Diagnostic", "Options", "Result", "Source", "Span", "__version__", "run_pipeline"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'klingspec' has no attribute {name!r}")
