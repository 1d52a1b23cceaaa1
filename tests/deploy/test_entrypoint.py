"""The image's entry commands, run outside a container.

ENTRYPOINT and HEALTHCHECK come from the Dockerfile and the roles from the compose file;
the files the image copies run from this checkout, with this venv's `alto` first on PATH.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.image import (
    ROOT,
    entry_command,
    healthcheck_argv,
    local,
    service,
    subprocess_env,
)

TIMEOUT_S = 60


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S
    )


def role(name: str) -> list[str]:
    """The command compose gives the service, through the image's entrypoint."""
    return entry_command(*service(name)["command"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = subprocess_env(tmp_path_factory.mktemp("image"), ALTO_PORT=str(free_port()))
    result = run(role("migrate"), env)
    assert result.returncode == 0, result.stderr
    return env


def test_scripts_parse() -> None:
    for script in (ROOT / "docker").rglob("*.sh"):
        result = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, f"{script}: {result.stderr}"
        assert script.read_text().startswith("#!/bin/sh\n"), script


def test_migrate_role_brings_the_schema_to_head(migrated: dict[str, str]) -> None:
    # Any other first word runs as a command: the README's `alto ...` one-offs.
    result = run(entry_command("alto", "db", "current"), migrated)
    assert result.returncode == 0, result.stderr
    current, head = (part.split(":")[1].strip() for part in result.stdout.split("  "))
    assert current == head != "None", result.stdout


def test_the_readme_token_command_passes_through(migrated: dict[str, str]) -> None:
    result = run(entry_command("alto", "token", "create", "admin", "--admin"), migrated)
    assert result.returncode == 0, result.stderr
    assert "(admin)" in result.stderr and len(result.stdout.strip()) >= 20


def healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run(local(healthcheck_argv()), env)


@pytest.fixture
def api(migrated: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    server = subprocess.Popen(
        role("api"),
        env=migrated,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield server
    finally:
        # The entrypoint execs, so this pid is `alto serve` itself.
        server.send_signal(signal.SIGTERM)
        try:
            output, _ = server.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            server.kill()
            output, _ = server.communicate()
        assert server.returncode is not None, output


def test_api_role_serves_until_the_healthcheck_passes(
    migrated: dict[str, str], api: subprocess.Popen[str]
) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while (result := healthcheck(migrated)).returncode != 0:
        if api.poll() is not None:
            pytest.fail(f"the api role exited with {api.returncode}: {api.stdout.read()}")
        assert time.monotonic() < deadline, f"never healthy: {result.stderr}"
        time.sleep(0.2)
    assert "healthy (api)" in result.stdout
    # The migrate role ran the migrations and the API did not need to: ready at once.
    url = f"http://127.0.0.1:{migrated['ALTO_PORT']}/readyz"
    with urllib.request.urlopen(url, timeout=10) as reply:
        assert json.load(reply)["status"] == "ok"


def test_healthcheck_fails_while_the_api_is_down(tmp_path: Path) -> None:
    env = subprocess_env(tmp_path, ALTO_PORT=str(free_port()))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "role").write_text("api\n")
    result = healthcheck(env)
    assert result.returncode == 1 and "unhealthy: api" in result.stderr


def test_worker_role_parses_and_has_nothing_to_probe(tmp_path: Path) -> None:
    env = subprocess_env(tmp_path)
    result = run(entry_command("worker", "--help"), env)
    assert result.returncode == 0, result.stderr
    assert "Claim queued tuning jobs" in result.stdout
    # If the dispatcher dies, the container ends with it: the health check passes.
    result = healthcheck(env)
    assert result.returncode == 0 and "healthy (worker)" in result.stdout, result.stderr


@pytest.mark.parametrize("name", ["ray-head", "ray-worker"])
def test_ray_roles_pass_options_ray_start_accepts(name: str, tmp_path: Path) -> None:
    # --help after the role's own options: click rejects an unknown option before it
    # prints help, so this checks them without starting Ray. The head's extra options
    # come from RAY_START_ARGS; its arguments go to the dispatcher it then execs.
    env = subprocess_env(tmp_path, **service(name)["environment"])
    env["RAY_START_ARGS"] = f"{env['RAY_START_ARGS']} --help"
    result = run(role(name) + ["--help"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "--head" in result.stdout  # ray start's help
    if name == "ray-head":
        assert "Claim queued tuning jobs" in result.stdout
