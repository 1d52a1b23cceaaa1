from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.core.errors import NotFound
from service.core.statuses import TrialStatus
from service.core.types import JSONFloat, Record
from service.trials.models import TrialEpochRow, TrialFlatnessRow, TrialRow

SORTABLE = ("number", "final_metric", "best_metric", "wall_time_s", "alpha", "beta1", "lr", "id")


class TrialEpoch(Record):
    epoch: int
    metric: JSONFloat | None
    train_loss: JSONFloat | None
    wall_time_s: JSONFloat | None


class Flatness(Record):
    top_eigenvalue: JSONFloat | None
    eigen_converged: bool
    eigen_iterations: int
    drift_from_start: JSONFloat | None
    drift_over_window: JSONFloat | None
    method: str


class Trial(Record):
    id: int
    study_id: int
    job_id: int
    number: int
    params: dict[str, Any]
    alpha: JSONFloat | None
    beta1: JSONFloat | None
    lr: JSONFloat | None
    status: TrialStatus
    final_metric: JSONFloat | None
    best_metric: JSONFloat | None
    epochs_run: int
    steps: int | None = None
    final_train_loss: JSONFloat | None = None
    wall_time_s: JSONFloat | None
    seed: int | None
    node: str | None
    device: str | None
    error: str | None
    checkpoint: str | None = None
    created_at: datetime
    updated_at: datetime


class TrialDetail(Trial):
    epochs: list[TrialEpoch]
    flatness: Flatness | None


_TRIAL_FIELDS = (
    "params",
    "alpha",
    "beta1",
    "lr",
    "status",
    "final_metric",
    "best_metric",
    "epochs_run",
    "steps",
    "final_train_loss",
    "wall_time_s",
    "seed",
    "node",
    "device",
    "error",
    "checkpoint",
)


class TrialRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def record(self, *, study_id: int, job_id: int, number: int, **fields: Any) -> Trial:
        """Insert or update trial ``number`` of a study: recording twice is harmless."""
        unknown = set(fields) - set(_TRIAL_FIELDS)
        if unknown:
            raise TypeError(f"unknown trial fields: {sorted(unknown)}")
        row = self.session.scalar(
            select(TrialRow).where(TrialRow.study_id == study_id, TrialRow.number == number)
        )
        if row is None:
            row = TrialRow(study_id=study_id, job_id=job_id, number=number)
            self.session.add(row)
        for key, value in fields.items():
            setattr(row, key, value)
        self.session.flush()
        return Trial.model_validate(row)

    def record_epochs(self, trial_id: int, epochs: list[dict[str, Any]]) -> None:
        """Upsert per-epoch figures (keys: epoch, metric, train_loss, wall_time_s)."""
        for values in epochs:
            self.session.merge(TrialEpochRow(trial_id=trial_id, **values))
        self.session.flush()

    def record_flatness(self, trial_id: int, **values: Any) -> None:
        self.session.merge(TrialFlatnessRow(trial_id=trial_id, **values))
        self.session.flush()

    def get(self, trial_id: int) -> TrialDetail | None:
        row = self.session.get(TrialRow, trial_id)
        if row is None:
            return None
        epochs = self.session.scalars(
            select(TrialEpochRow)
            .where(TrialEpochRow.trial_id == trial_id)
            .order_by(TrialEpochRow.epoch)
        )
        flat = self.session.get(TrialFlatnessRow, trial_id)
        return TrialDetail.model_validate(
            {
                **Trial.model_validate(row).model_dump(),
                "epochs": [TrialEpoch.model_validate(e) for e in epochs],
                "flatness": None if flat is None else Flatness.model_validate(flat),
            }
        )

    def epochs_of(self, trial_ids: Sequence[int]) -> dict[int, list[TrialEpoch]]:
        """Per-epoch figures of several trials in one query, by trial id, in epoch order."""
        found: dict[int, list[TrialEpoch]] = {i: [] for i in trial_ids}
        if trial_ids:
            rows = self.session.scalars(
                select(TrialEpochRow)
                .where(TrialEpochRow.trial_id.in_(trial_ids))
                .order_by(TrialEpochRow.trial_id, TrialEpochRow.epoch)
            )
            for row in rows:
                found[row.trial_id].append(TrialEpoch.model_validate(row))
        return found

    def flatness(self, trial_id: int) -> Flatness | None:
        row = self.session.get(TrialFlatnessRow, trial_id)
        return None if row is None else Flatness.model_validate(row)

    def for_study(self, study_id: int) -> list[Trial]:
        rows = self.session.scalars(
            select(TrialRow).where(TrialRow.study_id == study_id).order_by(TrialRow.number)
        )
        return [Trial.model_validate(r) for r in rows]

    def for_job(
        self,
        job_id: int,
        *,
        status: TrialStatus | None = None,
        study_id: int | None = None,
        sort: str = "number",
        order: Literal["asc", "desc"] = "asc",
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[Trial], int]:
        if sort not in SORTABLE:
            raise NotFound(f"cannot sort by {sort!r}", field="sort", value=sort)
        query = select(TrialRow).where(TrialRow.job_id == job_id)
        if status is not None:
            query = query.where(TrialRow.status == status)
        if study_id is not None:
            query = query.where(TrialRow.study_id == study_id)
        total = self.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        column = getattr(TrialRow, sort)
        key = column.asc() if order == "asc" else column.desc()
        rows = self.session.scalars(
            query.order_by(key.nulls_last(), TrialRow.id).limit(limit).offset(offset)
        )
        return [Trial.model_validate(r) for r in rows], total

    def points(self, study_id: int) -> list[tuple]:
        """(id, number, status, final_metric, alpha, beta1, lr) of every trial of a study,
        without building records: a study may hold ten thousand trials."""
        rows = self.session.execute(
            select(
                TrialRow.id,
                TrialRow.number,
                TrialRow.status,
                TrialRow.final_metric,
                TrialRow.alpha,
                TrialRow.beta1,
                TrialRow.lr,
            )
            .where(TrialRow.study_id == study_id)
            .order_by(TrialRow.number)
        )
        return [tuple(r) for r in rows]

    def counts_for_job(self, job_id: int) -> dict[str, int]:
        return dict(
            self.session.execute(
                select(TrialRow.status, func.count())
                .where(TrialRow.job_id == job_id)
                .group_by(TrialRow.status)
            ).all()
        )
