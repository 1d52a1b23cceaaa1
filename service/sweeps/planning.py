"""A sweep expanded into validated jobs and queued: one code path for POST /api/v1/sweeps
and for `alto report run`, which queues sweeps without an HTTP request."""

from __future__ import annotations

from service.core.errors import InvalidInput, InvalidInputs
from service.jobs.service import create_job
from service.jobs.spec import JobSpec
from service.jobs.validation import spec_errors
from service.storage import UnitOfWork
from service.sweeps.repository import Sweep
from service.sweeps.schemas import SweepSpec, expand, parse_job, sweep_field


def plan(uow: UnitOfWork, spec: SweepSpec) -> list[JobSpec]:
    """Every job the sweep expands into, each checked as POST /jobs checks it; raises
    InvalidInputs with every error, each placed in the sweep (``tasks[1]``), so a sweep
    is refused as a whole or queued as a whole."""
    errors: dict[tuple[str, str], InvalidInput] = {}
    valid = []
    for job in expand(spec):
        job_spec, problems = parse_job(job)
        if job_spec is not None:
            valid.append(job_spec)
            problems = [
                InvalidInput(e.detail, field=sweep_field(e.field or "", job), value=e.value)
                for e in spec_errors(uow, job_spec)
            ]
        # Jobs share tasks, batch sizes and arms: one bad entry is reported once.
        for problem in problems:
            errors.setdefault((problem.field or "", problem.detail), problem)
    if errors:
        raise InvalidInputs(list(errors.values()))
    return valid


def queue(
    uow: UnitOfWork,
    spec: SweepSpec,
    jobs: list[JobSpec],
    *,
    owner_token_id: int | None = None,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
) -> Sweep:
    """The sweep's row and a queued job for each planned job, in the caller's unit of work."""
    sweep = uow.sweeps.create(
        name=spec.name,
        spec=spec.model_dump(mode="json"),
        owner_token_id=owner_token_id,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
    )
    for job_spec in jobs:
        create_job(uow, job_spec, owner_token_id=owner_token_id, sweep_id=sweep.id)
    return sweep
