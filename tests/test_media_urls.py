"""media_urls.py: http(s) URLs the API cannot fetch as media, each rule with its fix.

Through the real pipeline (scripts on disk); a fix is checked by applying its edit to the
script and checking again: the warning is gone and nothing else appears.
"""

from __future__ import annotations

import ipaddress

import pytest
from helpers import codes, locate, run, where
from hypothesis import given, settings
from hypothesis import strategies as st

from klingspec.media_urls import PAGES, http_url, unreachable_host

PUBLIC = "https://assets.example.com/refs/cafe.jpg"


def check_uri(tmp_path, uri: str):
    text = f'image cafe = "{uri}"\nshot s 5s "@cafe"\n'
    return text, run(tmp_path, text, validate_schema=False)


def url_codes(result) -> list[str]:
    return [c for c in codes(result) if c.startswith("KVS-url-")]


def apply_fix(text: str, diagnostic) -> str:
    (fix,) = diagnostic.suggestions
    return text[: fix.span.start] + fix.replacement + text[fix.span.end :]


def test_public_https_urls_do_not_warn(tmp_path):
    for uri in (
        PUBLIC,
        "https://hub.oxen.ai/api/repos/ox/assets/file/main/images/ox.png",
        "https://raw.githubusercontent.com/o/r/main/a.png",
        "https://drive.google.com/uc?export=download&id=abc",
        "https://www.dropbox.com/scl/fi/abc/cafe.jpg?rlkey=x&dl=1",
        "https://www.dropbox.com/s/abc/cafe.jpg?raw=1",
        "https://github.com/o/r/raw/main/a.png",
        "https://docs.google.com/drawings/d/abc/export/png",
        "https://i.ytimg.com/vi/abc/hqdefault.jpg",
        "https://8.8.8.8/a.png",
        "https://[2606:4700::1111]/a.png",
    ):
        _, result = check_uri(tmp_path, uri)
        assert url_codes(result) == [], uri


def test_only_http_urls_are_looked_at(tmp_path):
    """Paths, file: and other schemes are the URI rules' business, never a URL warning."""
    for uri in ("frames/door.png", "file:///home/me/door.png", "ftp://localhost/a.png", "https://", "http://a b/c"):
        assert http_url(uri) is None, uri
        _, result = check_uri(tmp_path, uri)
        assert url_codes(result) == [], uri


# -- KVS-url-http ------------------------------------------------------------------------


@pytest.mark.parametrize("uri", ["http://cdn.example.com/a.png", "HTTP://cdn.example.com/a.png"])
def test_http_warns_and_the_fix_is_https(tmp_path, uri):
    text, result = check_uri(tmp_path, uri)
    (diagnostic,) = [d for d in result.diagnostics if d.code == "KVS-url-http"]
    assert diagnostic.severity == "warning"
    assert where(diagnostic) == locate(text, f'"{uri}"')
    assert diagnostic.suggestions[0].title == "Use https://"
    fixed = apply_fix(text, diagnostic)
    assert fixed == text.replace(uri, "https://cdn.example.com/a.png")
    assert codes(run(tmp_path, fixed, validate_schema=False)) == []


def test_http_from_a_template_warns_at_the_string_without_a_fix(tmp_path):
    text = 'let base = "http://cdn.example.com"\nimage cafe = "{{ base }}/a.png"\nshot s 5s "@cafe"\n'
    result = run(tmp_path, text, validate_schema=False)
    (diagnostic,) = result.diagnostics
    assert diagnostic.code == "KVS-url-http"
    assert where(diagnostic) == locate(text, '"{{ base }}/a.png"')
    assert diagnostic.suggestions == ()


def test_http_written_literally_with_a_templated_rest_keeps_its_fix(tmp_path):
    text = 'let name = "a"\nimage cafe = "http://cdn.example.com/{{ name }}.png"\nshot s 5s "@cafe"\n'
    (diagnostic,) = run(tmp_path, text, validate_schema=False).diagnostics
    fixed = apply_fix(text, diagnostic)
    assert fixed == text.replace("http://", "https://")
    assert codes(run(tmp_path, fixed, validate_schema=False)) == []


# -- KVS-url-private ---------------------------------------------------------------------

PRIVATE_HOSTS = [
    "localhost",
    "LOCALHOST",
    "localhost.",
    "app.localhost",
    "printer.local",
    "db.internal",
    "nas.home.arpa",
    "intranet",
    "127.0.0.1",
    "127.1",
    "2130706433",
    "0x7f.0.0.1",
    "0.0.0.0",
    "10.0.0.5",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.1.20",
    "169.254.169.254",
    "100.64.0.1",
    "[::1]",
    "[fe80::1]",
    "[fd12:3456::1]",
    "[::ffff:192.168.0.1]",
    "[::]",
]


@pytest.mark.parametrize("host", PRIVATE_HOSTS)
def test_hosts_only_you_can_reach_warn(tmp_path, host):
    uri = f"https://{host}:8080/a.png"
    text, result = check_uri(tmp_path, uri)
    (diagnostic,) = result.diagnostics
    assert diagnostic.code == "KVS-url-private"
    assert where(diagnostic) == locate(text, f'"{uri}"')
    assert diagnostic.suggestions == ()  # no link form reaches your machine


def test_a_private_http_url_gets_one_warning_not_an_https_fix(tmp_path):
    _, result = check_uri(tmp_path, "http://localhost:8000/a.png")
    assert url_codes(result) == ["KVS-url-private"]


