"""Errors mapped once, at the edge, to RFC 9457 ``application/problem+json``.

Every problem names the offending field and value where there is one, so a
client can fix its request from the response alone. Nothing a client sends
should reach the generic 500 handler; it exists so that a bug still answers
with a problem document rather than a bare traceback.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.core.errors import ServiceError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class FieldError(BaseModel):
    field: str = Field(description="Where the problem is, e.g. batch_sizes[1] or query.limit.")
    message: str
    value: Any = Field(None, description="The offending value as received (may be truncated).")


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldError] = []


def _slug(title: str) -> str:
    return "urn:alto-tune:problem:" + title.lower().replace(" ", "-")


def _json_safe(value: Any, limit: int = 200) -> Any:
    """The value as JSON can carry it: non-finite floats as strings, long text cut."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + "..."
    try:
        text = json.dumps(value, allow_nan=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return json.loads(text) if len(text) <= limit else text[:limit] + "..."


def problem_response(
    request: Request | None,
    status: int,
    title: str,
    detail: str,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = Problem(
        type=_slug(title),
        title=title,
        status=status,
        detail=detail,
        instance=None if request is None else request.url.path,
        errors=errors or [],
    ).model_dump()
    body.update({k: _json_safe(v) for k, v in extra.items()})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = list(loc)
    where = ""
    if parts and parts[0] in ("body", "query", "path", "header"):
        where = parts.pop(0)
    name = ""
    for part in parts:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += ("." if name else "") + str(part)
    if where in ("query", "path", "header"):
        return f"{where}.{name}" if name else where
    return name or "body"


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    raw = exc.errors()
    if any(e.get("type") == "json_invalid" for e in raw):
        first = next(e for e in raw if e.get("type") == "json_invalid")
        reason = first.get("ctx", {}).get("error", "invalid JSON")
        return problem_response(
            request,
            400,
            "Malformed JSON",
            f"The request body is not valid JSON: {reason}",
            [FieldError(field="body", message=str(reason))],
        )
    errors = [
        FieldError(
            field=_field_name(tuple(e.get("loc", ()))),
            message=str(e.get("msg", "invalid")),
            value=_json_safe(e.get("input")),
        )
        for e in raw
    ]
    detail = "; ".join(f"{e.field}: {e.message} (got {e.value!r})" for e in errors[:5])
    return problem_response(request, 422, "Invalid input", detail, errors)


async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
    causes = getattr(exc, "causes", None) or [exc]
    errors = [
        FieldError(field=c.field, message=c.detail, value=_json_safe(c.value))
        for c in causes
        if c.field is not None
    ]
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return problem_response(
        request, exc.status, exc.title, exc.detail, errors, headers, **exc.extra
    )


def _allowed_methods(request: Request) -> str:
    """Every method the OpenAPI document lists for this path (Starlette only reports the
    methods of the first route it matched, but GET and POST /jobs are separate routes)."""
    cache = request.app.state.__dict__.setdefault("_allowed_methods", {})
    if not cache:
        for template, operations in request.app.openapi()["paths"].items():
            pattern = re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template))
            cache[re.compile(f"^{pattern}$")] = ", ".join(m.upper() for m in operations)
    for pattern, methods in cache.items():
        if pattern.match(request.url.path):
            return methods
    return ""


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    try:
        title = HTTPStatus(exc.status_code).phrase
    except ValueError:
        title = "Error"
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
    return problem_response(request, exc.status_code, title, str(exc.detail), headers=headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(request, 500, "Internal error", "An unexpected error occurred.")


def install_problem_handlers(app: FastAPI) -> None:
    # Each handler takes the class it is registered for (Starlette types them all as
    # taking any Exception, hence Any).
    handlers: dict[type[Exception], Callable[[Request, Any], Awaitable[JSONResponse]]] = {
        RequestValidationError: _validation_error,
        ServiceError: _service_error,
        StarletteHTTPException: _http_error,
        Exception: _unexpected,
    }
    for exc_class, handler in handlers.items():
        app.add_exception_handler(exc_class, handler)


class BodySizeLimit:
    """Refuse bodies over ``max_bytes`` with 413, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._reject(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _BodyTooLarge:
            await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = problem_response(
            request,
            413,
            "Request body too large",
            f"The request body exceeds the limit of {self.max_bytes} bytes.",
            [FieldError(field="body", message=f"at most {self.max_bytes} bytes")],
        )
        await response(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


#: OpenAPI response entries for the problems any route may answer with.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "description": description, "content": {PROBLEM_JSON: {}}}
    for status, description in (
        (400, "Malformed request"),
        (401, "Missing or invalid API token"),
        (403, "Token revoked or not allowed"),
        (404, "Not found"),
        (409, "Conflict with the current state"),
        (413, "Request body too large"),
        (422, "Invalid input"),
    )
}
