"""Quick fixes: edits that resolve a diagnostic, read from the diagnostic itself.

Only fixes whose result is certain are offered, and the phase that found the problem
says which (`Diagnostic.suggestions`): the did-you-mean name the binder or the template
checker found, rounding a fractional duration (both ways, since only the author knows
which), a `start` line for an `end` without one (with a placeholder URI the checker
will flag until filled), `https://` for `http://`, the link to the file itself for a
page link (`media_urls.py`), the successor of a retired model, and removing the line of a
setting the model does not take (or an `aspect` it says to leave out with only frames).
Nothing here reads the `help` prose.
"""

from __future__ import annotations

from dataclasses import dataclass

from klingspec.diagnostics import Diagnostic
from klingspec.source import Span

# The codes whose suggestions the editor offers. The syntax checker's unknown statement,
# an unknown model and an unknown `format` carry suggestions too; not offered (yet).
OFFERED = frozenset(
    {
        "KVS-name-unbound",
        "KVS-template-undefined",
        "KVS-duration-fraction",
        "KVS-end-without-start",
        "KVS-url-http",
        "KVS-url-page",
        "KVS-model-retired",
        "KVS-model-unsupported",
        "KVS-aspect-with-frames",
    }
)


@dataclass(frozen=True)
class Edit:
    span: Span
    new_text: str


@dataclass(frozen=True)
class Fix:
    title: str
    edits: tuple[Edit, ...]
    preferred: bool = False


def quick_fixes(diagnostic: Diagnostic) -> list[Fix]:
    """The fixes for one diagnostic (none for most codes)."""
    if diagnostic.code not in OFFERED:
        return []
    return [Fix(s.title, (Edit(s.span, s.replacement),), s.preferred) for s in diagnostic.suggestions]