@pytest.mark.parametrize("host", ["172.15.255.255", "172.32.0.1", "192.169.0.1", "11.0.0.1", "example.com"])
def test_neighbours_of_private_ranges_do_not_warn(host):
    assert unreachable_host(host) is None


PRIVATE_NETWORKS = [
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16", "fc00::/7", "fe80::/10")
]
PUBLIC_NETWORKS = [
    ipaddress.ip_network(n) for n in ("8.0.0.0/8", "1.1.0.0/16", "151.101.0.0/16", "2606:4700::/32", "2a00:1450::/32")
]


def _addresses(networks):
    return st.sampled_from(networks).flatmap(
        lambda net: st.integers(0, net.num_addresses - 1).map(lambda i: net.network_address + i)
    )


def _host_of(address) -> str:
    return f"[{address}]" if address.version == 6 else str(address)


@settings(max_examples=300, deadline=None)
@given(_addresses(PRIVATE_NETWORKS))
def test_every_private_loopback_or_link_local_address_warns(address):
    parts = http_url(f"https://{_host_of(address)}/a.png")
    assert parts is not None and unreachable_host(parts.hostname) is not None


@settings(max_examples=300, deadline=None)
@given(_addresses(PUBLIC_NETWORKS))
def test_no_public_address_warns(address):
    parts = http_url(f"https://{_host_of(address)}/a.png")
    assert parts is not None and unreachable_host(parts.hostname) is None


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,20}){0,3}\.(com|org|net|io|ai|dev)", fullmatch=True))
def test_public_looking_names_do_not_warn(host):
    assert unreachable_host(host) is None


# -- KVS-url-page ------------------------------------------------------------------------

PAGE_FIXES = [
    (
        "https://drive.google.com/file/d/1AbC-xyz_9/view?usp=sharing",
        "https://drive.google.com/uc?export=download&id=1AbC-xyz_9",
    ),
    ("https://drive.google.com/file/d/1AbC/edit", "https://drive.google.com/uc?export=download&id=1AbC"),
    ("https://drive.google.com/open?id=1AbC", "https://drive.google.com/uc?export=download&id=1AbC"),
    (
        "https://www.dropbox.com/scl/fi/abc/cafe.jpg?rlkey=xyz&dl=0",
        "https://www.dropbox.com/scl/fi/abc/cafe.jpg?rlkey=xyz&dl=1",
    ),
    ("https://www.dropbox.com/s/abc/cafe.jpg", "https://www.dropbox.com/s/abc/cafe.jpg?dl=1"),
    (
        "https://github.com/octo/art/blob/main/hero/front.png",
        "https://raw.githubusercontent.com/octo/art/main/hero/front.png",
    ),
    (
        "https://github.com/octo/art/blob/v1.2/a%20b.png?raw=true",
        "https://raw.githubusercontent.com/octo/art/v1.2/a%20b.png",
    ),
]


@pytest.mark.parametrize("uri, working", PAGE_FIXES)
def test_page_links_warn_with_the_link_to_the_file(tmp_path, uri, working):
    text, result = check_uri(tmp_path, uri)
    (diagnostic,) = result.diagnostics
    assert diagnostic.code == "KVS-url-page"
    assert where(diagnostic) == locate(text, f'"{uri}"')
    assert working in diagnostic.help
    assert diagnostic.suggestions[0].preferred
    fixed = apply_fix(text, diagnostic)
    assert fixed == text.replace(uri, working)
    assert codes(run(tmp_path, fixed, validate_schema=False)) == []


@pytest.mark.parametrize(
    "uri, what",
    [
        ("https://docs.google.com/document/d/1xyz/edit", "Google Docs"),
        ("https://docs.google.com/presentation/d/1xyz/edit#slide=id.p", "Google Docs"),
        ("https://www.youtube.com/watch?v=dQw4w9WgXcQ", "YouTube"),
        ("https://youtu.be/dQw4w9WgXcQ", "YouTube"),
        ("https://m.youtube.com/shorts/abc", "YouTube"),
        ("https://vimeo.com/123456", "Vimeo"),
        ("https://player.vimeo.com/video/123456", "Vimeo"),
    ],
)
def test_pages_without_a_file_link_warn_without_a_fix(tmp_path, uri, what):
    _, result = check_uri(tmp_path, uri)
    (diagnostic,) = result.diagnostics
    assert diagnostic.code == "KVS-url-page"
    assert what in diagnostic.message
    assert diagnostic.suggestions == ()


def test_a_page_link_from_a_template_has_no_fix(tmp_path):
    text = 'let id = "1AbC"\nimage cafe = "https://drive.google.com/file/d/{{ id }}/view"\nshot s 5s "@cafe"\n'
    (diagnostic,) = run(tmp_path, text, validate_schema=False).diagnostics
    assert diagnostic.code == "KVS-url-page"
    assert "https://drive.google.com/uc?export=download&id=1AbC" in diagnostic.help
    assert diagnostic.suggestions == ()


def test_every_page_kind_is_exercised():
    """The table stays data: each entry is matched by one of the cases above."""
    tested = [u for u, _ in PAGE_FIXES] + [
        "https://docs.google.com/document/d/1xyz/edit",
        "https://youtu.be/x",
        "https://vimeo.com/1",
    ]
    matched = {page.name for uri in tested for page in PAGES if page.matches(http_url(uri))}
    assert matched == {page.name for page in PAGES}
