"""The HTTP surface: Oxen's routes on Starlette, plus the sandbox's own `/_sandbox` controls.

Every API route goes through `_endpoint`, which counts the request, authenticates it and
applies faults (config rules, then the `X-Sandbox-Fault` header) before the handler runs.
Handlers are small: parse, validate, touch the state, answer with the documented shape.

Choices where the fact sheet is silent (section 9) are made here and in `errors.py`:
results download from `/api/files/{id}.mp4` on the sandbox itself without a bearer token (they
stand in for presigned URLs); sync generations are not queue generations (not listed,
no SSE event); cancelling a finished job succeeds and changes nothing.

The repository file routes (fact sheet 7) are in the "repository files" section below;
`repos.py` and `inputs.py` say how a job's input URLs reach them. docs/sandbox.md lists
every route and every choice.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import uuid
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from klingspec.sandbox import errors, repos
from klingspec.sandbox.catalog import MODELS
from klingspec.sandbox.config import FaultRule, SandboxConfig
from klingspec.sandbox.events import EventStream
from klingspec.sandbox.faults import HEADER, Fault, FaultSyntaxError, parse
from klingspec.sandbox.mp4 import VideoSpec, iter_mp4, mp4_bytes
from klingspec.sandbox.queue import ACTIVE, STATUSES, Job, JobStatus, now
from klingspec.sandbox.state import SandboxState
from klingspec.sandbox.streams import RAW_SEND, Dropped, FileStream
from klingspec.sandbox.validation import find_model, num_generations, num_generations_error


@dataclass(frozen=True)
class Call:
    """What a handler knows about its request besides the request itself."""

    state: SandboxState
    owner: str
    fault: Fault


Handler = Callable[[Request, Call], Awaitable[Any]]


class SandboxApp:
    """The ASGI app: Starlette inside, with uvicorn's raw `send` kept for connection drops.

    `state` is exposed so the process that runs the sandbox can inspect or stop it.
    """

    def __init__(self, config: SandboxConfig) -> None:
        self.state = SandboxState(config)
        self._app = _starlette(self.state)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope[RAW_SEND] = send
        await self._app(scope, receive, send)


def create_app(config: SandboxConfig | None = None) -> SandboxApp:
    """A new sandbox ASGI app with its own empty state.

    Args:
        config: Behaviour of the emulator; `SandboxConfig()` when omitted.
    Returns:
        The ASGI app, to run with uvicorn (see `serve` and `running_sandbox`).
    """
    return SandboxApp(config or SandboxConfig())


def _starlette(state: SandboxState) -> Starlette:
    def api(method: str, path: str, handler: Handler, auth: bool = True) -> Route:
        return Route(path, _endpoint(state, f"{method} {path}", handler, auth), methods=[method])

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        state.broker.close()
        state.cancel_tasks()

    routes = [
        api("POST", "/api/ai/videos/generate", generate),
        api("POST", "/api/ai/queue", enqueue),
        api("GET", "/api/ai/queue", list_queue),
        api("GET", "/api/ai/queue/{generation_id}", get_generation),
        api("DELETE", "/api/ai/queue/{generation_id}", cancel_generation),
        api("GET", "/api/events", events),
        api("GET", "/api/ai/models", list_models),
        api("GET", "/api/ai/models/search", search_models),
        api("GET", "/api/ai/models/{model_id}", get_model),
        api("GET", "/api/files/{file_id}.mp4", download, auth=False),
        api("PUT", REPO_FILE, upload_file),
        # HEAD before GET: a GET route also answers HEAD, which would count it as a GET.
        api("HEAD", REPO_FILE, read_file, auth=False),
        api("GET", REPO_FILE, read_file, auth=False),
    ]
    # The controls answer both under the API base (what `running_sandbox` yields) and at
    # the root, so either `<base>/_sandbox/stats` or `http://host:port/_sandbox/stats` works.
    for prefix in ("/api/_sandbox", "/_sandbox"):
        routes += [
            Route(f"{prefix}/stats", _control(state, _stats), methods=["GET"]),
            Route(f"{prefix}/reset", _control(state, _reset), methods=["POST"]),
            Route(f"{prefix}/faults", _control(state, _add_fault), methods=["POST"]),
            Route(f"{prefix}/catalog", _control(state, _catalog), methods=["POST"]),
        ]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: _http_error})


def _endpoint(state: SandboxState, route: str, handler: Handler, auth: bool) -> Callable[[Request], Awaitable[Any]]:
    async def endpoint(request: Request) -> Any:
        state.stats.count(route)
        fault = state.faults.take(request.method, request.url.path)
        if HEADER in request.headers:
            try:
                fault = fault.merge(parse(request.headers[HEADER]))
            except FaultSyntaxError as exc:
                return errors.invalid_params(str(exc))
        if fault.latency:
            await asyncio.sleep(fault.latency)
        owner = _bearer(request, state.config) if auth else ""
        if owner is None:
            return errors.unauthenticated()
        if fault.status is not None:
            return _fault_response(fault)
        if fault.drop and route not in _DROP_AFTER_CREATE:
            state.stats.dropped()
            return Dropped()
        return await handler(request, Call(state, owner, fault))

    return endpoint


REPO_FILE = "/api/repos/{namespace}/{repo}/file/{branch}/{path:path}"
_DROP_AFTER_CREATE = {"POST /api/ai/queue", "POST /api/ai/videos/generate", f"PUT {REPO_FILE}"}


def _bearer(request: Request, config: SandboxConfig) -> str | None:
    """The caller's token (their identity here), or None when they are not authenticated."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    if config.api_key is not None and token != config.api_key:
        return None
    return token


