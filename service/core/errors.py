"""Domain errors raised by storage and services; the API edge maps each to RFC 9457 problems."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    status = 500
    title = "Internal error"

    def __init__(
        self, detail: str, *, field: str | None = None, value: Any = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.value = value
        self.extra = extra


class InvalidInput(ServiceError):
    """A request is well-formed but names something invalid (unknown task, bad range...)."""

    status = 422
    title = "Invalid input"


class NotFound(ServiceError):
    status = 404
    title = "Not found"


class Conflict(ServiceError):
    status = 409
    title = "Conflict"


class Unauthorized(ServiceError):
    status = 401
    title = "Unauthorized"


class Forbidden(ServiceError):
    status = 403
    title = "Forbidden"
