"""Request-scoped dependencies as Annotated aliases (the app's state holds the real objects);
the database's alias lives in service.deps, above the storage layer it needs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from service.core.config import Settings


# async on purpose: FastAPI runs a plain `def` dependency in the thread pool, and a
# thread hop per dependency per request costs more than these lookups themselves.
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=200,
        description="Retrying with the same key and body returns what the first request made.",
    ),
]
