"""Job submission: a spec is checked against the catalogue the workers published."""

from __future__ import annotations

from service.auth.dependencies import Principal
from service.core.errors import NotFound
from service.core.idempotency import replay, request_hash
from service.jobs.repository import Job
from service.jobs.schemas import JobSpec
from service.jobs.validation import validate_spec
from service.storage import Database, UnitOfWork


def submit(
    database: Database, spec: JobSpec, principal: Principal, idempotency_key: str | None
) -> tuple[Job, bool]:
    """Create the job (or find the one this Idempotency-Key made); returns (job, created)."""
    digest = request_hash(spec)
    with database.unit_of_work(write=True) as uow:
        if idempotency_key is not None:
            found = uow.jobs.by_idempotency_key(principal.token_id, idempotency_key)
            job = replay(found, digest, idempotency_key)
            if job is not None:
                return job, False
        validate_spec(uow, spec)
        job = uow.jobs.create(
            task=spec.task,
            spec=spec.model_dump(mode="json"),
            trials_total=spec.trials_total(),
            owner_token_id=principal.token_id,
            idempotency_key=idempotency_key,
            request_hash=digest,
        )
        return job, True


def visible_job(uow: UnitOfWork, job_id: int, principal: Principal) -> Job:
    job = uow.jobs.get(job_id)
    if job is None or not principal.may_see(job.owner_token_id):
        # A job of another token is reported as absent, not as forbidden.
        raise NotFound(f"no job {job_id}", field="path.job_id", value=job_id)
    return job
