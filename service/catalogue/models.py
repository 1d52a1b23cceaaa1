from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from service.core.db import Base, JSONType, NonFiniteFloat, UTCDateTime, utcnow


class TaskRow(Base):
    __tablename__ = "tasks"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    metric: Mapped[str] = mapped_column(String(50))
    direction: Mapped[str] = mapped_column(String(8))  # "max" or "min"
    max_batch_size: Mapped[int] = mapped_column(Integer)
    default_epochs: Mapped[int] = mapped_column(Integer)
    lr_low: Mapped[float] = mapped_column(NonFiniteFloat)
    lr_high: Mapped[float] = mapped_column(NonFiniteFloat)
    default_lr: Mapped[float] = mapped_column(NonFiniteFloat)
    search_defaults: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    published_by: Mapped[str] = mapped_column(String(200), default="")
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OptimizerRow(Base):
    __tablename__ = "optimizers"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    # Hyperparameters the tuner searches for this arm, e.g. ["lr", "alpha", "beta1"].
    searched: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # The paper's settings by regime: {"large_batch_from": 1024, "small": {...}, "large": {...}}
    defaults: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
