"""Idempotency-Key handling shared by every create endpoint (jobs, sweeps)."""

from __future__ import annotations

import hashlib
import json
from typing import TypeVar

from pydantic import BaseModel

from service.core.errors import Conflict

T = TypeVar("T")


def request_hash(body: BaseModel) -> str:
    """A digest of the request body, the same for the same content in any key order."""
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def replay(found: tuple[T, str] | None, digest: str, key: str) -> T | None:
    """What an earlier request with this Idempotency-Key created (None if there was none);
    a conflict if that request had another body."""
    if found is None:
        return None
    record, previous = found
    if previous != digest:
        raise Conflict(
            "this Idempotency-Key was used with a different request body",
            field="header.Idempotency-Key",
            value=key,
        )
    return record
