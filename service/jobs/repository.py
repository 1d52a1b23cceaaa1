from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import computed_field
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.core.db import utcnow
from service.core.errors import Conflict, NotFound
from service.core.statuses import JOB_TERMINAL, JobStatus, TrialStatus
from service.core.types import Record
from service.jobs.models import JobRow
from service.jobs.spec import JobSpec
from service.trials.models import TrialRow


class Job(Record):
    id: int
    task: str
    spec: JobSpec
    status: JobStatus
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

    @computed_field  # type: ignore[prop-decorator]  # pydantic's advice for mypy
    @property
    def progress(self) -> float:
        """Fraction of the job's trials that have finished (0 to 1)."""
        if self.trials_total <= 0:
            return 1.0 if self.status == JobStatus.SUCCEEDED else 0.0
        return min(1.0, self.trials_done / self.trials_total)


class LeaseLost(Conflict):
    """The worker no longer holds the job's lease (it expired and another worker took it)."""


class JobRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # --- API side ---------------------------------------------------------------
    def create(
        self,
        spec: JobSpec,
        *,
        owner_token_id: int | None = None,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
        sweep_id: int | None = None,
    ) -> Job:
        """Store a job as given: service.jobs.service.create_job checks it first."""
        row = JobRow(
            task=spec.task,
            spec=spec.model_dump(mode="json"),
            trials_total=spec.trials_total(),
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
        status: JobStatus | None = None,
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
        if row.status in JOB_TERMINAL:
            raise Conflict(
                f"job {job_id} has already {row.status}", field="status", value=row.status
            )
        if row.status == JobStatus.QUEUED:
            row.status = JobStatus.CANCELLED
            row.finished_at = utcnow()
        row.cancel_requested = True
        self.session.flush()
        return Job.model_validate(row)

    def counts_by_status(self) -> dict[str, int]:
        counts = {status.value: 0 for status in JobStatus}
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
            JobRow.status == JobStatus.QUEUED,
            (JobRow.status == JobStatus.RUNNING) & (JobRow.lease_expires_at < now),
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
                row.status, row.finished_at, row.lease_owner = JobStatus.CANCELLED, now, None
                self.session.flush()
                continue
            reason = "its worker stopped renewing the lease"
            if row.status == JobStatus.RUNNING and self._abandon(row, max_abandoned, reason, now):
                self.session.flush()
                continue
            row.status = JobStatus.RUNNING
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
        if row.lease_owner != worker or row.status != JobStatus.RUNNING:
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
        row.status, row.lease_owner, row.lease_expires_at = JobStatus.QUEUED, None, None
        self.session.flush()
        return Job.model_validate(row)

    def abandon(self, job_id: int, worker: str, max_abandoned: int, reason: str) -> Job:
        """The job's run died without finishing it (its dispatcher saw its process die):
        queue it again at once, or fail it once abandoned ``max_abandoned`` times."""
        row = self._owned(job_id, worker)
        if not self._abandon(row, max_abandoned, reason, utcnow()):
            row.status = JobStatus.QUEUED
        self.session.flush()
        return Job.model_validate(row)

    def _abandon(self, row: JobRow, max_abandoned: int | None, reason: str, now: datetime) -> bool:
        """Count one abandonment and drop the lease; True when that fails the job."""
        row.abandoned += 1
        row.lease_owner, row.lease_expires_at = None, None
        if max_abandoned is None or row.abandoned < max_abandoned:
            return False
        row.status, row.finished_at = JobStatus.FAILED, now
        row.error = f"abandoned {row.abandoned} times, the last: {reason}"
        return True

    def finish(self, job_id: int, worker: str, status: JobStatus, error: str | None = None) -> Job:
        if status not in JOB_TERMINAL:
            raise ValueError(f"Invalid final status: {status!r}")
        row = self._owned(job_id, worker)
        row.status, row.error, row.finished_at = status, error, utcnow()
        row.lease_owner, row.lease_expires_at = None, None
        self.session.flush()
        return Job.model_validate(row)

    def refresh_progress(self, job_id: int, *, more_trials: int = 0) -> None:
        """Count the job's ended trials (any status but running) as done; ``more_trials``
        adds to its total (an interrupted trial is counted, and run again as a new one)."""
        done = (
            select(func.count())
            .select_from(TrialRow)
            .where(TrialRow.job_id == job_id, TrialRow.status != TrialStatus.RUNNING)
            .scalar_subquery()
        )
        self.session.execute(
            update(JobRow)
            .where(JobRow.id == job_id)
            .values(
                trials_done=done,
                trials_total=JobRow.trials_total + more_trials,
                updated_at=utcnow(),
            )
        )