def _fault_response(fault: Fault) -> Response:
    status = fault.status or 500
    headers = {}
    retry_after = fault.retry_after if fault.retry_after is not None else (1 if status == 429 else None)
    if retry_after is not None:
        headers["Retry-After"] = str(int(-(-retry_after // 1)))  # whole seconds, rounded up
    if status == 429:  # the chat docs' wording, the only 429 Oxen documents
        return JSONResponse({"error": {"message": "Rate limit exceeded"}}, 429, headers)
    kind = "service_unavailable" if status == 503 else "unknown_error"
    body = errors.format1(kind, f"Injected fault: HTTP {status}")
    return JSONResponse(body, status, headers)


async def _json_object(request: Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


_NOT_AN_OBJECT = "Request body must be a JSON object"  # OWN WORDING


def _file_url(request: Request, file_id: str) -> str:
    """Where a result downloads from: the sandbox itself, under the API base like Oxen's
    `https://hub.oxen.ai/api/repos/.../video.mp4` result URLs."""
    return f"{request.base_url}api/files/{file_id}.mp4"


# --- generation -------------------------------------------------------------------------


async def _body_and_model(request: Request, state: SandboxState) -> tuple[dict[str, Any] | None, Any, Response | None]:
    """The JSON body and its model, or the documented error answer (both submit routes
    check these first, in this order)."""
    body = await _json_object(request)
    if body is None:
        return None, None, errors.invalid_params(_NOT_AN_OBJECT)
    spec, name = find_model(body)
    if spec is None or spec.id in state.retired:  # OWN: a retired id is refused like an unknown one
        return body, None, errors.model_not_found(name)
    return body, spec, None


async def generate(request: Request, call: Call) -> Any:
    """Sync: validate now, block for the whole generation, answer with the video."""
    body, spec, refused = await _body_and_model(request, call.state)
    if refused is not None:
        return refused
    assert body is not None  # refused otherwise
    error, fetched = await call.state.checked(body, spec, call.fault.forced_error(0))
    if error is not None:
        return errors.invalid_params(error)
    if call.fault.drop:
        call.state.stats.dropped()
        return Dropped()
    config = call.state.config
    await asyncio.sleep(config.queue_seconds + call.state.processing_time(body, spec))
    video = await call.state.result(body, spec, fetched)
    if body.get("response_format") == "b64_json":
        data = await asyncio.to_thread(mp4_bytes, video)
        item = {"b64_json": base64.b64encode(data).decode("ascii")}
    else:
        file_id = str(uuid.uuid4())
        call.state.files.add(file_id, video)
        item = {"url": _file_url(request, file_id)}
    return JSONResponse({"created": now(), "model": spec.id, "videos": [item]})


async def enqueue(request: Request, call: Call) -> Any:
    """Queue: only the model and `num_generations` are checked now (era C)."""
    body, spec, refused = await _body_and_model(request, call.state)
    if refused is not None:
        return refused
    assert body is not None  # refused otherwise
    error = num_generations_error(body)
    if error is not None:
        return errors.invalid_params(error)
    namespace = body.get("target_namespace") or call.state.config.username
    jobs = [
        call.state.jobs.add(Job.new(call.owner, str(namespace), spec.id, body, forced_error=call.fault.forced_error(i)))
        for i in range(num_generations(body))
    ]
    for job in jobs:
        call.state.start(job, _file_url(request, job.generation_id))
    if call.fault.drop:  # the generations exist; the client just never hears of them
        call.state.stats.dropped()
        return Dropped()
    return JSONResponse({"generations": [{"generation_id": job.generation_id, "status": job.status} for job in jobs]})


async def list_queue(request: Request, call: Call) -> Any:
    """One namespace per listing (fact sheet 4.3 and 9): the key holder's (`config.username`)
    unless `namespace` names another, so a job enqueued with `target_namespace` = an
    organisation is listed only when that namespace is asked for. Active generations by
    default; `status` selects that one status, terminal ones included.

    Where the fact sheet is silent the stricter reading is taken: an empty `namespace` or
    an unknown `status` is refused (400) rather than read as "any".
    """
    query = request.query_params
    status = query.get("status")
    if status is not None and status not in STATUSES:
        return errors.invalid_params(f"status must be one of {', '.join(STATUSES)}")  # OWN
    namespace = query.get("namespace", call.state.config.username)
    if not namespace:
        return errors.invalid_params("namespace must not be empty")  # OWN WORDING
    media_type = query.get("media_type")
    if media_type not in (None, "video"):  # the sandbox only makes videos
        return JSONResponse({"count": 0, "generations": []})
    # `repo` and `folder` are accepted and ignored: the sandbox stores no repositories.
    jobs = call.state.jobs.select(
        call.owner, (status,) if status else ACTIVE, model_name=query.get("model"), namespace=namespace
    )
    return JSONResponse({"count": len(jobs), "generations": [job.public() for job in jobs]})


async def get_generation(request: Request, call: Call) -> Any:
    job = call.state.jobs.get(call.owner, request.path_params["generation_id"])
    return errors.not_found() if job is None else JSONResponse(job.public())


async def cancel_generation(request: Request, call: Call) -> Any:
    """Cancel an active job; a terminal one stays as it is ("has no effect"), still 200."""
    gid = request.path_params["generation_id"]
    if call.state.jobs.get(call.owner, gid) is None:
        return errors.not_found()
    # No SSE event for a cancel. completed_at records when it was cancelled (a choice).
    call.state.jobs.transition(gid, ACTIVE, status=JobStatus.CANCELLED, completed_at=now())
    return JSONResponse({"status": "success", "generation_id": gid})


async def events(request: Request, call: Call) -> Any:
    if call.fault.endless_line:
        return StreamingResponse(_endless_line(), media_type="text/event-stream")
    subscription = call.state.broker.subscribe(call.owner)
    return EventStream(call.state.broker, subscription, call.state.config.keepalive_seconds)


# --- models and files -------------------------------------------------------------------


async def list_models(request: Request, call: Call) -> Any:
    state = call.state
    data = [state.model_object(spec) for spec in MODELS.values() if spec.id not in state.retired]
    return JSONResponse({"object": "list", "data": data})


async def search_models(request: Request, call: Call) -> Any:
    state, term = call.state, request.query_params.get("search", "").lower()
    data = [
        state.model_object(spec)
        for spec in MODELS.values()
        if spec.id not in state.retired and (term in spec.id.lower() or term in spec.display_name.lower())
    ]
    return JSONResponse({"object": "list", "data": data})


async def get_model(request: Request, call: Call) -> Any:
    name = request.path_params["model_id"]
    if name in call.state.retired:
        # OWN: a retired id is a resource that is gone, answered as format 1 `resource_not_found`
        # (an id never served keeps the documented `Model not found`).
        return errors.not_found()
    spec = MODELS.get(name)
    if spec is None:
        return errors.model_not_found(name)
    return JSONResponse(call.state.model_object(spec))


async def download(request: Request, call: Call) -> Any:
    config = call.state.config
    video = call.state.files.get(request.path_params["file_id"])
    if video is None:
        return errors.not_found()
    if video.picture is not None:  # rendered once, off the event loop; kept by footage.render
        await asyncio.to_thread(lambda: video.size)
    fault = call.fault
    if fault.not_mp4:
        return Response("<html><body>Access denied</body></html>", media_type="text/html")
    if fault.endless:
        return StreamingResponse(_endless(video, config.chunk_size), media_type="video/mp4")
    if fault.gzip_bomb is not None:
        bomb = _gzip_bomb(video, fault.gzip_bomb * 1_000_000)
        return StreamingResponse(bomb, media_type="video/mp4", headers={"Content-Encoding": "gzip"})
    rate = (fault.slow or config.slow_bytes_per_second) if fault.slow is not None else None
    return FileStream.video(video, config.chunk_size, rate=rate, truncate=fault.truncate)


async def _endless(video: VideoSpec, chunk_size: int) -> AsyncIterator[bytes]:
    """The `endless` fault: the video's first chunk, then zeros that never end."""
    yield next(iter_mp4(video, chunk_size))
    zeros = bytes(chunk_size)
    while True:
        yield zeros
        await asyncio.sleep(0)  # let the server notice a client that went away


async def _gzip_bomb(video: VideoSpec, size: int) -> AsyncIterator[bytes]:
    """The `gzip-bomb` fault: a gzip stream of a few kilobytes per 100 MB it inflates to:
    the video's first chunk, then zeros up to `size` bytes."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    head = next(iter_mp4(video, 1 << 16))
    yield packer.compress(head) + packer.flush(zlib.Z_SYNC_FLUSH)
    block, left = bytes(1 << 20), max(0, size - len(head))
    while left > 0:
        piece = block[: min(left, len(block))]
        left -= len(piece)
        yield packer.compress(piece) + packer.flush(zlib.Z_SYNC_FLUSH)
        await asyncio.sleep(0)
    yield packer.flush()


async def _endless_line() -> AsyncIterator[bytes]:
    """The `endless-line` fault: an event-stream line that never ends."""
    yield b"event: media_generation_completed\ndata: "
    filler = b"x" * (1 << 16)
    while True:
        yield filler
        await asyncio.sleep(0)


# --- repository files (fact sheet 7) ----------------------------------------------------

_FORM_FIELDS = ("file", "message", "name", "email")
# OWN WORDING for every refusal of an upload's form (Oxen documents none).
_NOT_A_FORM = "Expected a multipart/form-data body with the fields file, message, name and email"


class _TooLarge(Exception):
    """The upload's body went past `SandboxConfig.upload_max_bytes`."""


async def upload_file(request: Request, call: Call) -> Any:
    """`PUT /api/repos/{namespace}/{repo}/file/{branch}/{path}`: store one file as a commit.

    The multipart form needs all of `file`, `message`, `name` and `email` (the fact sheet's
    upload example sends the four; Oxen's reference calls the last three optional: the
    stricter reading, OWN). Only `file` may be a file part, one at most (a directory upload
    with `files[]` is not emulated). The answer is Oxen's reference shape: `status`,
    `status_message` and the `commit` object (`repos.Commit`).
    """
    config = call.state.config
    where = repos.location(**request.path_params)
    if where is None:
        return errors.invalid_params(f"Invalid file path: {request.path_params['path']!r}")  # OWN WORDING
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > config.upload_max_bytes:
        return errors.payload_too_large(config.upload_max_bytes)
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        return errors.invalid_params(_NOT_A_FORM)
    rate = (call.fault.slow or config.slow_bytes_per_second) if call.fault.slow is not None else None
    parser = MultiPartParser(
        request.headers, _capped_body(request, config.upload_max_bytes, rate), max_files=1, max_fields=16
    )
    try:
        form = await parser.parse()
    except _TooLarge:
        return errors.payload_too_large(config.upload_max_bytes)
    except MultiPartException as exc:
        return errors.invalid_params(f"{_NOT_A_FORM}: {exc.message}")
    try:
        missing = [name for name in _FORM_FIELDS if not form.get(name)]
        if missing:
            return errors.invalid_params(f"Missing form field(s): {', '.join(missing)}")  # OWN WORDING
        upload, fields = form["file"], {name: form[name] for name in _FORM_FIELDS[1:]}
        if not isinstance(upload, UploadFile) or not all(isinstance(v, str) for v in fields.values()):
            return errors.invalid_params("Form field 'file' must be a file; message, name and email text")  # OWN
        data = await upload.read()
    finally:
        await form.close()
    commit = call.state.repos.put(
        where, data, message=str(fields["message"]), author=str(fields["name"]), email=str(fields["email"])
    )
    if call.fault.drop:  # the file is stored; the client just never hears of it
        call.state.stats.dropped()
        return Dropped()
    # `resource_found` is what Oxen's reference example of this route answers.
    return JSONResponse({"status": "success", "status_message": "resource_found", "commit": commit.public()})


async def _capped_body(request: Request, limit: int, rate: int | None) -> AsyncGenerator[bytes, None]:
    """The request body, refused past `limit` bytes; read at `rate` bytes/s when throttled
    (the `slow` fault: the upload takes as long as it would on a slow link)."""
    loop = asyncio.get_running_loop()
    started, received = loop.time(), 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise _TooLarge
            if rate:
                await asyncio.sleep(max(0.0, started + received / rate - loop.time()))
            yield chunk
    except ClientDisconnect:
        return


async def read_file(request: Request, call: Call) -> Any:
    """`GET`/`HEAD` of a repository file: its bytes (GET) or only its headers (HEAD).

    Public repositories are read without a bearer token: the API fetches inputs this way,
    and they "must be publicly downloadable" (fact sheet 7). A repository in
    `SandboxConfig.private_repos` needs a valid token; without one the answer is 401
    whether or not the file exists (OWN: what Oxen answers is UNKNOWN). Content-Type comes
    from the extension, else from the first bytes (`repos.content_type`). The download
    faults (`slow`, `truncate`) apply to GET.
    """
    config = call.state.config
    where = repos.location(**request.path_params)
    if where is not None and where.repository in config.private_repos and _bearer(request, config) is None:
        return errors.unauthenticated()
    stored = None if where is None else call.state.repos.get(where)
    if stored is None:
        return errors.not_found()
    headers = {"content-type": stored.content_type, "content-length": str(len(stored.data))}
    if request.method == "HEAD":
        return Response(status_code=200, headers=headers)
    fault, size, step = call.fault, len(stored.data), config.chunk_size
    rate = (fault.slow or config.slow_bytes_per_second) if fault.slow is not None else None
    view = memoryview(stored.data)
    chunks = (bytes(view[i : i + step]) for i in range(0, size, step))
    return FileStream(stored.content_type, size, chunks, step, rate=rate, truncate=fault.truncate)


# --- sandbox controls (no auth: they are not part of the emulated API) ------------------


def _control(
    state: SandboxState, handler: Callable[[SandboxState, Request], Awaitable[Response]]
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await handler(state, request)

    return endpoint


async def _stats(state: SandboxState, request: Request) -> Response:
    """Requests per route, total, dropped connections, and jobs per status."""
    return JSONResponse(state.stats.snapshot() | {"jobs": state.jobs.counts()})


async def _reset(state: SandboxState, request: Request) -> Response:
    state.reset()
    return JSONResponse({"status": "success"})


async def _add_fault(state: SandboxState, request: Request) -> Response:
    """Add a fault rule at run time: `{"fault": "...", "path": "*", "method": "*", "times": 1}`."""
    body = await _json_object(request)
    try:
        if body is None or not isinstance(body.get("fault"), str):
            raise FaultSyntaxError('expected {"fault": "<spec>", "path", "method", "times"}')
        state.faults.add(
            FaultRule(
                fault=body["fault"], path=body.get("path", "*"), method=body.get("method", "*"), times=body.get("times")
            )
        )
    except FaultSyntaxError as exc:
        return errors.invalid_params(str(exc))
    return JSONResponse({"status": "success"})


async def _catalog(state: SandboxState, request: Request) -> Response:
    """Change the catalogue at run time: `{"retire": [ids], "restore": [ids], "price": {id: usd}}`.

    A `price` of null drops the override. Unknown ids are refused (400) so a typo shows.
    Answers the retired ids and the price overrides now in force.
    """
    body = await _json_object(request)
    retire, restore, price = (
        (body or {}).get("retire", []),
        (body or {}).get("restore", []),
        (body or {}).get("price", {}),
    )
    names = (
        [*retire, *restore, *price]
        if isinstance(retire, list) and isinstance(restore, list) and isinstance(price, dict)
        else None
    )
    if body is None or names is None:
        return errors.invalid_params('expected {"retire": [ids], "restore": [ids], "price": {"id": usd}}')
    unknown = sorted({str(n) for n in names if n not in MODELS})
    if unknown:
        return errors.invalid_params("Unknown model id(s): " + ", ".join(unknown))
    bad = [
        n
        for n, v in price.items()
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0)
    ]
    if bad:
        return errors.invalid_params("A price must be a number >= 0 or null: " + ", ".join(bad))
    state.retired |= set(retire)
    state.retired -= set(restore)
    for name, value in price.items():
        if value is None:
            state.prices.pop(name, None)
        else:
            state.prices[name] = float(value)
    return JSONResponse({"status": "success", "retired": sorted(state.retired), "prices": state.prices})


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and methods answer in Oxen's format 1, not Starlette's plain text."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        return errors.not_found()
    return JSONResponse(errors.format1("invalid_params", str(getattr(exc, "detail", ""))), status_code=status)
