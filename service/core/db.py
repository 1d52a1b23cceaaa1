"""Database plumbing: declarative base, portable column types, engine set-up.

SQLite (the default, one machine) runs in WAL mode with a busy timeout, and
every write transaction starts with ``BEGIN IMMEDIATE`` so there is one writer
at a time and a read never has to be upgraded to a write mid-transaction (the
usual cause of "database is locked"). PostgreSQL (production) needs nothing
special here; row locks with SKIP LOCKED are used where jobs are claimed.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Engine, Float, MetaData, create_engine, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _PlainFloat(Float):
    """Float without driver-side conversion, so NonFiniteFloat's text 'NaN' reaches SQLite."""

    def bind_processor(self, dialect: Any) -> None:
        return None

    def result_processor(self, dialect: Any, coltype: Any) -> None:
        return None


class NonFiniteFloat(TypeDecorator):
    """A double that keeps NaN and +-Infinity.

    PostgreSQL stores them natively. SQLite keeps infinities but turns NaN into
    NULL, which would make a diverged trial look unmeasured, so NaN is stored
    there as the text 'NaN' (SQLite columns are dynamically typed; text sorts
    after every number).
    """

    impl = _PlainFloat(precision=53)
    cache_ok = True

    def process_bind_param(self, value: float | None, dialect: Any) -> Any:
        if value is None:
            return None
        value = float(value)
        if dialect.name == "sqlite" and math.isnan(value):
            return "NaN"
        return value

    def process_result_value(self, value: Any, dialect: Any) -> float | None:
        return None if value is None else float(value)


JSONType = JSON().with_variant(JSONB(), "postgresql")


def make_engine(url: str, *, sqlite_busy_timeout_ms: int = 10_000, **kwargs: Any) -> Engine:
    """An engine for ``url``; for SQLite, the file's directory is created."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, **kwargs)
    if parsed.database and parsed.database != ":memory:":
        from pathlib import Path

        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(sqlite_busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


__all__ = [
    "Base",
    "JSONType",
    "NonFiniteFloat",
    "UTCDateTime",
    "is_sqlite",
    "make_engine",
    "utcnow",
]
