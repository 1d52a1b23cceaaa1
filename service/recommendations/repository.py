from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.core.types import JSONFloat, Record
from service.recommendations.models import RecommendationRow


class Recommendation(Record):
    id: int
    task: str
    batch_size: int
    optimizer: str
    settings: dict[str, Any]
    metric: JSONFloat | None
    metric_std: JSONFloat | None
    baseline_optimizer: str | None
    baseline_metric: JSONFloat | None
    uplift: JSONFloat | None
    n_trials: int
    job_id: int | None
    study_id: int | None
    best_trial_id: int | None
    created_at: datetime


class RecommendationRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, **values: Any) -> Recommendation:
        row = RecommendationRow(**values)
        self.session.add(row)
        self.session.flush()
        return Recommendation.model_validate(row)

    def latest(self, task: str, optimizer: str | None = None) -> list[Recommendation]:
        """The newest recommendation per (batch size, optimizer) of a task, by batch size."""
        query = select(RecommendationRow).where(RecommendationRow.task == task)
        if optimizer is not None:
            query = query.where(RecommendationRow.optimizer == optimizer)
        newest = (
            select(
                RecommendationRow.batch_size,
                RecommendationRow.optimizer,
                func.max(RecommendationRow.id).label("id"),
            )
            .where(RecommendationRow.task == task)
            .group_by(RecommendationRow.batch_size, RecommendationRow.optimizer)
            .subquery()
        )
        rows = self.session.scalars(
            query.join(newest, newest.c.id == RecommendationRow.id).order_by(
                RecommendationRow.batch_size, RecommendationRow.optimizer
            )
        )
        return [Recommendation.model_validate(r) for r in rows]

    def for_job(self, job_id: int) -> list[Recommendation]:
        rows = self.session.scalars(
            select(RecommendationRow)
            .where(RecommendationRow.job_id == job_id)
            .order_by(RecommendationRow.batch_size, RecommendationRow.optimizer)
        )
        return [Recommendation.model_validate(r) for r in rows]
