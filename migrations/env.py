"""Alembic environment: the schema lives only in these migrations, never in create_all."""

from __future__ import annotations

from alembic import context

# Every table's model, named here so that Base.metadata holds the whole schema.
from service.auth.models import TokenRow
from service.catalogue.models import OptimizerRow, TaskRow
from service.core.db import Base, make_engine
from service.jobs.models import JobRow
from service.recommendations.models import RecommendationRow
from service.studies.models import StudyRow
from service.sweeps.models import SweepRow
from service.trials.models import TrialEpochRow, TrialFlatnessRow, TrialRow

MODELS = (
    TokenRow,
    TaskRow,
    OptimizerRow,
    SweepRow,
    JobRow,
    StudyRow,
    TrialRow,
    TrialEpochRow,
    TrialFlatnessRow,
    RecommendationRow,
)

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite needs table rebuilds for most ALTERs
        compare_type=True,
    )
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # A batch rebuild copies a table, DROPs it and renames the copy; with foreign keys
        # on, that DROP cascades into the children's rows (dropping `jobs` would empty
        # `studies` and `trials`). SQLite's own procedure for rebuilds: keys off, outside
        # any transaction (the pragma is a no-op inside one), and a check before commit.
        _sqlite_pragma(connection, "PRAGMA foreign_keys=OFF")
    try:
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")
    finally:
        if sqlite:
            _sqlite_pragma(connection, "PRAGMA foreign_keys=ON")


def _sqlite_pragma(connection, pragma: str) -> None:
    # On the DBAPI connection: through SQLAlchemy it would first emit BEGIN.
    connection.connection.driver_connection.execute(pragma)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
