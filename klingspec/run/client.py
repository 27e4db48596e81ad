"""A thin client of the Oxen.ai inference API over an injected `httpx.Client`.

What it knows: the endpoints and both documented error shapes, which calls are safe to
repeat (reads, cancel, downloads) and which are not (submits). One retry policy (tenacity)
serves every request: exponential backoff with jitter, `Retry-After` honoured, and a submit
never repeated on its own: when a submit's outcome is unknown (sent, then the connection
dropped or timed out), it raises `SubmitOutcomeUnknown` so the runner can reconcile against
the queue before anything is sent again. Server-sent events are parsed by httpx-sse. The
API key is attached only to requests for the API's own host and never appears in an error
message.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import socket
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, cast

import httpx

# httpx-sse's event decoder (the field rules of the SSE spec), fed lines `_sse_lines` caps
from httpx_sse._decoders import SSEDecoder
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from klingspec.assets import HUB_URL
from klingspec.run.media import create_part

DEFAULT_API_URL = f"{HUB_URL}/api"
TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=60.0, pool=10.0)
SYNC_TIMEOUT = httpx.Timeout(connect=10.0, read=20 * 60.0, write=60.0, pool=10.0)
SSE_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=10.0, pool=10.0)  # keep-alives come every 15 s
CHUNK = 1 << 16
MB = 1_000_000


@dataclass(frozen=True)
class Limits:
    """The most the API can plausibly send, so a broken or hostile answer (an endless body,
    a gzip bomb, an event-stream line that never ends) fails cleanly instead of filling the
    disk or the memory. Counted in *decoded* bytes. docs/cli.md ("Limits") says why each."""

    # Kling renders at most 15 s (fact sheet 2.3); even 4K at 160 Mbit/s, several times
    # what a generated 15 s clip carries, is 300 MB.
    video_bytes: int = 300 * MB
    # A JSON answer (a generation, the queue listing, the catalogue): 32 MB is thousands
    # of listed generations; the listing documents no pagination, so it is generous.
    json_bytes: int = 32 * MB
    # One line of the event stream: an event's `data:` is a one-line JSON object with a
    # presigned URL (fact sheet 4.6), a few kilobytes.
    sse_line_chars: int = 1 << 20

    @property
    def answer_bytes(self) -> int:
        """A sync answer: one video as base64 (4/3 of its bytes) and the JSON around it."""
        return self.video_bytes * 4 // 3 + MB


class ApiError(Exception):
    """The API answered with an error, or could not be reached. Carries the request
    (method and path, never headers) and, where known, the generation id. `transient`:
    the API was unreachable or kept refusing with 429/5xx after the retries (asking again
    later may well work)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str = "",
        path: str = "",
        generation_id: str | None = None,
        transient: bool = False,
    ):
        super().__init__(message)
        self.message = message
        self.status = status
        self.method = method
        self.path = path
        self.generation_id = generation_id
        self.transient = transient

    def __str__(self) -> str:
        where = f"{self.method} {self.path}".strip()
        status = f" ({self.status})" if self.status else ""
        job = f" [generation {self.generation_id}]" if self.generation_id else ""
        return f"{where}{status}: {self.message}{job}" if where else self.message


class SubmitOutcomeUnknown(ApiError):
    """A submit was sent but no answer came back: a job may or may not exist."""


class Stopped(Exception):
    """A download or a wait was abandoned because the run is stopping (Ctrl-C)."""


class BadBody(ApiError):
    """An answer the API cannot have meant: larger than `Limits` allow, or a "video" that is
    no MP4. Never retried: the same URL would send the same thing."""


def looks_like_mp4(head: bytes) -> bool:
    """An ISO-BMFF file (MP4/MOV) starts with a box whose type is `ftyp`."""
    return len(head) >= 8 and head[4:8] == b"ftyp"


