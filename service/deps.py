"""The request dependency that needs the storage layer (core's aliases need nothing above
core; see service.core.deps)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.storage import Database


# async for the reason given in service.core.deps.
async def get_database(request: Request) -> Database:
    return request.app.state.database


DatabaseDep = Annotated[Database, Depends(get_database)]
