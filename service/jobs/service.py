"""Job creation: every job, whether from POST /jobs, a sweep, `alto tune`, `alto serve --demo`
or `alto report run`, is checked against the catalogue the workers published and stored
through `create_job`. Free of request plumbing, so workers may call it too."""

from __future__ import annotations

from service.auth.principal import Principal
from service.core.errors import NotFound
from service.core.idempotency import replay, request_hash
from service.jobs.repository import Job
from service.jobs.spec import JobSpec
from service.jobs.validation import validate_spec
from service.storage import Database, UnitOfWork


def create_job(
    uow: UnitOfWork,
    spec: JobSpec,
    *,
    owner_token_id: int | None = None,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
    sweep_id: int | None = None,
) -> Job:
    """Check the spec against the published catalogue (InvalidInput naming the field) and
    queue the job, in the caller's unit of work."""
    validate_spec(uow, spec)
    return uow.jobs.create(
        spec,
        owner_token_id=owner_token_id,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        sweep_id=sweep_id,
    )


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
        job = create_job(
            uow,
            spec,
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
