"""Sweep submission: every expanded job is validated before anything is written, and the
sweep and all its jobs are created in one unit of work, so a sweep is never half-submitted."""

from __future__ import annotations

from service.auth.principal import Principal
from service.core.errors import Conflict, NotFound
from service.core.idempotency import replay, request_hash
from service.core.statuses import JOB_TERMINAL
from service.storage import Database, UnitOfWork
from service.sweeps.planning import plan, queue
from service.sweeps.repository import Sweep
from service.sweeps.schemas import (
    SweepDetail,
    SweepSpec,
    SweepSummary,
)


def submit(
    database: Database, spec: SweepSpec, principal: Principal, idempotency_key: str | None
) -> tuple[SweepDetail, bool]:
    """Create the sweep and its jobs (or find the sweep this Idempotency-Key made)."""
    digest = request_hash(spec)
    with database.unit_of_work(write=True) as uow:
        if idempotency_key is not None:
            found = uow.sweeps.by_idempotency_key(principal.token_id, idempotency_key)
            sweep = replay(found, digest, idempotency_key)
            if sweep is not None:
                return detail(uow, sweep), False
        sweep = queue(
            uow,
            spec,
            plan(uow, spec),
            owner_token_id=principal.token_id,
            idempotency_key=idempotency_key,
            request_hash=digest,
        )
        return detail(uow, sweep), True


def visible_sweep(uow: UnitOfWork, sweep_id: int, principal: Principal) -> Sweep:
    sweep = uow.sweeps.get(sweep_id)
    if sweep is None or not principal.may_see(sweep.owner_token_id):
        # Another token's sweep is reported as absent, as for jobs.
        raise NotFound(f"no sweep {sweep_id}", field="path.sweep_id", value=sweep_id)
    return sweep


def detail(uow: UnitOfWork, sweep: Sweep) -> SweepDetail:
    totals = uow.sweeps.totals([sweep.id])[sweep.id]
    return SweepDetail(**sweep.model_dump(), totals=totals, jobs=uow.sweeps.jobs(sweep.id))


def summaries(uow: UnitOfWork, sweeps: list[Sweep]) -> list[SweepSummary]:
    totals = uow.sweeps.totals([s.id for s in sweeps])
    return [SweepSummary(**s.model_dump(), totals=totals[s.id]) for s in sweeps]


def cancel(database: Database, sweep_id: int, principal: Principal) -> SweepDetail:
    """Cancel every job of the sweep that has not finished."""
    with database.unit_of_work(write=True) as uow:
        sweep = visible_sweep(uow, sweep_id, principal)
        open_jobs = [j for j in uow.sweeps.jobs(sweep_id) if j.status not in JOB_TERMINAL]
        if not open_jobs:
            raise Conflict(
                f"sweep {sweep_id} has no queued or running jobs left",
                field="path.sweep_id",
                value=sweep_id,
            )
        for job in open_jobs:
            uow.jobs.request_cancel(job.id)
        return detail(uow, sweep)
