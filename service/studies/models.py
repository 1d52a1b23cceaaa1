"""Studies: one Optuna study per (job, batch size, optimizer arm)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.core.db import Base, NonFiniteFloat, UTCDateTime, utcnow
from service.core.statuses import StudyStatus, status_check


class StudyRow(Base):
    __tablename__ = "studies"
    __table_args__ = (
        UniqueConstraint("job_id", "batch_size", "optimizer"),
        CheckConstraint(status_check(StudyStatus), name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    batch_size: Mapped[int] = mapped_column(Integer)
    optimizer: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(16), default=StudyStatus.PENDING)
    trials_total: Mapped[int] = mapped_column(Integer, default=0)
    trials_done: Mapped[int] = mapped_column(Integer, default=0)
    best_trial_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    best_metric: Mapped[float | None] = mapped_column(NonFiniteFloat, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
