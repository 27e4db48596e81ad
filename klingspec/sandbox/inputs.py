"""A generation fetches its inputs, as the real API does before it renders anything.

Oxen takes media as URLs that "must be publicly downloadable. URLs that require
authentication or block automated access will fail" (fact sheet 7). So when a generation
runs (queue worker) or a sync request is answered, every input URL in its body is fetched
and its content checked; the first that fails decides the error, in body order:
`input_image` (a list or one string), `start_image_url`, `tail_image_url`,
`elements[].frontal_image_url`, `elements[].reference_image_urls[]`, then `input_video`
(models that take one) and any other field the catalogue's request schema marks
`format: uri`.

How a URL is resolved, since the sandbox reaches no network:

- `https://hub.oxen.ai/api/repos/{ns}/{repo}/file/{branch}/{path}`: the sandbox's own
  repository store (`repos.py`), read without credentials: a file of a private repository
  (`SandboxConfig.private_repos`) fails with 401 like a file never uploaded fails with 404.
  Any other hub.oxen.ai URL is a 404.
- Loopback (`localhost`, `127.0.0.0/8`, `[::1]`): fetched for real over HTTP, with
  `SandboxConfig.input_fetch_timeout` per URL and `input_max_bytes` at most; redirects
  are followed (5 at most), each hop resolved by these same rules.
- The reserved example domains (`example.com`, `example.org`, `example.net`, their
  subdomains, and the `.example` TLD; RFC 2606 and 6761): taken to exist WITHOUT fetching,
  so the offline quick start and tests need no files (a sandbox convenience, OWN). Two
  spellings name a bad file: a path segment `missing` (or a file named `missing.*`) is a
  404, and an extension of another kind (`.txt`, `.html`, `.mp4` for an image…) is "not an
  image". No extension, or one of the expected kind, is a good file.
- The `.invalid` TLD does not resolve; any other host cannot be reached from the sandbox.
  Both fail the generation. `data:` URIs are refused (whether Oxen's Kling models take
  them is UNKNOWN, fact sheet 7 and 9; the stricter reading).

Content: an image must open with Pillow as PNG, JPEG, WebP or GIF ("Must be jpeg, png,
gif, or webp", fact sheet 6.2); a video must be MP4/MOV (an `ftyp` box).

Messages: an HTTP failure reads like the one Oxen has shown for an unreachable image,
"403 Client Error: Forbidden for url: …" (fact sheet 3.2, [IE]); a wrong type like the
documented "Unsupported file type 'image/tiff'. Supported file types: …" (3.1, [CC]); the
rest are OWN WORDING. Each is `<field>: <reason>` behind the same "Getting model response
error: 422 - " wrapper as every other model-parameter error (`validation.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from PIL import Image

from klingspec.sandbox.catalog import ModelSpec
from klingspec.sandbox.config import SandboxConfig
from klingspec.sandbox.repos import OCTET_STREAM, RepoStore, content_type, hub_location, sniff
from klingspec.sandbox.validation import UPSTREAM_PREFIX

IMAGE, VIDEO = "image", "video"
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
_IMAGE_TYPES = "image/jpeg, image/png, image/webp, image/gif"
_VIDEO_TYPES = "video/mp4, video/quicktime"
_IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif"})
_VIDEO_EXTENSIONS = frozenset({".mp4", ".mov"})
_EXAMPLE_DOMAINS = ("example.com", "example.org", "example.net")
MAX_REDIRECTS = 5
PUBLIC_ONLY = "inputs must be publicly downloadable"

# Documented fields; the schema's other `format: uri` fields are found in `input_urls`.
_KNOWN = frozenset({"input_image", "start_image_url", "tail_image_url", "elements", "input_video"})


@dataclass(frozen=True)
class Input:
    """One URL a generation needs: where it sits in the body, its value, and its kind."""

    field: str
    value: Any
    kind: str


def input_urls(body: Mapping[str, Any], spec: ModelSpec) -> list[Input]:
    """Every input URL of `body`, in body order (absent and null fields are skipped)."""
    found: list[Input] = []
    image = body.get("input_image")
    if isinstance(image, list):
        found += [Input(f"input_image[{i}]", url, IMAGE) for i, url in enumerate(image)]
    elif image is not None:
        found.append(Input("input_image", image, IMAGE))
    found += [Input(name, body[name], IMAGE) for name in ("start_image_url", "tail_image_url") if name in body]
    elements = body.get("elements")
    for i, element in enumerate(elements if isinstance(elements, list) else []):
        if not isinstance(element, Mapping):
            continue
        if "frontal_image_url" in element:
            found.append(Input(f"elements[{i}].frontal_image_url", element["frontal_image_url"], IMAGE))
        refs = element.get("reference_image_urls")
        for j, url in enumerate(refs if isinstance(refs, list) else []):
            found.append(Input(f"elements[{i}].reference_image_urls[{j}]", url, IMAGE))
    if spec.accepts_input_video and "input_video" in body:
        found.append(Input("input_video", body["input_video"], VIDEO))
    for name, schema in _uri_fields(spec):
        if name in body and name not in _KNOWN:
            kind = VIDEO if "video" in name else IMAGE
            values = body[name] if isinstance(body[name], list) and schema.get("type") == "array" else [body[name]]
            found += [Input(name if len(values) == 1 else f"{name}[{i}]", v, kind) for i, v in enumerate(values)]
    return [item for item in found if item.value is not None]


def _uri_fields(spec: ModelSpec) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for name, schema in spec.model_object()["request_schema"]["properties"].items():
        items = schema.get("items") or {}
        if schema.get("format") == "uri" or items.get("format") == "uri":
            yield name, schema


class Fetcher:
    """Checks the inputs of generations; `async with Fetcher(config, repos) as fetch:`.

    One HTTP client, made on first need, serves every loopback URL of the block. `fetched`
    keeps the bytes of each URL read (repository store or loopback; after redirects, under
    the URL asked for), so the result can show its start image (`footage.py`).
    """

    def __init__(self, config: SandboxConfig, repos: RepoStore) -> None:
        self.config, self.repos = config, repos
        self._http: httpx.AsyncClient | None = None
        self.fetched: dict[str, bytes] = {}

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def error(self, body: Mapping[str, Any], spec: ModelSpec) -> str | None:
        """The first input of `body` that cannot be used, as the generation's error; or None.

        Distinct URLs are fetched concurrently; each at most once.
        """
        inputs = input_urls(body, spec)
        unique: dict[tuple[str, str], Input] = {}
        for item in inputs:
            unique.setdefault((repr(item.value), item.kind), item)
        results = await asyncio.gather(*(self._check_value(item) for item in unique.values()))
        checks = dict(zip(unique, results, strict=True))
        for item in inputs:
            reason = checks[(repr(item.value), item.kind)]
            if reason is not None:
                return f"{UPSTREAM_PREFIX}{item.field}: {reason}"
        return None

    async def _check_value(self, item: Input) -> str | None:
        if not isinstance(item.value, str):
            return "Input should be a valid string"  # OWN WORDING (pydantic's)
        return await self.check(item.value, item.kind)

    async def check(self, url: str, kind: str, hops: int = 0) -> str | None:
        """Why `url` cannot serve as an input of `kind`, or None when it can."""
        if url.startswith("data:"):
            return "data URIs are not accepted; upload the file and pass its URL"  # OWN WORDING
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
            parts.port  # noqa: B018 (raises ValueError on a bad port)
        except ValueError:
            return "Invalid URL"
        if parts.scheme not in ("http", "https") or not host:
            return "Invalid URL"  # the edit walkthrough's text for a malformed URL (fact sheet 6.4)
        where = hub_location(url)
        if where is not None or host == "hub.oxen.ai":
            # Read as the hub's own GET route answers a request without credentials.
            if where is not None and where.repository in self.config.private_repos:
                return f"{_http_error(401, url)} ({PUBLIC_ONLY})"
            stored = None if where is None else self.repos.get(where)
            if stored is None:
                return _http_error(404, url)
            self.fetched[url] = stored.data
            return await _content_error(stored.data, stored.content_type, url, kind)
        if _is_example(host):
            return _example_error(parts.path, url, kind)
        if _is_loopback(host):
            return await self._fetch(url, kind, hops)
        if host == "invalid" or host.endswith(".invalid"):
            return f"Failed to resolve host '{host}' for url: {url}"  # OWN WORDING
        # OWN WORDING: the real API would try; the sandbox reaches no network.
        return (
            f"Failed to connect to '{host}' for url: {url} (the sandbox reaches no network: "
            "use a hub.oxen.ai, loopback or example.com URL)"
        )

    async def _fetch(self, url: str, kind: str, hops: int) -> str | None:
        timeout = self.config.input_fetch_timeout
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False)
        try:
            async with asyncio.timeout(timeout):
                async with self._http.stream("GET", url) as response:
                    if response.is_redirect and "location" in response.headers:
                        if hops >= MAX_REDIRECTS:
                            return f"Too many redirects for url: {url}"  # OWN WORDING
                        target = urljoin(url, response.headers["location"])
                        reason = await self.check(target, kind, hops + 1)
                        if target in self.fetched:
                            self.fetched[url] = self.fetched[target]
                        return reason
                    if response.status_code >= 300:
                        return _http_error(response.status_code, url, response.reason_phrase)
                    data = bytearray()
                    async for chunk in response.aiter_bytes():
                        data += chunk
                        if len(data) > self.config.input_max_bytes:
                            # OWN WORDING
                            return f"The file at url: {url} is larger than {self.config.input_max_bytes} bytes"
                    declared = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        except (TimeoutError, httpx.TimeoutException):
            return f"Timed out after {timeout:g} s downloading url: {url}"  # OWN WORDING
        except httpx.HTTPError as exc:
            return f"Failed to download url: {url} ({type(exc).__name__})"  # OWN WORDING
        body = self.fetched[url] = bytes(data)
        return await _content_error(body, declared or content_type(urlsplit(url).path, body), url, kind)


def _http_error(status: int, url: str, phrase: str | None = None) -> str:
    """`requests`' wording, which Oxen passed through for an unreachable image (fact sheet 3.2)."""
    side = "Client" if status < 500 else "Server"
    with contextlib.suppress(ValueError):
        phrase = phrase or HTTPStatus(status).phrase
    return f"{status} {side} Error: {phrase or 'Error'} for url: {url}"


