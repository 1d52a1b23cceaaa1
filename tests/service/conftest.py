"""Real databases for the storage and API tests: a SQLite file and a PostgreSQL database.

PostgreSQL is required, never skipped: the tests create a fresh database on the
server at ALTO_TEST_POSTGRES_URL (default: postgres on 127.0.0.1:5432, which
`python3 dev.py test` starts when it is down) and drop it afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from service.core.migrate import upgrade
from service.storage import Database
from tests.service.catalogue import publish
from tests.service.server import running_server

POSTGRES_ADMIN_URL = os.environ.get(
    "ALTO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    engine = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # fail loudly: these tests must not silently skip
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc}")
    finally:
        engine.dispose()
    return POSTGRES_ADMIN_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    name = f"alto_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(postgres_server).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'alto.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request) -> str:
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    upgrade(database_url)
    db = Database(database_url)
    try:
        yield db
    finally:
        db.dispose()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`alto serve` without a worker on a fresh SQLite database, with a test catalogue
    published (one per test module; a module may define its own)."""
    with running_server(tmp_path_factory.mktemp("api")) as srv:
        publish(srv.database)
        yield srv


@pytest.fixture
def http(server):
    with server.client() as client:
        yield client


CHROMIUM = "/usr/bin/chromium"
# Debian's Chromium, headless; without the networking flags it tries to reach Google.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright (never a browser Playwright downloads)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `python3 dev.py test` installs Debian's chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
