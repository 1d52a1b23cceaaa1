from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from service.core.db import Base, JSONType, NonFiniteFloat, UTCDateTime, utcnow


class RecommendationRow(Base):
    """One measured recommendation; the newest per (task, batch size, optimizer) is served."""

    __tablename__ = "recommendations"
    __table_args__ = (Index("ix_recommendations_lookup", "task", "optimizer", "batch_size"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task: Mapped[str] = mapped_column(String(100))
    batch_size: Mapped[int] = mapped_column(Integer)
    optimizer: Mapped[str] = mapped_column(String(50))
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType)
    metric: Mapped[float | None] = mapped_column(NonFiniteFloat, nullable=True)
    metric_std: Mapped[float | None] = mapped_column(NonFiniteFloat, nullable=True)
    baseline_optimizer: Mapped[str | None] = mapped_column(String(50), nullable=True)
    baseline_metric: Mapped[float | None] = mapped_column(NonFiniteFloat, nullable=True)
    uplift: Mapped[float | None] = mapped_column(NonFiniteFloat, nullable=True)
    n_trials: Mapped[int] = mapped_column(Integer, default=0)
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True
    )
    study_id: Mapped[int | None] = mapped_column(
        ForeignKey("studies.id", ondelete="SET NULL"), nullable=True
    )
    best_trial_id: Mapped[int | None] = mapped_column(
        ForeignKey("trials.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
