"""Migrations: a database made at the first revision upgrades to head with its data, and
the schema at head is exactly what the models describe (on both databases)."""

from __future__ import annotations

import math

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from service.core.db import Base, make_engine
from service.core.migrate import current_revision, downgrade, head_revision, upgrade
from service.jobs.spec import JobSpec
from service.storage import Database


def test_upgrade_from_first_revision_keeps_data(database_url):
    upgrade(database_url, "0001")
    engine = make_engine(database_url)
    assert current_revision(engine) == "0001"
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO jobs (task, spec, status, trials_total, trials_done, attempts, "
                "cancel_requested, owner_scope, created_at, updated_at) VALUES ('digits-mlp', "
                '\'{"task": "digits-mlp", "batch_sizes": [32]}\', \'queued\', 4, 0, 0, '
                "false, 0, :now, :now)"
            ),
            {"now": "2026-01-01 00:00:00"},
        )
        # A child row: 0004 rebuilds `jobs` on SQLite, which must not cascade into it.
        connection.execute(
            text(
                "INSERT INTO studies (job_id, batch_size, optimizer, status, trials_total, "
                "trials_done, created_at) SELECT id, 32, 'lamb', 'done', 1, 1, :now FROM jobs"
            ),
            {"now": "2026-01-01 00:00:00"},
        )
        tables = set(engine.dialect.get_table_names(connection))
    assert "trial_flatness" not in tables and "sweeps" not in tables
    engine.dispose()

    upgrade(database_url)
    db = Database(database_url)
    try:
        assert current_revision(db.engine) == head_revision()
        with db.unit_of_work(write=True) as uow:
            (job,), _ = uow.jobs.list()
            assert job.task == "digits-mlp" and job.spec == JobSpec(
                task="digits-mlp", batch_sizes=[32]
            )
            assert job.sweep_id is None
            assert [s.optimizer for s in uow.studies.for_job(job.id)] == ["lamb"]
            study = uow.studies.ensure(job.id, 64, "alto", 1)
            trial = uow.trials.record(
                study_id=study.id, job_id=job.id, number=0, status="completed"
            )
            uow.trials.record_flatness(
                trial.id,
                top_eigenvalue=math.nan,
                eigen_converged=False,
                eigen_iterations=0,
                method="test",
            )
        with db.unit_of_work() as uow:
            assert math.isnan(uow.trials.flatness(trial.id).top_eigenvalue)
    finally:
        db.dispose()


def test_models_match_the_migrations(database_url):
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_sweeps_downgrade_and_upgrade_again(database_url):
    upgrade(database_url)
    db = Database(database_url)
    try:
        with db.unit_of_work(write=True) as uow:
            sweep = uow.sweeps.create(name="s", spec={})
            job = uow.jobs.create(JobSpec(task="digits-mlp", batch_sizes=[64]), sweep_id=sweep.id)
            uow.studies.ensure(job.id, 64, "alto", 1)
    finally:
        db.dispose()
    downgrade(database_url, "0003")
    engine = make_engine(database_url)
    with engine.connect() as connection:
        assert "sweeps" not in engine.dialect.get_table_names(connection)
        assert connection.execute(text("SELECT count(*) FROM studies")).scalar() == 1
    engine.dispose()
    upgrade(database_url)
