from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

from pydantic import computed_field
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.core.errors import Conflict
from service.core.statuses import JobStatus
from service.core.types import Record
from service.jobs.models import JobRow
from service.jobs.repository import Job
from service.sweeps.models import SweepRow


class Sweep(Record):
    id: int
    name: str
    spec: dict[str, Any]
    idempotency_key: str | None
    owner_token_id: int | None
    created_at: datetime


class SweepTotals(Record):
    """A sweep's jobs counted by status, and its trials over all of them."""

    jobs: int
    by_status: dict[str, int]
    trials_done: int
    trials_total: int

    @computed_field  # type: ignore[prop-decorator]  # pydantic's advice for mypy
    @property
    def progress(self) -> float:
        """Fraction of the sweep's trials that have finished (0 to 1)."""
        return 0.0 if self.trials_total <= 0 else min(1.0, self.trials_done / self.trials_total)


class SweepRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def create(
        self,
        *,
        name: str,
        spec: dict[str, Any],
        owner_token_id: int | None = None,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
    ) -> Sweep:
        row = SweepRow(
            name=name,
            spec=spec,
            owner_token_id=owner_token_id,
            owner_scope=owner_token_id or 0,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
        )
        try:
            with self.session.begin_nested():
                self.session.add(row)
        except IntegrityError as exc:
            raise Conflict(
                "a sweep with this Idempotency-Key exists",
                field="header.Idempotency-Key",
                value=idempotency_key,
            ) from exc
        return Sweep.model_validate(row)

    def by_idempotency_key(self, owner_token_id: int | None, key: str) -> tuple[Sweep, str] | None:
        row = self.session.scalar(
            select(SweepRow).where(
                SweepRow.owner_scope == (owner_token_id or 0), SweepRow.idempotency_key == key
            )
        )
        return None if row is None else (Sweep.model_validate(row), row.request_hash or "")

    def get(self, sweep_id: int) -> Sweep | None:
        row = self.session.get(SweepRow, sweep_id)
        return None if row is None else Sweep.model_validate(row)

    def list(
        self,
        *,
        owner_token_id: int | None = None,
        all_owners: bool = True,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[Sweep], int]:
        query = select(SweepRow)
        if not all_owners:
            query = query.where(SweepRow.owner_token_id == owner_token_id)
        total = self.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = self.session.scalars(query.order_by(SweepRow.id.desc()).limit(limit).offset(offset))
        return [Sweep.model_validate(r) for r in rows], total

    # builtins.list: inside the class, `list` is the method above.
    def jobs(self, sweep_id: int) -> builtins.list[Job]:
        """A sweep's jobs in the order they were expanded (a sweep is capped in size)."""
        rows = self.session.scalars(
            select(JobRow).where(JobRow.sweep_id == sweep_id).order_by(JobRow.id)
        )
        return [Job.model_validate(r) for r in rows]

    def totals(self, sweep_ids: builtins.list[int]) -> dict[int, SweepTotals]:
        """Totals of several sweeps in one grouped query (a page of the sweep list)."""
        acc: dict[int, dict[str, Any]] = {
            i: {"jobs": 0, "by_status": {s.value: 0 for s in JobStatus}, "done": 0, "total": 0}
            for i in sweep_ids
        }
        if sweep_ids:
            rows = self.session.execute(
                select(
                    JobRow.sweep_id,
                    JobRow.status,
                    func.count(),
                    func.sum(JobRow.trials_done),
                    func.sum(JobRow.trials_total),
                )
                .where(JobRow.sweep_id.in_(sweep_ids))
                .group_by(JobRow.sweep_id, JobRow.status)
            )
            for sweep_id, status, n, done, total in rows:
                assert sweep_id is not None  # the query keeps only these sweeps' jobs
                a = acc[sweep_id]
                a["jobs"] += n
                a["by_status"][status] = n
                a["done"] += int(done or 0)
                a["total"] += int(total or 0)
        return {
            i: SweepTotals(
                jobs=a["jobs"],
                by_status=a["by_status"],
                trials_done=a["done"],
                trials_total=a["total"],
            )
            for i, a in acc.items()
        }
