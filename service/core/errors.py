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


class InvalidInputs(InvalidInput):
    """Several invalid fields at once, so a client can fix a whole request in one go (a sweep
    is refused as a whole, with every error of every job it expands into)."""

    def __init__(self, causes: list[InvalidInput]) -> None:
        shown = "; ".join(f"{c.field}: {c.detail}" for c in causes[:5])
        more = f"; and {len(causes) - 5} more" if len(causes) > 5 else ""
        super().__init__(f"{len(causes)} invalid field(s): {shown}{more}")
        self.causes = causes


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
