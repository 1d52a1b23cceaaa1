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

from service.core.db import Base, JSONType, NonFiniteFloat, UTCDateTime, utcnow
from service.core.statuses import TrialStatus, status_check


class TrialRow(Base):
    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("study_id", "number"),
        CheckConstraint(status_check(TrialStatus), name="status"),
        Index("ix_trials_job_status", "job_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    # Denormalised for listing a job's trials without a join.
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    alpha: Mapped[float | None] = mapped_column(NonFiniteFloat, nullable=True)
    beta1: Mapped[float | None] = mapped_column(NonFiniteFloat, nullable=True)
    lr: Mapped[float | None] = mapped_column(NonFiniteFloat, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=TrialStatus.RUNNING)
    final_metric: Mapped[float | None] = mapped_column(NonFiniteFloat, nullable=True)
    best_metric: Mapped[float | None] = mapped_column(NonFiniteFloat, nullable=True)
    epochs_run: Mapped[int] = mapped_column(Integer, default=0)
    # Optimizer steps taken and the training loss at the end (added in revision 0006;
    # NULL for trials recorded before it).
    steps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    final_train_loss: Mapped[float | None] = mapped_column(NonFiniteFloat, nullable=True)
    wall_time_s: Mapped[float | None] = mapped_column(NonFiniteFloat, nullable=True)
    seed: Mapped[int | None] = mapped_column(Integer, nullable=True)
    node: Mapped[str | None] = mapped_column(String(200), nullable=True)
    device: Mapped[str | None] = mapped_column(String(100), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Where the trial's last checkpoint is (added in revision 0003).
    checkpoint: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class TrialEpochRow(Base):
    __tablename__ = "trial_epochs"

    trial_id: Mapped[int] = mapped_column(
        ForeignKey("trials.id", ondelete="CASCADE"), primary_key=True
    )
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    metric: Mapped[float | None] = mapped_column(NonFiniteFloat, nullable=True)
    train_loss: Mapped[float | None] = mapped_column(NonFiniteFloat, nullable=True)
    wall_time_s: Mapped[float | None] = mapped_column(NonFiniteFloat, nullable=True)


class TrialFlatnessRow(Base):
    """Flatness evidence, measured for the best trial of each study (added in revision 0002)."""

    __tablename__ = "trial_flatness"

    trial_id: Mapped[int] = mapped_column(
        ForeignKey("trials.id", ondelete="CASCADE"), primary_key=True
    )
    top_eigenvalue: Mapped[float | None] = mapped_column(NonFiniteFloat, nullable=True)
    eigen_converged: Mapped[bool] = mapped_column(Boolean, default=False)
    eigen_iterations: Mapped[int] = mapped_column(Integer, default=0)
    drift_from_start: Mapped[float | None] = mapped_column(NonFiniteFloat, nullable=True)
    drift_over_window: Mapped[float | None] = mapped_column(NonFiniteFloat, nullable=True)
    method: Mapped[str] = mapped_column(Text, default="")
    measured_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
