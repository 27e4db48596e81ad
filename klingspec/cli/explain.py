"""`klingspec explain CODE`: a diagnostic code's page (docs/codes/CODE.md) in the terminal.

The pages ship in the wheel (`klingspec/_data/docs/codes/`, see `klingspec.resources`).
On a terminal the page is rendered as Markdown with rich; piped, or with NO_COLOR set,
it is printed as the Markdown text itself. Either way the page's test directives
(`<!-- docs-test: ... -->`) are left out and its relative links are made absolute, so
they point at the published docs rather than at files the reader may not have.
"""

from __future__ import annotations

import difflib
import re
import sys
from urllib.parse import urljoin

import click
from click.shell_completion import CompletionItem

from klingspec import resources
from klingspec.cli.options import color, examples
from klingspec.cli.report import Report
from klingspec.codes import CODES

_COMMENT = re.compile(r"[ \t]*<!--.*?-->[ \t]*\n?", re.S)
_LINK = re.compile(r"(?<!!)(\[[^\]]*\])\((?P<target>[^)\s]+)\)")
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*:")


def canonical(code: str) -> str | None:
    """The catalogue's spelling of `code`, typed in any case, with or without `KVS-`."""
    wanted = code.strip().lower()
    for known in CODES:
        if wanted in (known.lower(), known.lower().removeprefix("kvs-")):
            return known
    return None


def suggestion(code: str) -> str | None:
    """The closest catalogued code to a mistyped one, if any is close."""
    wanted = code.strip().lower()
    wanted = wanted if wanted.startswith("kvs-") else f"kvs-{wanted}"
    lowered = {known.lower(): known for known in CODES}
    close = difflib.get_close_matches(wanted, list(lowered), n=1, cutoff=0.6)
    return lowered[close[0]] if close else None


def page(code: str) -> str:
    """The code's page as shown: without test directives, with absolute links."""
    from klingspec.printing import docs_url

    text = _COMMENT.sub("", resources.read_text("docs/codes", f"{code}.md"))
    base = docs_url(code) or ""

    def absolute(match: re.Match[str]) -> str:
        target = match.group("target")
        if _SCHEME.match(target) or target.startswith("#"):
            return match.group(0)
        return f"{match.group(1)}({urljoin(base, target)})"

    return re.sub(r"\n{3,}", "\n\n", _LINK.sub(absolute, text))


def _complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    return [
        CompletionItem(code, help=entry.title)
        for code, entry in CODES.items()
        if code.lower().startswith(incomplete.lower()) or code.lower().startswith(f"kvs-{incomplete.lower()}")
    ]


@click.command(
    epilog=examples(
        "klingspec explain KVS-model-unknown",
        "klingspec explain model-unknown | less   # any case; KVS- may be left out",
        "klingspec explain                        # every code, its severity and title",
    )
)
@click.argument("code", required=False, shell_complete=_complete)
def explain(code: str | None) -> None:
    """Show what a diagnostic code means and how to fix it (its page in docs/codes/).

    Without CODE, list every code."""
    if code is None:
        width = max(len(c) for c in CODES)
        for entry in CODES.values():
            click.echo(f"{entry.code:<{width}}  {entry.severity:<7}  {entry.title}")
        raise SystemExit(Report().return_code)
    known = canonical(code)
    if known is None:
        close = suggestion(code)
        hint = f"did you mean `{close}`?" if close else "`klingspec explain` lists every code"
        raise click.UsageError(f"`{code}` is not a klingspec diagnostic code; {hint}")
    text = page(known)
    if color(sys.stdout):
        from rich.console import Console
        from rich.markdown import Markdown

        Console(file=sys.stdout, force_terminal=True).print(Markdown(text, hyperlinks=False))
    else:
        click.echo(text, nl=not text.endswith("\n"))
    raise SystemExit(Report().return_code)
