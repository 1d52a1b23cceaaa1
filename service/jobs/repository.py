from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import computed_field
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.core.db import utcnow
from service.core.errors import Conflict, NotFound
from service.core.types import JSONFloat, Record
from service.jobs.models import JOB_STATUSES, JobRow, StudyRow

TERMINAL = ("succeeded", "failed", "cancelled")


class Job(Record):
    id: int
    task: str
    spec: dict[str, Any]
    status: str
    error: str | None
    trials_total: int
    trials_done: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    heartbeat_at: datetime | None
    attempts: int
    abandoned: int = 0
    cancel_requested: bool
    idempotency_key: str | None
    owner_token_id: int | None
    sweep_id: int | None = None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @computed_field
    @property
    def progress(self) -> float:
        """Fraction of the job's trials that have finished (0 to 1)."""
        if self.trials_total <= 0:
            return 1.0 if self.status == "succeeded" else 0.0
        return min(1.0, self.trials_done / self.trials_total)


class Study(Record):
    id: int
    job_id: int
    batch_size: int
    optimizer: str
    status: str
    trials_total: int
    trials_done: int
    best_trial_id: int | None
    best_metric: JSONFloat | None


class LeaseLost(Conflict):
    """The worker no longer holds the job's lease (it expired and another worker took it)."""


class JobRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # --- API side ---------------------------------------------------------------
    def create(
        self,
        *,
        task: str,
        spec: dict[str, Any],
        trials_total: int,
        owner_token_id: int | None = None,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
        sweep_id: int | None = None,
    ) -> Job:
        row = JobRow(
            task=task,
            spec=spec,
            trials_total=trials_total,
            owner_token_id=owner_token_id,
            owner_scope=owner_token_id or 0,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            sweep_id=sweep_id,
        )
        try:
            with self.session.begin_nested():
                self.session.add(row)
        except IntegrityError as exc:
            raise Conflict(
                "a job with this Idempotency-Key exists",
                field="Idempotency-Key",
                value=idempotency_key,
            ) from exc
        return Job.model_validate(row)

    def by_idempotency_key(self, owner_token_id: int | None, key: str) -> tuple[Job, str] | None:
        row = self.session.scalar(
            select(JobRow).where(
                JobRow.owner_scope == (owner_token_id or 0), JobRow.idempotency_key == key
            )
        )
        return None if row is None else (Job.model_validate(row), row.request_hash or "")

    def get(self, job_id: int) -> Job | None:
        row = self.session.get(JobRow, job_id)
        return None if row is None else Job.model_validate(row)

    def list(
        self,
        *,
        status: str | None = None,
        task: str | None = None,
        sweep_id: int | None = None,
        owner_token_id: int | None = None,
        all_owners: bool = True,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[Job], int]:
        query = select(JobRow)
        if sweep_id is not None:
            query = query.where(JobRow.sweep_id == sweep_id)
        if status is not None:
            query = query.where(JobRow.status == status)
        if task is not None:
            query = query.where(JobRow.task == task)
        if not all_owners:
            query = query.where(JobRow.owner_token_id == owner_token_id)
        total = self.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = self.session.scalars(query.order_by(JobRow.id.desc()).limit(limit).offset(offset))
        return [Job.model_validate(r) for r in rows], total

    def request_cancel(self, job_id: int) -> Job:
        """Cancel a queued job now; ask a running job's worker to stop."""
        row = self.session.get(JobRow, job_id, with_for_update=True)
        if row is None:
            raise NotFound(f"no job {job_id}", field="id", value=job_id)
        if row.status in TERMINAL:
            raise Conflict(
                f"job {job_id} has already {row.status}", field="status", value=row.status
            )
        if row.status == "queued":
            row.status = "cancelled"
            row.finished_at = utcnow()
        row.cancel_requested = True
        self.session.flush()
        return Job.model_validate(row)

    def counts_by_status(self) -> dict[str, int]:
        counts = dict.fromkeys(JOB_STATUSES, 0)
        for status, n in self.session.execute(
            select(JobRow.status, func.count()).group_by(JobRow.status)
        ):
            counts[status] = n
        return counts

    # --- worker side --------------------------------------------------------------
    def claim(
        self,
        worker: str,
        lease_seconds: float,
        now: datetime | None = None,
        job_id: int | None = None,
        max_abandoned: int | None = None,
    ) -> Job | None:
        """Take the oldest queued job, or a running one whose lease expired (or only
        ``job_id``, when given).

        A running job whose lease expired was abandoned by a worker that died; once that
        has happened ``max_abandoned`` times it is failed instead of taken, so a job that
        kills its worker every time does not go round forever.

        Run inside a write unit of work: on PostgreSQL the candidate row is locked
        with FOR UPDATE SKIP LOCKED, so concurrent claimers take different jobs; on
        SQLite the transaction began IMMEDIATE, so claimers take turns.
        """
        now = now or utcnow()
        claimable = or_(
            JobRow.status == "queued",
            (JobRow.status == "running") & (JobRow.lease_expires_at < now),
        )
        if job_id is not None:
            claimable = claimable & (JobRow.id == job_id)
        while True:
            row = self.session.scalar(
                select(JobRow)
                .where(claimable)
                .order_by(JobRow.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if row is None:
                return None
            if row.cancel_requested:
                # Its worker died after a cancel request: nothing is left to stop.
                row.status, row.finished_at, row.lease_owner = "cancelled", now, None
                self.session.flush()
                continue
            reason = "its worker stopped renewing the lease"
            if row.status == "running" and self._abandon(row, max_abandoned, reason, now):
                self.session.flush()
                continue
            row.status = "running"
            row.lease_owner = worker
            row.lease_expires_at = now + timedelta(seconds=lease_seconds)
            row.heartbeat_at = now
            row.attempts += 1
            row.started_at = row.started_at or now
            self.session.flush()
            return Job.model_validate(row)

    def _owned(self, job_id: int, worker: str) -> JobRow:
        row = self.session.get(JobRow, job_id, with_for_update=True)
        if row is None:
            raise NotFound(f"no job {job_id}", field="id", value=job_id)
        if row.lease_owner != worker or row.status != "running":
            raise LeaseLost(
                f"worker {worker!r} no longer holds job {job_id} "
                f"(owner {row.lease_owner!r}, status {row.status})"
            )
        return row

    def heartbeat(self, job_id: int, worker: str, lease_seconds: float) -> Job:
        """Extend the lease; raises LeaseLost if another worker took the job."""
        row = self._owned(job_id, worker)
        now = utcnow()
        row.heartbeat_at = now
        row.lease_expires_at = now + timedelta(seconds=lease_seconds)
        self.session.flush()
        return Job.model_validate(row)

    def release(self, job_id: int, worker: str) -> Job:
        """Give the job back to the queue (a clean worker shutdown)."""
        row = self._owned(job_id, worker)
        row.status, row.lease_owner, row.lease_expires_at = "queued", None, None
        self.session.flush()
        return Job.model_validate(row)

    def abandon(self, job_id: int, worker: str, max_abandoned: int, reason: str) -> Job:
        """The job's run died without finishing it (its dispatcher saw its process die):
        queue it again at once, or fail it once abandoned ``max_abandoned`` times."""
        row = self._owned(job_id, worker)
        if not self._abandon(row, max_abandoned, reason, utcnow()):
            row.status = "queued"
        self.session.flush()
        return Job.model_validate(row)

    def _abandon(self, row: JobRow, max_abandoned: int | None, reason: str, now: datetime) -> bool:
        """Count one abandonment and drop the lease; True when that fails the job."""
        row.abandoned += 1
        row.lease_owner, row.lease_expires_at = None, None
        if max_abandoned is None or row.abandoned < max_abandoned:
            return False
        row.status, row.finished_at = "failed", now
        row.error = f"abandoned {row.abandoned} times, the last: {reason}"
        return True

    def finish(self, job_id: int, worker: str, status: str, error: str | None = None) -> Job:
        if status not in TERMINAL:
            raise ValueError(f"Invalid final status: {status!r}")
        row = self._owned(job_id, worker)
        row.status, row.error, row.finished_at = status, error, utcnow()
        row.lease_owner, row.lease_expires_at = None, None
        self.session.flush()
        return Job.model_validate(row)

    def set_progress(self, job_id: int, trials_done: int, trials_total: int | None = None) -> None:
        values: dict[str, Any] = {"trials_done": trials_done, "updated_at": utcnow()}
        if trials_total is not None:
            values["trials_total"] = trials_total
        self.session.execute(update(JobRow).where(JobRow.id == job_id).values(**values))


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
        status: str | None = None,
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
