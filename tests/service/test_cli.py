"""The `alto` command line: plugin commands, and no torch in the service process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.service.catalogue import publish
from tests.service.server import running_server

ALTO = Path(sys.executable).with_name("alto")


def test_help_lists_plugin_commands():
    out = subprocess.run([ALTO, "--help"], capture_output=True, text=True, check=True).stdout
    assert "demo" in out


def test_service_cli_does_not_import_torch():
    code = (
        "import sys, service.cli\n"
        "service.cli.main.list_commands(None)\n"
        "bad = [m for m in ('torch', 'ray', 'workers', 'alto_core') if m in sys.modules]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _alto(*args, env=None, check=True):
    return subprocess.run(
        [ALTO, *map(str, args)], capture_output=True, text=True, env=env, check=check, timeout=120
    )


def test_serve_refuses_to_listen_beyond_loopback_without_a_token(tmp_path):
    env = {**os.environ, "ALTO_DATA_DIR": str(tmp_path)}
    result = _alto("serve", "--host", "0.0.0.0", "--port", "1", env=env, check=False)
    assert result.returncode == 2
    assert "no API token exists" in result.stderr


def test_token_commands_store_only_a_hash(tmp_path):
    env = {**os.environ, "ALTO_DATA_DIR": str(tmp_path)}
    _alto("db", "upgrade", env=env)
    created = _alto("token", "create", "ci", "--admin", env=env)
    token = created.stdout.strip()
    assert token.startswith("alto_") and "shown only this once" in created.stderr
    assert token.encode() not in (tmp_path / "alto.db").read_bytes()
    listed = _alto("token", "list", env=env).stdout
    assert "ci" in listed and "active" in listed and token not in listed
    assert _alto("token", "create", "ci", env=env, check=False).returncode == 1
    _alto("token", "revoke", "ci", env=env)
    assert "revoked" in _alto("token", "list", env=env).stdout
    assert _alto("token", "revoke", "nobody", env=env, check=False).returncode == 1


def test_jobs_commands_are_a_client_of_the_api(tmp_path):
    with running_server(tmp_path) as server:
        publish(server.database)
        env = {**os.environ, "ALTO_API_URL": server.url}
        out = _alto(
            "jobs",
            "submit",
            "--task",
            "digits-mlp",
            "--batch-sizes",
            "64,256",
            "--trials",
            "2",
            "--epochs",
            "1",
            env=env,
        ).stdout
        assert out.startswith("job ") and "8 trials" in out
        job_id = int(out.split()[1])
        assert f"{job_id:>6} queued" in _alto("jobs", "list", env=env).stdout
        assert "digits-mlp queued (0/8 trials)" in _alto("jobs", "show", job_id, env=env).stdout
        assert "cancelled" in _alto("jobs", "cancel", job_id, env=env).stdout
        bad = _alto("jobs", "submit", "--task", "nope", "--batch-sizes", "8", env=env, check=False)
        assert bad.returncode == 1 and "unknown task 'nope'" in bad.stderr
        assert "task:" in bad.stderr
    down = _alto("jobs", "list", env={**os.environ, "ALTO_API_URL": server.url}, check=False)
    assert down.returncode == 1 and "cannot reach" in down.stderr
