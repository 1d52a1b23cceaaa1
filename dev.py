#!/usr/bin/env python3
"""Set up ALTO Tune in a project-local virtual environment, then run it or test it.

    python3 dev.py start   # set up .venv, then run the main job
    python3 dev.py test    # set up .venv, then run the whole test suite (what CI runs)

Only the Python standard library is used here, so this works on a machine that
has nothing but Python and this repository. Set-up is skipped when nothing it
depends on changed since the last run (pyproject.toml, constraints.txt, this file).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
ARTIFACTS = ROOT / "artifacts"


def run(*cmd: str | Path, **kwargs) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, **kwargs)


def setup(extras: str) -> None:
    """Create .venv and install the project with ``extras`` under constraints.txt."""
    if sys.version_info < (3, 11):
        sys.exit(f"ALTO Tune needs Python >= 3.11, this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    fingerprint = hashlib.sha256(extras.encode())
    for name in ("pyproject.toml", "constraints.txt", "dev.py"):
        fingerprint.update((ROOT / name).read_bytes())
    stamp = VENV / ".alto-installed"
    if stamp.exists() and stamp.read_text() == fingerprint.hexdigest():
        return
    target = f".[{extras}]" if extras else "."
    run(
        PYTHON,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "-c",
        "constraints.txt",
        "-e",
        target,
    )
    stamp.write_text(fingerprint.hexdigest())


def start() -> None:
    """Serve the API with a tuning worker; queue a demo job on a new database."""
    setup("")
    print("ALTO Tune on http://127.0.0.1:8000 (API docs: /docs); Ctrl-C stops it", flush=True)
    server = subprocess.Popen([str(BIN / "alto"), "serve", "--demo"], cwd=ROOT)
    # Pass SIGTERM on, so the server stops its worker (Ctrl-C reaches the whole group).
    signal.signal(signal.SIGTERM, lambda *_: server.terminate())
    try:
        sys.exit(server.wait())
    except KeyboardInterrupt:
        sys.exit(server.wait())


def postgres_up(host: str = "127.0.0.1", port: int = 5432) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def ensure_postgres() -> None:
    """The storage tests need a PostgreSQL server (trust auth on 127.0.0.1); start one."""
    if os.environ.get("ALTO_TEST_POSTGRES_URL") or postgres_up():
        return
    if not shutil.which("pg_ctlcluster") and shutil.which("apt-get") and os.geteuid() == 0:
        print("PostgreSQL is not installed: installing Debian's postgresql", flush=True)
        run("apt-get", "install", "-y", "-q", "postgresql")
        # A throwaway CI machine: let local TCP connections in without a password.
        for hba in Path("/etc/postgresql").glob("*/main/pg_hba.conf"):
            hba.write_text(
                "host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n"
                "local all all trust\n" + hba.read_text()
            )
    for version in sorted(p.name for p in Path("/etc/postgresql").glob("*")):
        print(f"starting PostgreSQL {version}", flush=True)
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=False
        )
    for _ in range(60):
        if postgres_up():
            return
        time.sleep(0.5)
    sys.exit(
        "PostgreSQL is not reachable on 127.0.0.1:5432 and could not be started; "
        "set ALTO_TEST_POSTGRES_URL to a server the tests may create databases on"
    )


def ensure_chromium() -> None:
    """The dashboard tests drive Debian's Chromium (never a browser a tool downloads)."""
    if Path("/usr/bin/chromium").exists():
        return
    if shutil.which("apt-get") and os.geteuid() == 0:
        print("installing Debian's chromium for the browser tests", flush=True)
        if subprocess.run(["apt-get", "install", "-y", "-q", "chromium"]).returncode != 0:
            run("apt-get", "update", "-q")
            run("apt-get", "install", "-y", "-q", "chromium")
        return
    sys.exit("the browser tests need /usr/bin/chromium: install Debian's chromium package")


def test(pytest_args: list[str]) -> None:
    setup("test")
    ensure_postgres()
    ensure_chromium()
    run(BIN / "ruff", "check", ".")
    run(BIN / "ruff", "format", "--check", ".")
    run(BIN / "lint-imports")
    run(BIN / "mypy")
    run(PYTHON, "-m", "pytest", *pytest_args)


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in ("start", "test"):
        sys.exit(__doc__)
    try:
        if argv[0] == "start":
            start()
        else:
            test(argv[1:])
    except subprocess.CalledProcessError as exc:
        sys.exit(exc.returncode)


if __name__ == "__main__":
    main(sys.argv[1:])
