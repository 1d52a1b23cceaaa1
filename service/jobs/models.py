from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from service.core.db import Base, JSONType, UTCDateTime, utcnow
from service.core.statuses import JobStatus, status_check


class JobRow(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(status_check(JobStatus), name="status"),
        # owner_scope is the owning token's id, or 0 for anonymous loopback use, so
        # the key is unique per owner (a NULL owner would escape a unique index).
        UniqueConstraint("owner_scope", "idempotency_key"),
        Index("ix_jobs_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task: Mapped[str] = mapped_column(String(100), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    trials_total: Mapped[int] = mapped_column(Integer, default=0)
    trials_done: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Runs that ended without the job being finished or handed back: the worker or the
    # job's process died (see JobRepository.claim and .abandon).
    abandoned: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    request_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    owner_token_id: Mapped[int | None] = mapped_column(
        ForeignKey("api_tokens.id"), nullable=True, index=True
    )
    owner_scope: Mapped[int] = mapped_column(Integer, default=0)
    # SET NULL, not CASCADE: a sweep only groups jobs, and the trials and
    # recommendations a job measured must outlive the grouping.
    sweep_id: Mapped[int | None] = mapped_column(
        ForeignKey("sweeps.id", ondelete="SET NULL"), nullable=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
