"""Request-scoped dependencies as Annotated aliases (the app's state holds the real objects)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from service.core.config import Settings
from service.storage import Database


# async on purpose: FastAPI runs a plain `def` dependency in the thread pool, and a
# thread hop per dependency per request costs more than these lookups themselves.
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_database(request: Request) -> Database:
    return request.app.state.database


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=200,
        description="Retrying with the same key and body returns what the first request made.",
    ),
]
