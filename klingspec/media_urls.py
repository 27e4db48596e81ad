"""URLs the API can fetch: offline warnings for http(s) URLs that cannot work as media.

The Oxen API downloads every input image itself, from its own servers, and its only
documented rule is that inputs "must be publicly downloadable". So a URL that reads fine
in your browser may still fail there:

- `KVS-url-http`: plain `http://`; the fix is `https://`.
- `KVS-url-private`: a host only your machine or network can reach (`localhost`, a
  private, loopback or link-local address, `.local`, a single-label name).
- `KVS-url-page`: a well-known *page* about a file, not the file (a Google Drive viewer,
  a Google Docs document, a Dropbox preview, a YouTube or Vimeo page, a GitHub `blob/`
  page), with the link that downloads the file where one exists (`PAGES`).

Only strings with an `http:`/`https:` scheme and a host are looked at; every other URI is
the URI rules' business (`checking.uris`). Each warning carries its fix as a `Suggestion`
where a working form exists and the script spells the URL out (not a template's output).
Stdlib only: `check` loads this on every run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, parse_qsl, urlsplit

from klingspec import ast
from klingspec.diagnostics import Diagnostic, Suggestion

if TYPE_CHECKING:
    from ipaddress import IPv4Address, IPv6Address

# Names that never leave the machine or the local network (RFC 6761 `localhost`, mDNS
# `.local`, RFC 8375 `home.arpa`, ICANN's private-use `.internal`).
PRIVATE_SUFFIXES = ("localhost", "local", "internal", "home.arpa")
_UNSAFE_IN_FIX = re.compile(r'["\\{}\s]')  # a replacement must read the same inside a string


def http_url(uri: str) -> SplitResult | None:
    """The parts of an `http(s)://host/...` URI, or None for anything else (paths, other
    schemes, malformed URLs: the URI rules report those)."""
    try:
        parts = urlsplit(uri)
        host = parts.hostname
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host or any(c.isspace() for c in uri):
        return None
    return parts


# -- hosts the API's servers cannot reach -----------------------------------------------


def unreachable_host(host: str) -> str | None:
    """Why the API's servers cannot reach `host` (as `urlsplit` gives it: lower case,
    without brackets), or None for a public name or address."""
    host = host.rstrip(".")
    for suffix in PRIVATE_SUFFIXES:
        if host == suffix or host.endswith("." + suffix):
            return f"`{suffix}` names are resolved only on your machine or local network"
    import ipaddress  # only for a URL to check: `check` of a script without one skips it

    address = _address(host)
    if address is None:
        if "." not in host:
            return f"`{host}` is a single-label name, resolved only inside your network"
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_loopback:
        return f"{address} is a loopback address: it is the API's own server, not your machine"
    if address.is_unspecified:
        return f"{address} is not an address anyone can connect to"
    if address.is_link_local:
        return f"{address} is a link-local address, reachable only on your own network segment"
    if address.is_private:
        return f"{address} is a private network address"
    if address.is_multicast or not address.is_global:
        return f"{address} is not a public internet address"
    return None


def _address(host: str) -> IPv4Address | IPv6Address | None:
    """`host` as an IP address, including the shorthand IPv4 forms (`127.1`, `0x7f.0.0.1`,
    `2130706433`) that URL parsers and resolvers accept."""
    import ipaddress

    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if not re.fullmatch(r"(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}", host):
        return None
    import socket  # inet_aton parses exactly the forms resolvers accept

    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


# -- page links: a page about the file, not the file --------------------------------------


@dataclass(frozen=True)
class Page:
    """A well-known page link: `matches` says whether a URL is one; `fix` gives the link
    that downloads the file (None where there is none); `hint` tells people what to do."""

    name: str
    matches: Callable[[SplitResult], bool]
    hint: str
    fix: Callable[[SplitResult], str | None] = lambda parts: None


def _host(parts: SplitResult, *names: str) -> bool:
    host = (parts.hostname or "").rstrip(".")
    return host in names or any(host == "www." + name for name in names)


def _query(parts: SplitResult) -> dict[str, str]:
    return dict(parse_qsl(parts.query, keep_blank_values=True))


_DRIVE_FILE = re.compile(r"/file/d/([\w-]+)")


def _drive_id(parts: SplitResult) -> str | None:
    found = _DRIVE_FILE.match(parts.path)
    if found:
        return found.group(1)
    if parts.path.rstrip("/") == "/open":
        return _query(parts).get("id") or None
    return None


def _drive_fix(parts: SplitResult) -> str | None:
    file_id = _drive_id(parts)
    return f"https://drive.google.com/uc?export=download&id={file_id}" if file_id else None


def _dropbox_share(parts: SplitResult) -> bool:
    query = _query(parts)
    shared = parts.path.startswith(("/s/", "/scl/fi/", "/sh/"))
    return _host(parts, "dropbox.com") and shared and query.get("dl") != "1" and query.get("raw") != "1"


def _dropbox_fix(parts: SplitResult) -> str:
    pairs = ["dl=1" if pair == "dl=0" else pair for pair in parts.query.split("&") if pair]
    if "dl=1" not in pairs:
        pairs.append("dl=1")
    return parts._replace(query="&".join(pairs), fragment="").geturl()


_GITHUB_BLOB = re.compile(r"/([^/]+)/([^/]+)/blob/(.+)")


def _github_fix(parts: SplitResult) -> str | None:
    found = _GITHUB_BLOB.fullmatch(parts.path)
    if not found:
        return None
    owner, repo, rest = found.groups()
    return f"https://raw.githubusercontent.com/{owner}/{repo}/{rest}"


PAGES: tuple[Page, ...] = (
    Page(
        "a Google Drive file page",
        lambda p: _host(p, "drive.google.com") and _drive_id(p) is not None,
        "the file must also be shared as `Anyone with the link`",
        _drive_fix,
    ),
    Page(
        "a Google Docs document",
        lambda p: (
            _host(p, "docs.google.com")
            and re.match(r"/(document|presentation|spreadsheets|drawings|forms)/", p.path) is not None
            and "/export" not in p.path
        ),
        "there is no link to the image inside a document: export the image and use its file, "
        "or host it where it can be downloaded",
    ),
    Page(
        "a Dropbox preview page",
        _dropbox_share,
        "`dl=1` (or `raw=1`) makes Dropbox send the file itself",
        _dropbox_fix,
    ),
    Page(
        "a YouTube video page",
        lambda p: (
            (
                _host(p, "youtube.com", "m.youtube.com", "music.youtube.com")
                and p.path.startswith(("/watch", "/shorts/", "/live/", "/embed/"))
            )
            or (_host(p, "youtu.be") and len(p.path) > 1)
        ),
        "a video page is not an image: give the URL of an image file",
    ),
    Page(
        "a Vimeo video page",
        lambda p: (_host(p, "vimeo.com") and re.match(r"/[0-9]+", p.path) is not None) or _host(p, "player.vimeo.com"),
        "a video page is not an image: give the URL of an image file",
    ),
    Page(
        "a GitHub file page",
        lambda p: _host(p, "github.com") and _GITHUB_BLOB.fullmatch(p.path) is not None,
        "the file must be in a public repository",
        _github_fix,
    ),
)


def page_of(parts: SplitResult) -> Page | None:
    return next((page for page in PAGES if page.matches(parts)), None)


# -- the rule ----------------------------------------------------------------------------


def _short(uri: str) -> str:
    return uri if len(uri) <= 60 else uri[:57] + "..."


def _replace_all(text: ast.Text, uri: str, new: str, title: str) -> list[Suggestion]:
    """Replace the whole string's content, where it is written exactly as the URL reads."""
    span = text.content_span
    if span.text != uri or _UNSAFE_IN_FIX.search(new):
        return []
    return [Suggestion(span, new, title, preferred=True)]


