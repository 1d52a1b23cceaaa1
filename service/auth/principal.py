"""Who is calling and what they may see: made from a request by auth.dependencies, checked by
the feature services (which workers call too, without any request)."""

from __future__ import annotations

from dataclasses import dataclass

from service.auth.repository import ApiToken


@dataclass(frozen=True)
class Principal:
    token: ApiToken | None
    sees_everything: bool

    @property
    def token_id(self) -> int | None:
        return None if self.token is None else self.token.id

    def may_see(self, owner_token_id: int | None) -> bool:
        return self.sees_everything or owner_token_id == self.token_id
