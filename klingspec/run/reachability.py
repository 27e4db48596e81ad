"""`check --online`: ask each image URL's server what it answers, as the API would find it.

The Oxen API downloads every input itself, so a URL that is gone, private, a web page or a
sign-in wall fails the render in the queue, after it has been paid for. This module asks
each distinct URL once, in parallel, with a timeout:

- a `HEAD` request, and where that fails (an error status: many servers and presigned
  links refuse HEAD) a `GET` with `Range: bytes=0-0`, whose body is never read;
- redirects followed by hand, at most `MAX_REDIRECTS` hops, all within one deadline;
- no credentials of any kind: these are third-party hosts, so no `Authorization` header,
  no cookies, no `.netrc`, no user and password from the URL, and no proxy settings from
  the environment (the key is sent to the API only, by `run/client.py`).

Answers are kept in the klingspec home (`cache/urls-1/`, one JSON file per URL) for
`TTL_SECONDS`, so checking again does not ask again; a network failure or a timeout is
never kept. What the answers mean becomes diagnostics at every string that holds the URL:
`KVS-url-status`, `KVS-url-not-image`, `KVS-url-login`, `KVS-url-unreachable`, all
warnings: the API fetches from elsewhere, and may be answered otherwise.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from http import HTTPStatus

import httpx

from klingspec import __version__, ast
from klingspec.diagnostics import Diagnostic

TIMEOUT_SECONDS = 5.0
TTL_SECONDS = 24 * 60 * 60
MAX_REDIRECTS = 5
WORKERS = 8
CACHE_FORMAT = 1
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Where a "please sign in" redirect lands: hosts that only sign people in, and path words.
LOGIN_HOSTS = ("accounts.google.com", "login.microsoftonline.com", "login.live.com", "github.com/login")
_LOGIN_PATH = re.compile(r"(^|[/_.-])(login|log-in|signin|sign-in|sign_in|auth|sso|oauth2?)([/_.?-]|$)", re.I)
# Answers that say nothing about the bytes: the API may still look at them and find an image.
_UNRESOLVED = re.compile(r"Name or service not known|nodename nor servname|getaddrinfo failed|No address associated")
UNTYPED = frozenset({"", "application/octet-stream", "binary/octet-stream"})


@dataclass(frozen=True)
class Answer:
    """What one URL answered: the last status and content type, where it ended up (after
    redirects), or why nothing was answered (`error`)."""

    url: str
    status: int | None = None
    content_type: str = ""
    final_url: str = ""
    redirects: int = 0
    error: str | None = None
    checked_at: float = 0.0

    @property
    def login(self) -> bool:
        return self.redirects > 0 and is_login_page(self.final_url)


def is_login_page(url: str) -> bool:
    """A sign-in or consent page, by its URL: a host that only signs people in, or a path
    segment such as `login`, `signin` or `auth`."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return False
    where = f"{parsed.host}{parsed.path}".lower()
    return any(where.startswith(host) for host in LOGIN_HOSTS) or bool(_LOGIN_PATH.search(parsed.path))


# -- the cache ------------------------------------------------------------------------------


class AnswerCache:
    """Answers by URL, as JSON files under `folder`; None disables it. An unreadable or
    stale entry is a miss, and a cache that cannot be written is ignored."""

    def __init__(self, folder: str | None, ttl: float = TTL_SECONDS):
        self.folder = folder
        self.ttl = ttl

    @classmethod
    def open(cls, enabled: bool = True) -> AnswerCache:
        from klingspec.resources import home_dir

        if not enabled or os.environ.get("KLINGSPEC_NO_CACHE", "") not in ("", "0"):
            return cls(None)
        return cls(os.path.join(home_dir(), "cache", f"urls-{CACHE_FORMAT}"))

    def _entry(self, url: str) -> str | None:
        if self.folder is None:
            return None
        return os.path.join(self.folder, hashlib.sha256(url.encode()).hexdigest() + ".json")

    def get(self, url: str, now: float) -> Answer | None:
        entry = self._entry(url)
        if entry is None:
            return None
        try:
            with open(entry, encoding="utf-8") as handle:
                answer = Answer(**json.load(handle))
        except Exception:  # missing, truncated, another format: a miss
            return None
        if answer.url != url or answer.error is not None or not 0 <= now - answer.checked_at < self.ttl:
            return None
        return answer

    def put(self, answer: Answer) -> None:
        entry = self._entry(answer.url)
        if entry is None or answer.error is not None:
            return  # a failure may be passing: ask again next time
        import tempfile

        with contextlib.suppress(OSError):
            os.makedirs(os.path.dirname(entry), exist_ok=True)
            handle, tmp = tempfile.mkstemp(dir=os.path.dirname(entry), suffix=".tmp")
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as out:
                    json.dump(asdict(answer), out)
                os.replace(tmp, entry)
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)


# -- asking -----------------------------------------------------------------------------------


def _client(timeout: float) -> httpx.Client:
    return httpx.Client(
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,  # no proxy or .netrc credentials from the environment
        headers={"User-Agent": f"klingspec/{__version__} (check --online)", "Accept": "image/*,*/*;q=0.5"},
    )