def url_warnings(uris: Iterable[tuple[ast.Text, str]]) -> Iterator[Diagnostic]:
    """The warnings for each (string, expanded URI) of the script, at the string."""
    for text, uri in uris:
        parts = http_url(uri)
        if parts is None:
            continue
        assert parts.hostname is not None  # http_url returns only URLs with a host
        why = unreachable_host(parts.hostname)
        if why:
            yield Diagnostic.of(
                "KVS-url-private",
                text.span,
                f"the API's servers cannot reach `{parts.hostname}`",
                f"{why}; the API downloads every image itself, from the internet: "
                "host the image at a public https:// URL",
            )
            continue  # https would not help a host nobody else can reach
        if parts.scheme.lower() == "http":
            scheme = text.span_of(0, 4)
            fix = (
                [Suggestion(scheme, "https", "Use https://", preferred=True)]
                if scheme.text.lower() == "http" and text.span_of(4, 5).text == ":"
                else []
            )
            yield Diagnostic.of(
                "KVS-url-http",
                text.span,
                f"`{_short(uri)}` is plain http://",
                "the API may refuse an unencrypted URL or not follow a redirect to https; "
                "use https:// (most hosts serve the same file there)",
                suggestions=fix,
            )
        page = page_of(parts)
        if page:
            new = page.fix(parts)
            help = f"use {new} instead; {page.hint}" if new else page.hint
            yield Diagnostic.of(
                "KVS-url-page",
                text.span,
                f"`{_short(uri)}` is {page.name}, not the file",
                help,
                suggestions=_replace_all(text, uri, new, "Use the link to the file itself") if new else [],
            )
