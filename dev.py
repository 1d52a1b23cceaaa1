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
import subprocess
import sys
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
    setup("")
    ARTIFACTS.mkdir(exist_ok=True)
    run(BIN / "alto", "demo", "--out", ARTIFACTS / "landscapes.png")


def test(pytest_args: list[str]) -> None:
    setup("test")
    run(BIN / "ruff", "check", ".")
    run(BIN / "ruff", "format", "--check", ".")
    run(BIN / "lint-imports")
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
