"""docker/postgres-init/: run as the postgres image runs it, against the test server."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.deploy.image import ROOT, service

# The same server the storage tests use (tests/service/conftest.py).
ADMIN_URL = make_url(
    os.environ.get(
        "ALTO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
)


def test_init_script_creates_optunas_database() -> None:
    # Debian keeps psql under its versioned folder as well as (with postgresql-client) on PATH.
    found = [
        shutil.which("psql"),
        *sorted(map(str, Path("/usr/lib/postgresql").glob("*/bin/psql"))),
    ]
    psql = next((p for p in found if p), None)
    if psql is None:
        pytest.fail("psql is needed to run the postgres init script (Debian: postgresql-client)")
    (script,) = (ROOT / "docker" / "postgres-init").glob("*.sh")
    name = f"alto_optuna_{uuid.uuid4().hex[:8]}"
    env = os.environ | {
        "PATH": f"{os.path.dirname(psql)}{os.pathsep}{os.environ.get('PATH', '')}",
        # What the postgres image sets from the compose file's environment.
        "POSTGRES_USER": ADMIN_URL.username or "postgres",
        "POSTGRES_DB": ADMIN_URL.database or "postgres",
        "OPTUNA_DB": name,
        "PGHOST": ADMIN_URL.host or "127.0.0.1",
        "PGPORT": str(ADMIN_URL.port or 5432),
        "PGPASSWORD": ADMIN_URL.password or "",
    }
    assert service("postgres")["environment"].keys() >= {"POSTGRES_USER", "OPTUNA_DB"}
    engine = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        result = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        with engine.connect() as connection:
            owner = connection.execute(
                text("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = :name"),
                {"name": name},
            ).scalar_one()
        assert owner == env["POSTGRES_USER"]
    finally:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        engine.dispose()
