"""Run `alto serve` as a real process for API tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from service.core.migrate import upgrade
from service.storage import Database

ALTO = Path(sys.executable).with_name("alto")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    database: Database
    env: dict[str, str]
    process: subprocess.Popen

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"server at {url} did not come up in {timeout} s")


@contextmanager
def running_server(
    data_dir: Path, database_url: str | None = None, *, worker: bool = False, **settings: str
) -> Iterator[Server]:
    """Migrate, then start `alto serve` on a free loopback port (with a tuning worker when
    ``worker``); stop it afterwards."""
    port = free_port()
    env = {
        **os.environ,
        "ALTO_DATA_DIR": str(data_dir),
        "ALTO_PORT": str(port),
        "ALTO_HOST": "127.0.0.1",
        **{f"ALTO_{k.upper()}": v for k, v in settings.items()},
    }
    if database_url:
        env["ALTO_DATABASE_URL"] = database_url
    url = database_url or f"sqlite:///{(data_dir / 'alto.db').resolve()}"
    upgrade(url)
    database = Database(url)
    log = open(data_dir / "server.log", "w")  # noqa: SIM115  (closed below)
    args = [ALTO, "serve", "--no-migrate", "--worker" if worker else "--no-worker"]
    process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_up(f"http://127.0.0.1:{port}", process)
        yield Server(f"http://127.0.0.1:{port}", database, env, process)
    finally:
        process.terminate()
        process.wait(timeout=90)
        log.close()
        database.dispose()
