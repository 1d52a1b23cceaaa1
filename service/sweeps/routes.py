from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from service.auth.dependencies import Reader, Writer
from service.core.deps import IdempotencyKey
from service.core.problems import PROBLEM_RESPONSES
from service.deps import DatabaseDep
from service.sweeps import service
from service.sweeps.schemas import SweepDetail, SweepPage, SweepSpec

router = APIRouter(prefix="/sweeps", tags=["sweeps"], responses=PROBLEM_RESPONSES)

SweepId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SweepDetail,
    responses={
        200: {
            "model": SweepDetail,
            "description": "The sweep an earlier request with the same "
            "Idempotency-Key and body created",
        }
    },
)
def create_sweep(
    spec: SweepSpec,
    response: Response,
    database: DatabaseDep,
    principal: Writer,
    idempotency_key: IdempotencyKey = None,
) -> SweepDetail:
    """Expand a sweep into jobs and queue them all, or none: any invalid job refuses the
    whole sweep with every error, each placed in the sweep (``tasks[1]``, ``budgets[0].trials``)."""
    sweep, created = service.submit(database, spec, principal, idempotency_key)
    response.headers["Location"] = f"/api/v1/sweeps/{sweep.id}"
    if not created:
        response.status_code = status.HTTP_200_OK
    return sweep


@router.get("", response_model=SweepPage)
def list_sweeps(
    database: DatabaseDep,
    principal: Reader,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> SweepPage:
    """Sweeps, newest first, with job totals; a token sees its own unless it is an admin."""
    with database.unit_of_work() as uow:
        sweeps, total = uow.sweeps.list(
            owner_token_id=principal.token_id,
            all_owners=principal.sees_everything,
            limit=limit,
            offset=offset,
        )
        items = service.summaries(uow, sweeps)
    return SweepPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/{sweep_id}", response_model=SweepDetail)
def get_sweep(sweep_id: SweepId, database: DatabaseDep, principal: Reader) -> SweepDetail:
    """A sweep with its jobs (status and progress) and totals by status."""
    with database.unit_of_work() as uow:
        return service.detail(uow, service.visible_sweep(uow, sweep_id, principal))


@router.post("/{sweep_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=SweepDetail)
def cancel_sweep(sweep_id: SweepId, database: DatabaseDep, principal: Writer) -> SweepDetail:
    """Cancel the sweep's unfinished jobs: queued ones at once, running ones at their
    worker's next check."""
    return service.cancel(database, sweep_id, principal)
