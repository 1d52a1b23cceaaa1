"""`alto tune`: the worker's code path without the API, ending with a table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
