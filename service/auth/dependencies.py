"""Who is calling: the API token behind a request, and what it may do.

Tokens are required for writes when the service listens beyond loopback (or
``require_token`` is set), and then for reads too unless ``public_reads`` is
on. On loopback without that setting, an anonymous caller acts as the local
administrator; a token that is sent is still checked.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header
from starlette.concurrency import run_in_threadpool

from service.auth.principal import Principal
from service.auth.repository import ApiToken
from service.core.deps import SettingsDep
from service.core.errors import Forbidden, Unauthorized
from service.deps import DatabaseDep


async def _authenticate(database: DatabaseDep, authorization: str | None) -> ApiToken | None:
    if authorization is None:
        return None
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise Unauthorized(
            "Authorization must be 'Bearer <token>'",
            field="header.Authorization",
            value=scheme or authorization,
        )

    def lookup() -> ApiToken | None:
        with database.unit_of_work() as uow:
            return uow.tokens.find(credentials.strip())

    token = await run_in_threadpool(lookup)
    if token is None:
        raise Unauthorized("unknown API token", field="header.Authorization", value="Bearer ***")
    if not token.active:
        raise Forbidden(
            f"API token {token.name!r} was revoked", field="header.Authorization", value=token.name
        )
    return token


def _principal(token: ApiToken | None, anonymous_allowed: bool, needed: str) -> Principal:
    if token is not None:
        return Principal(token, sees_everything=token.admin)
    if not anonymous_allowed:
        raise Unauthorized(f"an API token is required to {needed}", field="header.Authorization")
    return Principal(None, sees_everything=True)


async def reader(
    database: DatabaseDep,
    settings: SettingsDep,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Principal:
    token = await _authenticate(database, authorization)
    anonymous_ok = not settings.tokens_required or settings.public_reads
    return _principal(token, anonymous_ok, "read")


async def writer(
    database: DatabaseDep,
    settings: SettingsDep,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Principal:
    token = await _authenticate(database, authorization)
    return _principal(token, not settings.tokens_required, "write")


Reader = Annotated[Principal, Depends(reader)]
Writer = Annotated[Principal, Depends(writer)]
