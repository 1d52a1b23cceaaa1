from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service.core.errors import NotFound
from service.core.statuses import StudyStatus, TrialStatus
from service.core.types import JSONFloat, Record
from service.studies.models import StudyRow
from service.trials.models import TrialRow


class Study(Record):
    id: int
    job_id: int
    batch_size: int
    optimizer: str
    status: StudyStatus
    trials_total: int
    trials_done: int
    best_trial_id: int | None
    best_metric: JSONFloat | None


class StudyRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def ensure(self, job_id: int, batch_size: int, optimizer: str, trials_total: int) -> Study:
        row = self.session.scalar(
            select(StudyRow).where(
                StudyRow.job_id == job_id,
                StudyRow.batch_size == batch_size,
                StudyRow.optimizer == optimizer,
            )
        )
        if row is None:
            row = StudyRow(
                job_id=job_id, batch_size=batch_size, optimizer=optimizer, trials_total=trials_total
            )
            self.session.add(row)
            self.session.flush()
        return Study.model_validate(row)

    def get(self, study_id: int) -> Study | None:
        row = self.session.get(StudyRow, study_id)
        return None if row is None else Study.model_validate(row)

    def for_job(self, job_id: int) -> list[Study]:
        rows = self.session.scalars(
            select(StudyRow)
            .where(StudyRow.job_id == job_id)
            .order_by(StudyRow.batch_size, StudyRow.optimizer)
        )
        return [Study.model_validate(r) for r in rows]

    def update(
        self,
        study_id: int,
        *,
        status: StudyStatus | None = None,
        trials_done: int | None = None,
        best_trial_id: int | None = None,
        best_metric: float | None = None,
    ) -> Study:
        row = self.session.get(StudyRow, study_id)
        if row is None:
            raise NotFound(f"no study {study_id}", field="id", value=study_id)
        if status is not None:
            row.status = status
        if trials_done is not None:
            row.trials_done = trials_done
        if best_trial_id is not None:
            row.best_trial_id, row.best_metric = best_trial_id, best_metric
        self.session.flush()
        return Study.model_validate(row)

    def refresh_progress(self, study_id: int) -> None:
        """Count the study's ended trials (any status but running) as done."""
        done = (
            select(func.count())
            .select_from(TrialRow)
            .where(TrialRow.study_id == study_id, TrialRow.status != TrialStatus.RUNNING)
            .scalar_subquery()
        )
        self.session.execute(
            update(StudyRow).where(StudyRow.id == study_id).values(trials_done=done)
        )
