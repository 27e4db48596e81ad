"""Error bodies: the two formats Oxen documents, built in one place (fact sheet 3.1).

Format 1 (`error.type/title/detail` + `status` + `status_message`) carries auth, parameter
and not-found errors; format 2 (`error.message`) carries `Model not found`, exactly as the
documented example shows. Status codes the docs leave UNKNOWN are chosen here, once.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

# Titles: `invalid_params` and `resource_not_found` are documented; the others are
# OWN WORDING (the 401 body is INFERRED in the fact sheet).
_TITLES = {
    "invalid_params": "Invalid parameters supplied, please check your request and try again.",
    "resource_not_found": "The requested resource could not be found",
    "unauthenticated": "You must be authenticated to access this resource.",
    "rate_limited": "Rate limit exceeded",
    "unknown_error": "An unknown error occurred.",
    "service_unavailable": "The service is temporarily unavailable.",
    "payload_too_large": "The request body is too large.",
}


def format1(kind: str, detail: str | None = None) -> dict[str, Any]:
    """A format-1 body; `detail` is left out when there is none (as in the 404 example)."""
    error: dict[str, Any] = {"type": kind, "title": _TITLES[kind]}
    if detail is not None:
        error["detail"] = detail
    return {"error": error, "status": "error", "status_message": kind}


def unauthenticated() -> JSONResponse:
    return JSONResponse(format1("unauthenticated"), status_code=401)


def invalid_params(detail: str) -> JSONResponse:
    # 400: the one format-1 parameter error Oxen has shown came back as 400 (fact sheet 3.1).
    return JSONResponse(format1("invalid_params", detail), status_code=400)


def payload_too_large(limit: int) -> JSONResponse:
    # 413 and its wording are OWN: Oxen documents no upload size limit (fact sheet 7).
    return JSONResponse(format1("payload_too_large", f"Uploads are limited to {limit} bytes"), status_code=413)


def not_found() -> JSONResponse:
    return JSONResponse(format1("resource_not_found"), status_code=404)


def model_not_found(name: str) -> JSONResponse:
    # 404 everywhere: documented for /ai/models/:id, UNKNOWN (so chosen) for generate/queue.
    return JSONResponse({"error": {"message": f"Model not found: {name}"}}, status_code=404)