def _without_credentials(url: str) -> httpx.URL:
    parsed = httpx.URL(url)
    return parsed.copy_with(username=None, password=None) if parsed.userinfo else parsed


def _ask(client: httpx.Client, url: httpx.URL, remaining: float) -> httpx.Response:
    """HEAD, and GET of one byte where HEAD gets an error status; the body is never read."""
    timeout = httpx.Timeout(max(remaining, 0.001))
    response = client.head(url, timeout=timeout)
    if response.status_code < 400:
        return response
    with client.stream("GET", url, headers={"Range": "bytes=0-0"}, timeout=timeout) as answer:
        return answer


def fetch(client: httpx.Client, url: str, timeout: float, now: float) -> Answer:
    """Ask one URL, following redirects by hand, within `timeout` seconds in all."""
    deadline = time.monotonic() + timeout
    try:
        current = _without_credentials(url)
        for hop in range(MAX_REDIRECTS + 1):
            response = _ask(client, current, deadline - time.monotonic())
            location = response.headers.get("location")
            if response.status_code in _REDIRECTS and location:
                current = _without_credentials(str(current.join(location)))
                if current.scheme not in ("http", "https"):
                    return Answer(url, error=f"redirects to a `{current.scheme}:` URL", checked_at=now)
                continue
            kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
            return Answer(url, response.status_code, kind, str(current), hop, checked_at=now)
        return Answer(url, error=f"more than {MAX_REDIRECTS} redirects", checked_at=now)
    except httpx.TimeoutException:
        return Answer(url, error=f"no answer within {timeout:g} s", checked_at=now)
    except httpx.ConnectError as failure:
        if _UNRESOLVED.search(str(failure)):
            return Answer(url, error="the host name does not resolve", checked_at=now)
        return Answer(url, error=f"could not connect: {_reason(failure)}", checked_at=now)
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as failure:
        return Answer(url, error=f"{type(failure).__name__}: {_reason(failure)}", checked_at=now)


def _reason(failure: Exception) -> str:
    text = str(failure).strip() or type(failure).__name__
    return text if len(text) <= 120 else text[:117] + "..."


@dataclass
class Asked:
    """Every URL's answer, and how many were answered from the cache."""

    answers: dict[str, Answer]
    cached: int


def ask_all(urls: Iterable[str], timeout: float = TIMEOUT_SECONDS, cache: AnswerCache | None = None) -> Asked:
    """Each distinct URL's answer: from the cache, else asked in parallel."""
    cache = cache or AnswerCache(None)
    now = time.time()
    answers: dict[str, Answer] = {}
    missing: list[str] = []
    for url in dict.fromkeys(urls):
        found = cache.get(url, now)
        if found is None:
            missing.append(url)
        else:
            answers[url] = found
    cached = len(answers)
    if missing:
        with _client(timeout) as client, ThreadPoolExecutor(max_workers=min(WORKERS, len(missing))) as pool:
            for answer in pool.map(lambda u: fetch(client, u, timeout, now), missing):
                answers[answer.url] = answer
                cache.put(answer)
    return Asked(answers, cached)


# -- what the answers mean -------------------------------------------------------------------


def _phrase(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def diagnostics_of(answer: Answer, text: ast.Text) -> list[Diagnostic]:
    """The warnings one answer gives, at a string that holds its URL."""
    span = text.span
    if answer.error is not None:
        return [
            Diagnostic.of(
                "KVS-url-unreachable",
                span,
                f"the URL could not be fetched: {answer.error}",
                "check the address and that the host is up; the API downloads the image itself "
                "and will fail the same way if it cannot reach it",
            )
        ]
    assert answer.status is not None  # an answer without an error has a status
    moved = f" (after {answer.redirects} redirect{'s' if answer.redirects != 1 else ''})" if answer.redirects else ""
    if answer.login:
        return [
            Diagnostic.of(
                "KVS-url-login",
                span,
                f"the URL redirects to a sign-in page{moved}",
                "the API downloads without signing in: share the file publicly, or host it where anyone can "
                "download it",
                label=f"ends at {answer.final_url[:100]}",
            )
        ]
    if answer.status >= 400 or answer.status in _REDIRECTS:
        hint = {
            401: "the server wants credentials, which the API does not have",
            403: "the server refuses to give it out: make the file public",
            404: "the file is not there: check the path, or upload it again",
            410: "the file was removed: upload it again",
            429: "the server is limiting requests: the API may meet the same limit",
        }.get(answer.status, "the API would get the same answer, and fail the render")
        return [
            Diagnostic.of(
                "KVS-url-status",
                span,
                f"the server answered {_phrase(answer.status)}{moved}",
                hint,
            )
        ]
    if not answer.content_type.startswith("image/") and answer.content_type not in UNTYPED:
        page = answer.content_type in ("text/html", "application/xhtml+xml")
        return [
            Diagnostic.of(
                "KVS-url-not-image",
                span,
                f"the URL answers with `{answer.content_type}`, not an image{moved}",
                "a web page, not the file: use the link to the image itself (open the image on its own and copy "
                "that address)"
                if page
                else "give the URL of a JPEG, PNG or WebP image",
            )
        ]
    return []
