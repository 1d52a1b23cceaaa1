from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response, status

from service.auth.dependencies import Reader, Writer
from service.core.deps import IdempotencyKey
from service.core.problems import PROBLEM_RESPONSES
from service.core.statuses import JobStatus, TrialStatus
from service.deps import DatabaseDep
from service.jobs import service
from service.jobs.repository import Job
from service.jobs.schemas import JobDetail, JobPage, job_detail
from service.jobs.spec import JobSpec
from service.trials.repository import SORTABLE
from service.trials.schemas import TrialPage

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=PROBLEM_RESPONSES)

JobId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=Job,
    responses={
        200: {
            "model": Job,
            "description": "The job an earlier request with the same "
            "Idempotency-Key and body created",
        }
    },
)
def create_job(
    spec: JobSpec,
    response: Response,
    database: DatabaseDep,
    principal: Writer,
    idempotency_key: IdempotencyKey = None,
) -> Job:
    """Submit a tuning job. It is queued until a worker claims it."""
    job, created = service.submit(database, spec, principal, idempotency_key)
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    if not created:
        response.status_code = status.HTTP_200_OK
    return job


@router.get("", response_model=JobPage)
def list_jobs(
    database: DatabaseDep,
    principal: Reader,
    status: JobStatus | None = None,
    task: Annotated[str | None, Query(max_length=100)] = None,
    sweep_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> JobPage:
    """Jobs, newest first; a token sees its own jobs unless it is an admin token."""
    with database.unit_of_work() as uow:
        items, total = uow.jobs.list(
            status=status,
            task=task,
            sweep_id=sweep_id,
            owner_token_id=principal.token_id,
            all_owners=principal.sees_everything,
            limit=limit,
            offset=offset,
        )
    return JobPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/{job_id}", response_model=JobDetail)
def get_job(job_id: JobId, database: DatabaseDep, principal: Reader) -> JobDetail:
    """A job with its progress per study."""
    with database.unit_of_work() as uow:
        job = service.visible_job(uow, job_id, principal)
        return job_detail(job, uow.studies.for_job(job_id), uow.trials.counts_for_job(job_id))


@router.post("/{job_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=Job)
def cancel_job(job_id: JobId, database: DatabaseDep, principal: Writer) -> Job:
    """Cancel a job: a queued job at once, a running one when its worker next checks in."""
    with database.unit_of_work(write=True) as uow:
        service.visible_job(uow, job_id, principal)
        return uow.jobs.request_cancel(job_id)


@router.get("/{job_id}/trials", response_model=TrialPage)
def list_trials(
    job_id: JobId,
    database: DatabaseDep,
    principal: Reader,
    status: TrialStatus | None = None,
    study_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    sort: Annotated[Literal[SORTABLE], Query()] = "number",  # type: ignore[valid-type]
    order: Literal["asc", "desc"] = "asc",
    limit: Limit = 50,
    offset: Offset = 0,
) -> TrialPage:
    """A job's trials, paginated and sortable, optionally filtered by status or study."""
    with database.unit_of_work() as uow:
        service.visible_job(uow, job_id, principal)
        items, total = uow.trials.for_job(
            job_id,
            status=status,
            study_id=study_id,
            sort=sort,
            order=order,
            limit=limit,
            offset=offset,
        )
    return TrialPage(items=items, total=total, limit=limit, offset=offset)
