"""Every status a job, study or trial can be in: one enum each, shared by the tables' check
constraints, the storage records, the API's query parameters and the workers."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StudyStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"


class TrialStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    PRUNED = "pruned"
    DIVERGED = "diverged"
    FAILED = "failed"


JOB_TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
# A trial that ended with a result, good or bad (a failed trial has none).
TRIAL_FINISHED = frozenset({TrialStatus.COMPLETED, TrialStatus.PRUNED, TrialStatus.DIVERGED})


def status_check(statuses: type[StrEnum]) -> str:
    """The SQL of a status column's check constraint, as the migrations wrote it."""
    return f"status IN {tuple(s.value for s in statuses)}"