def _is_example(host: str) -> bool:
    return (
        host == "example"
        or host.endswith(".example")
        or any(host == domain or host.endswith("." + domain) for domain in _EXAMPLE_DOMAINS)
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _example_error(path: str, url: str, kind: str) -> str | None:
    """The example-domain convention (module docstring): `missing` is a 404, a foreign
    extension is the wrong type, anything else is a good file of the wanted kind."""
    segments = [s for s in path.split("/") if s]
    if any(s.lower() == "missing" or s.lower().startswith("missing.") for s in segments):
        return _http_error(404, url)
    name = segments[-1] if segments else ""
    extension = name[name.rfind(".") :].lower() if "." in name else ""
    allowed = _IMAGE_EXTENSIONS if kind == IMAGE else _VIDEO_EXTENSIONS
    if extension and extension not in allowed:
        return _unsupported(content_type(name, b""), url, kind)
    return None


async def _content_error(data: bytes, declared: str, url: str, kind: str) -> str | None:
    if kind == VIDEO:
        return None if data[4:8] == b"ftyp" else _unsupported(sniff(data) or declared, url, kind)
    return await asyncio.to_thread(_image_error, data, declared, url)


def _image_error(data: bytes, declared: str, url: str) -> str | None:
    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
            image.verify()
    except Exception:  # Pillow raises many kinds for bytes that are not a whole image
        found = sniff(data)
        if found is not None and found.startswith("image/"):
            return f"Could not decode the image ({found}) at url: {url}"  # OWN WORDING
        return _unsupported(found or declared or OCTET_STREAM, url, IMAGE)
    return None


def _unsupported(found: str, url: str, kind: str) -> str:
    supported = _IMAGE_TYPES if kind == IMAGE else _VIDEO_TYPES
    return f"Unsupported file type '{found}' for url: {url}. Supported file types: {supported}."
