"""`alto tune`: the worker's code path without the API, ending with a table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from service.core.config import Settings
from service.storage import Database
from workers.cli import DEMO_SPEC

ALTO = Path(sys.executable).with_name("alto")


def test_tune_runs_a_job_and_prints_the_table(tmp_path):
    env = {**os.environ, "ALTO_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [
            ALTO,
            "tune",
            "--task",
            "digits-mlp",
            "--batch-sizes",
            "64",
            "--trials",
            "2",
            "--epochs",
            "1",
            "--optimizers",
            "alto,lamb",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert "job 1 succeeded" in result.stdout
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["batch", "optimizer"])
    rows = [line.split() for line in lines[header + 1 :] if line.strip()]
    assert [r[:2] for r in rows] == [["64", "alto"], ["64", "lamb"]]
    assert "trial" in result.stderr  # the progress bar


def test_tune_rejects_bad_input(tmp_path):
    env = {**os.environ, "ALTO_DATA_DIR": str(tmp_path)}
    unknown = subprocess.run(
        [ALTO, "tune", "--task", "mnist", "--batch-sizes", "64"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert unknown.returncode == 2 and "unknown task 'mnist'" in unknown.stderr
    too_big = subprocess.run(
        [ALTO, "tune", "--task", "digits-mlp", "--batch-sizes", "4096"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert too_big.returncode == 2 and "maximum 1024" in too_big.stderr


def test_tune_refuses_an_unknown_optimizer_before_starting_ray(tmp_path):
    """The catalogue check every way of creating a job applies, here before Ray starts:
    nothing of a Ray session may appear in RAY_TMPDIR."""
    ray_dir = tmp_path / "ray"
    env = {**os.environ, "ALTO_DATA_DIR": str(tmp_path), "RAY_TMPDIR": str(ray_dir)}
    result = subprocess.run(
        [ALTO, "tune", "--task", "digits-mlp", "--batch-sizes", "32", "--optimizers", "altoo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "unknown optimizer 'altoo'" in result.stderr
    assert "alto, " in result.stderr and "lamb" in result.stderr  # the known ones
    assert "arms[0].optimizer" in result.stderr
    assert not ray_dir.exists()


def test_the_demo_job_is_created_through_the_catalogue_check_once(tmp_path):
    """`alto serve --demo` has its worker queue the demo job (`alto worker --queue-demo`):
    created as every job is, and only on an empty database."""
    env = {**os.environ, "ALTO_DATA_DIR": str(tmp_path)}
    subprocess.run([ALTO, "db", "upgrade"], env=env, check=True, capture_output=True)
    command = [ALTO, "worker", "--queue-demo", "--max-jobs", "0"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "queued demo job 1: digits-mlp, batch sizes [32, 512], 24 trials" in first.stdout
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "queued demo job" not in again.stdout
    database = Database.from_settings(Settings(data_dir=tmp_path))
    try:
        with database.unit_of_work() as uow:
            jobs, total = uow.jobs.list()
    finally:
        database.dispose()
    assert total == 1 and jobs[0].status == "queued" and jobs[0].spec == DEMO_SPEC