def error_message(response: httpx.Response) -> str:
    """The API's own words from either documented error body, else the status text."""
    try:
        payload = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:300] or response.reason_phrase
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, str):
            return error
        if isinstance(error, dict):
            for key in ("detail", "message", "title"):
                if isinstance(words := error.get(key), str) and words:
                    return words
        for key in ("error_message", "status_message", "message", "detail"):
            if isinstance(words := payload.get(key), str) and words:
                return words
    return response.reason_phrase or f"HTTP {response.status_code}"


class HostBearer(httpx.Auth):
    """Bearer auth sent only to the API's scheme, host and port: a result URL that
    redirects to a storage host never receives the key."""

    def __init__(self, key: str | None, api_url: str):
        self._key = key
        origin = httpx.URL(api_url)
        self._origin = (origin.scheme, origin.host, origin.port)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._key and (request.url.scheme, request.url.host, request.url.port) == self._origin:
            request.headers["Authorization"] = f"Bearer {self._key}"
        yield request

    def __repr__(self) -> str:  # never show the key in a repr
        return "HostBearer(<redacted>)"


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    base: float = 0.5
    cap: float = 30.0
    max_retry_after: float = 120.0
    clock: Callable[[], float] = field(default=time.time, compare=False, repr=False)  # for HTTP-date Retry-After

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """`Retry-After` (seconds or an HTTP date) when the API gave one, else exponential
        backoff with full jitter."""
        # Hand-written: tenacity knows nothing of `Retry-After`, and its `wait_random_exponential`
        # (the same formula as the last line) needs a RetryCallState, which callers of `delay` lack.
        wait = _retry_after_seconds(retry_after, self.clock)
        if wait is not None:
            return min(max(wait, 0.0), self.max_retry_after)
        return random.uniform(0, min(self.cap, self.base * (2**attempt)))  # full jitter

    def wait(self, state: RetryCallState) -> float:
        """tenacity's wait: `delay` for the attempt that just failed, reading `Retry-After`
        from the refusal it ended with (network errors carry none)."""
        error = state.outcome.exception() if state.outcome is not None and state.outcome.failed else None
        retry_after = error.response.headers.get("Retry-After") if isinstance(error, httpx.HTTPStatusError) else None
        return self.delay(state.attempt_number - 1, retry_after)

    def retrying(self, repeatable: Repeatable, sleep: Callable[[float], None]) -> Retrying:
        """A tenacity controller for one request: up to `attempts` tries, waiting through
        `sleep` between them, repeating only what `repeatable` allows; when it gives up,
        the last attempt's own exception is raised for the caller to put into words."""
        return Retrying(
            sleep=lambda seconds: sleep(float(seconds)),
            stop=stop_after_attempt(self.attempts),
            wait=self.wait,
            retry=retry_if_exception(repeatable),
            reraise=True,
        )


def _retry_after_seconds(value: str | None, clock: Callable[[], float]) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(value).timestamp() - clock()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


RETRY_STATUSES = {429, 500, 502, 503, 504}
# The connection never opened: the request surely did not arrive.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class Repeatable:
    """Whether a failed attempt may be sent again: it raised one of `errors`, or it was
    refused (`httpx.HTTPStatusError`) with one of `statuses`."""

    errors: tuple[type[Exception], ...]
    statuses: frozenset[int]

    def __call__(self, error: BaseException) -> bool:
        if isinstance(error, httpx.HTTPStatusError):
            return error.response.status_code in self.statuses
        return isinstance(error, self.errors)


# The one place that decides what is retried, per kind of request.
READ = Repeatable((httpx.TransportError,), frozenset(RETRY_STATUSES))  # idempotent: any network error, 429, 5xx
SUBMIT = Repeatable(NOT_SENT, frozenset({429, 503}))  # only when it surely did not arrive or was refused unprocessed
DOWNLOAD = READ  # a cut-short or unreachable download starts again from scratch
# A repository upload is idempotent by content: the path names the file's SHA-256, so
# sending the same bytes to the same path again after a lost answer at worst makes one
# more commit of identical content. Unlike an enqueue, nothing is paid twice: retried as a read.
UPLOAD = READ


