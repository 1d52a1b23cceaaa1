from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.auth.models import TokenRow
from service.core.db import utcnow
from service.core.errors import Conflict, NotFound
from service.core.types import Record

TOKEN_PREFIX = "alto_"


class ApiToken(Record):
    id: int
    name: str
    prefix: str
    admin: bool
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def create(self, name: str, *, admin: bool = False) -> tuple[str, ApiToken]:
        """Make a token; the plain text is returned once and only its hash is stored."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = TokenRow(name=name, token_hash=hash_token(token), prefix=token[:12], admin=admin)
        try:
            with self.session.begin_nested():
                self.session.add(row)
        except IntegrityError as exc:
            raise Conflict(f"a token named {name!r} exists", field="name", value=name) from exc
        return token, ApiToken.model_validate(row)

    def list(self) -> list[ApiToken]:
        rows = self.session.scalars(select(TokenRow).order_by(TokenRow.id))
        return [ApiToken.model_validate(r) for r in rows]

    def revoke(self, name: str) -> ApiToken:
        row = self.session.scalar(select(TokenRow).where(TokenRow.name == name))
        if row is None:
            raise NotFound(f"no token named {name!r}", field="name", value=name)
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            self.session.flush()
        return ApiToken.model_validate(row)

    def find(self, token: str) -> ApiToken | None:
        row = self.session.scalar(select(TokenRow).where(TokenRow.token_hash == hash_token(token)))
        return None if row is None else ApiToken.model_validate(row)

    def any_active(self) -> bool:
        return (
            self.session.scalar(select(TokenRow.id).where(TokenRow.revoked_at.is_(None)).limit(1))
            is not None
        )
