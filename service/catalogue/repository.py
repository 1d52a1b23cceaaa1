from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.catalogue.models import OptimizerRow, TaskRow
from service.core.db import utcnow
from service.core.types import JSONFloat, Record


class TaskInfo(Record):
    name: str
    description: str = ""
    metric: str
    direction: str  # "max" or "min"
    max_batch_size: int
    default_epochs: int
    lr_low: JSONFloat
    lr_high: JSONFloat
    default_lr: JSONFloat
    search_defaults: dict[str, Any] = {}
    published_by: str = ""
    published_at: datetime | None = None


class OptimizerInfo(Record):
    name: str
    description: str = ""
    searched: list[str]
    defaults: dict[str, Any] = {}


class CatalogueRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def publish_tasks(self, tasks: list[TaskInfo], publisher: str) -> None:
        now = utcnow()
        rows = [
            {
                **t.model_dump(exclude={"published_by", "published_at"}),
                "published_by": publisher,
                "published_at": now,
            }
            for t in tasks
        ]
        self._upsert(TaskRow, rows)

    def publish_optimizers(self, optimizers: list[OptimizerInfo]) -> None:
        now = utcnow()
        self._upsert(OptimizerRow, [{**o.model_dump(), "published_at": now} for o in optimizers])

    def _upsert(self, model: type[TaskRow] | type[OptimizerRow], rows: list[dict]) -> None:
        """Insert or replace rows keyed by name in one statement. Workers that start
        together publish the same catalogue at once; a select-then-insert (``merge``) lets
        both insert, and the second fails on the primary key."""
        if not rows:
            return
        dialect = self.session.get_bind().dialect.name
        statement: postgresql.Insert | sqlite.Insert
        if dialect == "postgresql":
            statement = postgresql.insert(model).values(rows)
        elif dialect == "sqlite":
            statement = sqlite.insert(model).values(rows)
        else:  # no portable upsert: one writer at a time is the database's to ensure
            for row in rows:
                self.session.merge(model(**row))
            self.session.flush()
            return
        upsert = statement.on_conflict_do_update(
            index_elements=["name"],
            set_={column: statement.excluded[column] for column in rows[0] if column != "name"},
        )
        self.session.execute(upsert)

    def tasks(self) -> list[TaskInfo]:
        rows = self.session.scalars(select(TaskRow).order_by(TaskRow.name))
        return [TaskInfo.model_validate(r) for r in rows]

    def task(self, name: str) -> TaskInfo | None:
        row = self.session.get(TaskRow, name)
        return None if row is None else TaskInfo.model_validate(row)

    def optimizers(self) -> list[OptimizerInfo]:
        rows = self.session.scalars(select(OptimizerRow).order_by(OptimizerRow.name))
        return [OptimizerInfo.model_validate(r) for r in rows]

    def optimizer(self, name: str) -> OptimizerInfo | None:
        row = self.session.get(OptimizerRow, name)
        return None if row is None else OptimizerInfo.model_validate(row)