def _refused(response: httpx.Response) -> httpx.HTTPStatusError:
    """An error answer as an exception, so the retry policy can see its status and `Retry-After`."""
    return httpx.HTTPStatusError(
        f"{response.status_code} {response.reason_phrase}", request=response.request, response=response
    )


@dataclass
class Stats:
    requests: int = 0
    by_route: dict[str, int] = field(default_factory=dict)


class OxenClient:
    """Submit, enqueue, poll, follow events, cancel and download."""

    def __init__(
        self,
        http: httpx.Client,
        api_url: str = DEFAULT_API_URL,
        *,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] | None = None,
        limits: Limits = Limits(),
    ):
        self.http = http
        self.api_url = api_url.rstrip("/")
        self.retry = retry
        self.limits = limits
        self._halted = threading.Event()
        self.sleep = sleep or self._pause
        self.stats = Stats()
        self._secret: str | None = getattr(http.auth, "_key", None)  # only to scrub it from messages
        self._streams: set[httpx.Response] = set()
        self._streams_lock = threading.Lock()
        # A lower bound of (the API's clock - ours), from the `Date` headers of its answers;
        # None until one arrives. `submitting` reconciles on the API's clock with it.
        self.server_clock_offset: float | None = None

    @classmethod
    def create(cls, api_url: str, key: str | None, **kwargs: Any) -> OxenClient:
        http = httpx.Client(
            auth=HostBearer(key, api_url), timeout=TIMEOUT, follow_redirects=True, headers={"User-Agent": "klingspec"}
        )
        return cls(http, api_url, **kwargs)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> OxenClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- stopping ---------------------------------------------------------------------
    def _pause(self, seconds: float) -> None:
        """The default wait between attempts: ends early, raising `Stopped`, when the run
        is halted (`interrupt`). In the main thread Ctrl-C interrupts it at once too."""
        if self._halted.wait(seconds):
            raise Stopped()

    def interrupt(self) -> None:
        """Stop waiting, from any thread (Ctrl-C): every retry wait raises `Stopped`, and
        every open event stream and download is shut down, so no worker sits out a
        `Retry-After` or a slow body. `resume` undoes it for the next run."""
        self._halted.set()
        self.close_events()

    def resume(self) -> None:
        self._halted.clear()

    @property
    def halted(self) -> bool:
        return self._halted.is_set()

    # -- plumbing -------------------------------------------------------------------
    def scrub(self, value: Any) -> Any:
        """`value` (text, or JSON of any depth) with the API key replaced by `<redacted>`,
        wherever the API may have echoed it: nothing it says is printed or stored with it."""
        secret = self._secret
        if not secret:
            return value
        if isinstance(value, str):
            return value.replace(secret, "<redacted>")
        if isinstance(value, dict):
            return {self.scrub(k): self.scrub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.scrub(v) for v in value]
        return value

    def _message(self, response: httpx.Response) -> str:
        """The API's own words, with the key scrubbed should the API ever echo it."""
        return str(self.scrub(error_message(response)))

    def _capped(self, method: str, url: str, cap: int, **kwargs: Any) -> httpx.Response:
        """`method` on `url`, its body read whole but never past `cap` decoded bytes (a gzip
        bomb counts what it inflates to): BadBody beyond that."""
        with self.http.stream(method, url, **kwargs) as response:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > cap:
                    raise BadBody(
                        f"the API's answer is larger than {cap:,} bytes, more than it can mean; not read further",
                        status=response.status_code,
                        method=method,
                        path=httpx.URL(url).path,
                    )
        dropped = ("content-encoding", "content-length", "transfer-encoding")  # `body` is decoded already
        headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in dropped]
        return httpx.Response(response.status_code, headers=headers, content=bytes(body), request=response.request)

    def _url(self, path: str) -> str:
        return self.api_url + path

    def _count(self, method: str, path: str) -> None:
        self.stats.requests += 1
        key = f"{method} {path.split('?')[0]}"
        self.stats.by_route[key] = self.stats.by_route.get(key, 0) + 1

    def _read(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """An idempotent request: retried on network errors, 429 and 5xx. Returns the last
        answer whatever its status (the caller reports an error status)."""

        def attempt() -> httpx.Response:
            self._count(method, path)
            response = self._capped(method, self._url(path), self.limits.json_bytes, **kwargs)
            self._note_clock(response)
            if response.status_code in RETRY_STATUSES:
                raise _refused(response)
            return response

        try:
            return self.retry.retrying(READ, self.sleep)(attempt)
        except httpx.HTTPStatusError as refused:
            return refused.response
        except httpx.TransportError as error:
            if self.halted:
                raise Stopped() from None
            raise ApiError(f"network error: {type(error).__name__}", method=method, path=path, transient=True) from None

    def _note_clock(self, response: httpx.Response) -> None:
        """`Date` (whole seconds, stamped before the answer left the API) minus our clock
        when it arrived is never more than the true offset: keep the largest seen."""
        arrived = time.time()
        try:
            stamped = parsedate_to_datetime(response.headers.get("Date", "")).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return
        offset = stamped - arrived
        if self.server_clock_offset is None or offset > self.server_clock_offset:
            self.server_clock_offset = offset

    def _json(self, response: httpx.Response, method: str, path: str, generation_id: str | None = None) -> Any:
        if response.status_code >= 400:
            raise ApiError(
                self._message(response),
                status=response.status_code,
                method=method,
                path=path,
                generation_id=generation_id,
                transient=response.status_code in RETRY_STATUSES,
            )
        try:
            return self.scrub(response.json())
        except ValueError:
            raise ApiError(
                "the API answered with something that is not JSON",
                status=response.status_code,
                method=method,
                path=path,
            ) from None

    def _object(self, answer: Any, method: str, path: str, generation_id: str | None = None) -> dict[str, Any]:
        """`answer` when it is a JSON object, as every endpoint documents; anything else is
        reported like any other unusable answer instead of failing later in a caller."""
        if not isinstance(answer, dict):
            raise ApiError(
                "the API answered with JSON that is not an object",
                method=method,
                path=path,
                generation_id=generation_id,
            )
        return answer

    def _submit(self, path: str, payload: dict[str, Any], timeout: httpx.Timeout) -> Any:
        """A non-idempotent request. Retried only when it surely did not arrive (the
        connection never opened, or the API said 429/503 before doing anything)."""

        def attempt() -> httpx.Response:
            self._count("POST", path)
            try:
                response = self._capped("POST", self._url(path), self.limits.json_bytes, json=payload, timeout=timeout)
            except BadBody as error:  # it was received and answered: a job may exist
                raise SubmitOutcomeUnknown(error.message, status=error.status, method="POST", path=path) from None
            if response.status_code in SUBMIT.statuses:
                raise _refused(response)
            return response

        try:
            response = self.retry.retrying(SUBMIT, self.sleep)(attempt)
        except httpx.HTTPStatusError as refused:
            response = refused.response  # refused every time: the last refusal is reported below
        except NOT_SENT as error:
            raise ApiError(f"cannot reach the API: {type(error).__name__}", method="POST", path=path) from None
        except httpx.TransportError as error:
            raise SubmitOutcomeUnknown(
                f"the request was sent but no answer came back ({type(error).__name__})", method="POST", path=path
            ) from None
        if response.status_code >= 500:
            raise SubmitOutcomeUnknown(
                f"the API failed after receiving the request: {self._message(response)}",
                status=response.status_code,
                method="POST",
                path=path,
            )
        return self._json(response, "POST", path)

    # -- endpoints --------------------------------------------------------------------
    def generate(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /ai/videos/generate: blocks until the video is ready."""
        path = "/ai/videos/generate"
        return self._object(self._submit(path, body, SYNC_TIMEOUT), "POST", path)

    def generate_to_file(self, body: dict[str, Any], path: str) -> None:
        """POST /ai/videos/generate, streaming the answer to `path` (a `b64_json` answer
        holds whole videos; it is decoded from the file by `media.decode_b64_videos`). The
        answer is written to `path.part` and renamed to `path` once whole, so a file at
        `path` is always a complete answer (a crash leaves at most the `.part`). At most
        `Limits.answer_bytes` are read: past that the outcome is unknown.
        Repeated only when the request surely did not arrive or was refused unprocessed
        (connect errors, 429, 503), like `_submit`."""
        route = "/ai/videos/generate"
        part = path + ".part"
        cap = self.limits.answer_bytes

        def attempt() -> None:
            self._count("POST", route)
            with self.http.stream("POST", self._url(route), json=body, timeout=SYNC_TIMEOUT) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _refused(response)
                size = 0
                with open(part, "wb") as handle:
                    for chunk in response.iter_bytes(CHUNK):
                        size += len(chunk)
                        if size > cap:
                            raise SubmitOutcomeUnknown(
                                f"the API's answer is larger than {cap:,} bytes, more than one video can be; "
                                "not read further",
                                method="POST",
                                path=route,
                            )
                        handle.write(chunk)
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(part, path)

        try:
            self.retry.retrying(SUBMIT, self.sleep)(attempt)
        except httpx.HTTPStatusError as refused:
            response = refused.response
            error = SubmitOutcomeUnknown if response.status_code >= 500 else ApiError
            raise error(self._message(response), status=response.status_code, method="POST", path=route) from None
        except NOT_SENT as error:
            raise ApiError(f"cannot reach the API: {type(error).__name__}", method="POST", path=route) from None
        except httpx.TransportError as error:
            raise SubmitOutcomeUnknown(
                f"the request was sent but no answer came back ({type(error).__name__})", method="POST", path=route
            ) from None
        finally:
            if os.path.exists(part):
                os.unlink(part)

    def enqueue(self, body: dict[str, Any], generations: int) -> list[str]:
        """POST /ai/queue; returns the generation ids."""
        payload = dict(body)
        payload["num_generations"] = generations
        answer = self._submit("/ai/queue", payload, TIMEOUT)
        items = answer.get("generations") if isinstance(answer, dict) else None
        ids = [item.get("generation_id") for item in items or () if isinstance(item, dict)]
        if not ids or not all(isinstance(i, str) and i for i in ids):
            raise ApiError(
                error_message_of(answer) or "the queue answered without generation ids", method="POST", path="/ai/queue"
            )
        return cast("list[str]", ids)  # each checked above to be a non-empty string

    def generation(self, generation_id: str) -> dict[str, Any]:
        path = f"/ai/queue/{generation_id}"
        answer = self._json(self._read("GET", path), "GET", path, generation_id)
        return self._object(answer, "GET", path, generation_id)

    def generations(
        self, status: str | None = None, model: str | None = None, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        """GET /ai/queue: one namespace's generations, the key holder's unless `namespace`
        names another (an organisation's `target_namespace`); active ones unless `status`
        asks for one status, terminal ones included."""
        params = {k: v for k, v in (("status", status), ("model", model), ("namespace", namespace)) if v}
        answer = self._json(self._read("GET", "/ai/queue", params=params), "GET", "/ai/queue")
        items = answer.get("generations", []) if isinstance(answer, dict) else []
        return [item for item in items if isinstance(item, dict)]  # the listing documents an object per generation

    def cancel(self, generation_id: str) -> dict[str, Any]:
        path = f"/ai/queue/{generation_id}"
        answer = self._json(self._read("DELETE", path), "DELETE", path, generation_id)
        return self._object(answer, "DELETE", path, generation_id)

    def models_listing(self) -> httpx.Response:
        """`GET /ai/models`, answered with JSON (else ApiError): the response itself, since a
        sync keeps its ETag and hashes its bytes."""
        response = self._read("GET", "/ai/models")
        self._json(response, "GET", "/ai/models")
        return response

    def model(self, model_id: str) -> dict[str, Any]:
        path = f"/ai/models/{model_id}"
        answer = self._json(self._read("GET", path), "GET", path)
        return self._object(answer, "GET", path)

    def events(self, on_open: Callable[[], None] = lambda: None) -> Iterator[tuple[str, Any]]:
        """Server-sent events from /events as (event name, data); data that is not JSON is
        skipped. `on_open` runs once the stream is established (subscribe before enqueueing:
        there is no replay). Ends when the stream closes; the caller decides whether to
        reconnect or poll."""
        path = "/events"
        self._count("GET", path)
        with self.http.stream(
            "GET", self._url(path), timeout=SSE_TIMEOUT, headers={"Accept": "text/event-stream"}
        ) as response:
            if response.status_code >= 400:
                response.read()
                raise ApiError(self._message(response), status=response.status_code, method="GET", path=path)
            content_type = response.headers.get("content-type", "").partition(";")[0]
            if "text/event-stream" not in content_type:
                raise ApiError(
                    "the API answered with something that is not an event stream",
                    status=response.status_code,
                    method="GET",
                    path=path,
                )
            with self._streams_lock:
                self._streams.add(response)
            try:
                on_open()
                decoder = SSEDecoder()
                for line in _sse_lines(response.iter_text(), self.limits.sse_line_chars):
                    event = decoder.decode(line)
                    if event is None:
                        continue
                    try:
                        data = event.json()
                    except ValueError:
                        continue
                    yield event.event, self.scrub(data)
            except httpx.TransportError:
                if response.extensions.get("klingspec_closed"):
                    return  # `close_events` shut the socket down: end quietly
                raise  # the stream broke
            finally:
                with self._streams_lock:
                    self._streams.discard(response)

    def close_events(self) -> None:
        """End every open event stream and download, from any thread: the socket is shut
        down, which wakes a reader blocked waiting for the next bytes (closing alone would not)."""
        with self._streams_lock:
            streams = list(self._streams)
        for response in streams:
            response.extensions["klingspec_closed"] = True
            stream = response.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            try:
                if sock is not None:
                    sock.shutdown(socket.SHUT_RDWR)
                else:
                    response.close()
            except Exception:  # already closed, or racing the reader: either way it ends
                pass

    def download(self, url: str | None, destination: str, stop: threading.Event | None = None) -> tuple[str, int]:
        """Stream `url` into a `.part` file beside `destination`, verify its length against
        Content-Length and that it is an MP4 (an `ftyp` box first), fsync, then rename it
        into place. Returns (sha256, size). A cut-off download is retried from scratch; the
        `.part` file never outlives a failure. At most `Limits.video_bytes` decoded bytes
        are written (BadBody past that, and for a body that is no MP4: neither is retried).
        Bytes are handled as they arrive, so `Stopped` is raised as soon as `stop` is set
        (or the client is interrupted, which also shuts the socket down)."""
        if not url:
            raise ApiError("the API gave no result URL", method="GET", path="download")
        # Each downloader writes its own part file: two runs reattached to one render may
        # download the same video at once, and each renames a whole, verified file into place.
        part = f"{destination}.{os.getpid()}-{threading.get_ident()}.part"
        cap = self.limits.video_bytes
        _remove_orphaned_parts(destination)

        def stopping() -> bool:
            return self.halted or (stop is not None and stop.is_set())

        def attempt() -> tuple[str, int]:
            self._count("GET", "download")
            digest, size, head = hashlib.sha256(), 0, b""
            with self.http.stream("GET", url) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _refused(response)
                expected = response.headers.get("Content-Length")
                encoded = response.headers.get("Content-Encoding", "identity").lower() != "identity"
                if expected is not None and expected.isdigit() and not encoded and int(expected) > cap:
                    raise BadBody(
                        f"the result is {int(expected):,} bytes, more than a video can be ({cap:,}); not downloaded",
                        method="GET",
                        path="download",
                    )
                with self._streams_lock:
                    self._streams.add(response)
                try:
                    with create_part(part) as handle:  # never through a symlink planted there
                        # decoded bytes, as they arrive (no fixed chunk size: a slow link
                        # would hold a whole chunk back, and Ctrl-C with it)
                        for chunk in response.iter_bytes():
                            if stopping():
                                raise Stopped()
                            size += len(chunk)
                            if size > cap:
                                raise BadBody(
                                    f"the result is larger than a video can be ({cap:,} bytes); not downloaded further",
                                    method="GET",
                                    path="download",
                                )
                            if len(head) < 8:
                                head += chunk[: 8 - len(head)]
                            handle.write(chunk)
                            digest.update(chunk)
                        handle.flush()
                        os.fsync(handle.fileno())
                except httpx.TransportError:
                    if stopping():
                        raise Stopped() from None
                    raise
                finally:
                    with self._streams_lock:
                        self._streams.discard(response)
                received = response.num_bytes_downloaded if encoded else size  # Content-Length counts the wire
            if stopping():
                raise Stopped()
            if expected is not None and expected.isdigit() and int(expected) != received:
                raise httpx.ReadError(f"download cut short: {received} of {expected} bytes")
            if size == 0:
                raise httpx.ReadError("the download was empty")
            if not looks_like_mp4(head):
                raise BadBody(
                    "the result is not an MP4 video (no `ftyp` box at its start)", method="GET", path="download"
                )
            os.replace(part, destination)
            return "sha256:" + digest.hexdigest(), size

        try:
            return self.retry.retrying(DOWNLOAD, self.sleep)(attempt)
        except httpx.HTTPStatusError as refused:
            response = refused.response
            raise ApiError(
                self._message(response),
                status=response.status_code,
                method="GET",
                path="download",
                transient=response.status_code in RETRY_STATUSES,
            ) from None
        except httpx.TransportError:
            raise ApiError(
                "the download kept failing (cut short or unreachable)", method="GET", path="download", transient=True
            ) from None
        finally:
            if os.path.exists(part):
                os.unlink(part)


def _remove_orphaned_parts(destination: str) -> None:
    """Remove the `.part` files of `destination` whose downloader died (killed mid-download:
    its pid, in the name, is gone); a live process's part file is left to it."""
    folder, name = os.path.split(destination)
    try:
        names = os.listdir(folder or ".")
    except OSError:
        return
    for entry in names:
        if not (entry.startswith(name + ".") and entry.endswith(".part")):
            continue
        pid = entry[len(name) + 1 :].partition("-")[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(folder, entry))


def _alive(pid: int) -> bool:
    if sys.platform == "win32":  # os.kill(pid, 0) would end the process there: keep its file
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but not ours to signal
        return True
    return True


def _sse_lines(texts: Iterator[str], cap: int) -> Iterator[str]:
    """The lines of an event stream (ended by CRLF, LF or CR), never longer than `cap`
    characters: a line that grows past it (an endless `data:` without a newline) raises
    BadBody instead of growing the client without bound. Hand-written: httpx-sse's own
    line splitter keeps the unfinished line with no limit."""
    pending = ""
    for text in texts:
        pending += text
        while True:
            cut = min((i for i in (pending.find("\r"), pending.find("\n")) if i != -1), default=-1)
            if cut == -1:
                break
            if pending[cut] == "\r" and cut + 1 == len(pending):
                break  # a CR at the end may be the first half of a CRLF
            width = 2 if pending.startswith("\r\n", cut) else 1
            yield pending[:cut]
            pending = pending[cut + width :]
        if len(pending) > cap:
            raise BadBody(
                f"an event-stream line is longer than {cap:,} characters, more than any event; stream abandoned",
                method="GET",
                path="/events",
            )
    if pending:
        yield pending


@dataclass(frozen=True)
class RemoteFile:
    """What `HEAD` of a repository file answered: 404 is `exists=False`."""

    exists: bool
    size: int | None  # Content-Length, when given
    status: int


def _same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


class RepoFiles:
    """Oxen repository files on the API's own host (`{api}/repos/{ns}/{repo}/file/{branch}/{path}`):
    does one exist (HEAD), upload one (PUT, multipart). Uses the `OxenClient`'s httpx
    client, so the key goes only to the API's origin (`HostBearer`); redirects are never
    followed automatically here: a HEAD follows one only within the API's origin, and a
    PUT none at all (a redirected upload would send the image, and with it perhaps the
    key, elsewhere), so a redirect off the API's host is an error."""

    MAX_REDIRECTS = 5

    def __init__(self, client: OxenClient):
        self.client = client

    def _path(self, namespace: str, repo: str, branch: str, remote_path: str) -> str:
        return f"/repos/{namespace}/{repo}/file/{branch}/{remote_path}"

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request on the API's origin, following same-origin redirects (HEAD only)."""
        client = self.client
        url = httpx.URL(client._url(path))
        origin = url
        for _ in range(self.MAX_REDIRECTS + 1):
            client._count(method, path)
            response = client.http.request(method, url, follow_redirects=False, **kwargs)
            if not response.is_redirect:
                return response
            target = url.join(response.headers.get("Location", ""))
            if method != "HEAD" or not _same_origin(target, origin):
                raise ApiError(
                    f"the API redirected the request to {target.scheme}://{target.host}"
                    f"{':' + str(target.port) if target.port else ''}; klingspec does not follow it "
                    "(it sends files and the key only to the API's own host)",
                    status=response.status_code,
                    method=method,
                    path=path,
                )
            url = target
        raise ApiError("too many redirects", method=method, path=path)

    def _retried(self, method: str, path: str, policy: Repeatable, **send: Any) -> httpx.Response:
        """`method` on `path` under the retry `policy`: the last response (a refusal that
        outlived the retries included), or ApiError when the network failed."""

        def attempt() -> httpx.Response:
            response = self._send(method, path, **send)
            if response.status_code in RETRY_STATUSES:
                raise _refused(response)
            return response

        try:
            return self.client.retry.retrying(policy, self.client.sleep)(attempt)
        except httpx.HTTPStatusError as refused:
            return refused.response
        except httpx.TransportError as error:
            raise ApiError(f"network error: {type(error).__name__}", method=method, path=path) from None

    def head(self, namespace: str, repo: str, branch: str, remote_path: str) -> RemoteFile:
        """Whether the file is there, and its size. Retried like any read."""
        response = self._retried("HEAD", self._path(namespace, repo, branch, remote_path), READ)
        length = response.headers.get("Content-Length")
        size = int(length) if length is not None and length.isdigit() else None
        return RemoteFile(response.status_code == 200, size, response.status_code)

    def put(
        self,
        namespace: str,
        repo: str,
        branch: str,
        remote_path: str,
        data: bytes,
        *,
        mime_type: str,
        message: str,
        name: str,
        email: str,
    ) -> dict[str, Any]:
        """Upload `data` as one commit; the API's answer (with `commit`). Retried like a
        read (see `UPLOAD`)."""
        path = self._path(namespace, repo, branch, remote_path)
        filename = remote_path.rsplit("/", 1)[-1]
        form = {"message": message, "name": name, "email": email}
        response = self._retried("PUT", path, UPLOAD, files={"file": (filename, data, mime_type)}, data=form)
        return self.client._object(self.client._json(response, "PUT", path), "PUT", path)


def error_message_of(answer: Any) -> str | None:
    if isinstance(answer, dict) and isinstance(answer.get("error"), (dict, str)):
        error = answer["error"]
        return error if isinstance(error, str) else error.get("detail") or error.get("message")
    return None
