"""The storage layer: a database handle and the unit of work that owns every transaction.

Repositories flush but never commit; the unit of work commits when its block ends
normally and rolls back when it raises. Workers use the service through this module,
the records and specs below it, and the services that create jobs above it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.auth.repository import TokenRepository
from service.catalogue.repository import CatalogueRepository
from service.core.config import Settings
from service.core.db import make_engine
from service.jobs.repository import JobRepository
from service.recommendations.repository import RecommendationRepository
from service.studies.repository import StudyRepository
from service.sweeps.repository import SweepRepository
from service.trials.repository import TrialRepository


class UnitOfWork:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.jobs = JobRepository(session)
        self.studies = StudyRepository(session)
        self.trials = TrialRepository(session)
        self.recommendations = RecommendationRepository(session)
        self.catalogue = CatalogueRepository(session)
        self.tokens = TokenRepository(session)
        self.sweeps = SweepRepository(session)


class Database:
    """One engine and two session factories: reads, and writes (exclusive on SQLite)."""

    def __init__(self, url: str, *, sqlite_busy_timeout_ms: int = 10_000) -> None:
        self.url = url
        self.engine: Engine = make_engine(url, sqlite_busy_timeout_ms=sqlite_busy_timeout_ms)
        self._reads = sessionmaker(self.engine, expire_on_commit=False)
        self._writes = sessionmaker(
            self.engine.execution_options(sqlite_immediate=True), expire_on_commit=False
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(settings.url, sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms)

    @contextmanager
    def unit_of_work(self, *, write: bool = False) -> Iterator[UnitOfWork]:
        session = (self._writes if write else self._reads)()
        try:
            yield UnitOfWork(session)
            if write:
                session.commit()
            else:
                session.rollback()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
