"""Cluster batch tuning: a real two-node Ray cluster on loopback, PostgreSQL, two dispatchers
that each run two jobs at once, and a sweep of several small jobs.

Every job must succeed, trials must have run on both nodes, and no trial may be lost or
duplicated.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.service.conftest import postgres_server, postgres_url  # noqa: F401  (fixtures)
from tests.service.server import free_port, running_server
from tests.workers.test_engine import FINISHED, _processes_using, finished, wait_for

BIN = Path(sys.executable).parent
SWEEP = """\
name: cluster-test
tasks: [digits-mlp]
batch_sizes: [32, 64]
optimizers: [alto, lamb]
budgets:
  - {trials: 3, epochs: 1}
  - {trials: 2, epochs: 2}
"""


def _ray(*args: str, env: dict[str, str]) -> None:
    subprocess.run(
        [BIN / "ray", *args], env=env, check=True, stdout=subprocess.DEVNULL, timeout=180
    )


def _stop(processes: list[int], grace: float = 20.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in processes:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in processes):
            time.sleep(0.2)


@pytest.fixture
def ray_cluster():
    """`ray start --head --num-cpus 1` and a second node joining it, both on loopback.

    Each node gets its own temporary directory, so the cluster is stopped by ending
    exactly its processes (`ray stop` would end every Ray on the machine)."""
    # Short paths: Ray's Unix sockets live under the temporary directory.
    head_dir = tempfile.mkdtemp(prefix="rh", dir="/tmp")
    node_dir = tempfile.mkdtemp(prefix="rn", dir="/tmp")
    port = free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    address = f"127.0.0.1:{port}"
    try:
        _ray(
            "start",
            "--head",
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=1",
            "--num-gpus=0",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={head_dir}",
            env=env,
        )
        _ray(
            "start",
            f"--address={address}",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=1",
            "--num-gpus=0",
            f"--temp-dir={node_dir}",
            env=env,
        )
        yield address
    finally:
        _stop(_processes_using(head_dir) + _processes_using(node_dir))


def _submit_sweep(tmp_path, server) -> list[dict]:
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(SWEEP)
    submitted = subprocess.run(
        [BIN / "alto", "sweep", "submit", sweep_file],
        env={**server.env, "ALTO_API_URL": server.url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert submitted.returncode == 0, submitted.stderr
    with server.client() as http:
        jobs = http.get("/api/v1/jobs", params={"limit": 100}).json()["items"]
    assert len(jobs) == 2  # one job per budget, each with both batch sizes and arms
    assert len({job["sweep_id"] for job in jobs}) == 1
    return jobs


def test_two_dispatchers_tune_a_sweep_on_a_two_node_cluster(
    tmp_path,
    postgres_url,  # noqa: F811
    ray_cluster,
):
    with running_server(tmp_path, postgres_url) as server:
        env = {**server.env, "ALTO_RAY_STORAGE": str(tmp_path / "ray_results")}
        dispatchers = [
            subprocess.Popen(
                [
                    BIN / "alto",
                    "worker",
                    f"--ray-address={ray_cluster}",
                    "--concurrent-jobs=2",
                    f"--worker-id=dispatcher-{i}",
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=open(tmp_path / f"dispatcher-{i}.log", "w"),  # noqa: SIM115
                text=True,
            )
            for i in range(2)
        ]
        try:
            with server.client() as http:
                wait_for(lambda: http.get("/api/v1/tasks").json(), 120, "the catalogue")
            jobs = _submit_sweep(tmp_path, server)
            with server.client() as http:
                for job in jobs:
                    finished(http, job["id"], timeout=900)
        finally:
            for dispatcher in dispatchers:
                dispatcher.terminate()
            outputs = [d.communicate(timeout=120)[0] for d in dispatchers]
        assert [d.returncode for d in dispatchers] == [0, 0], outputs
        ran = [int(out.split()[2]) for out in outputs]  # "worker ran N job(s)"
        assert sum(ran) == len(jobs)  # the queue was shared: no job ran twice

        with server.client() as http:
            nodes = Counter()
            for job in jobs:
                job = http.get(f"/api/v1/jobs/{job['id']}").json()
                assert job["status"] == "succeeded", job
                per_study = job["spec"]["trials_per_study"]
                page = http.get(f"/api/v1/jobs/{job['id']}/trials", params={"limit": 500})
                trials = page.json()["items"]
                by_study = Counter(t["study_id"] for t in trials)
                # 2 batch sizes x 2 arms, each with exactly its budget: none lost, none twice.
                assert sorted(by_study.values()) == [per_study] * 4
                for study_id in by_study:
                    numbers = [t["number"] for t in trials if t["study_id"] == study_id]
                    assert sorted(numbers) == list(range(per_study))
                assert {t["status"] for t in trials} <= set(FINISHED)
                nodes.update(t["node"] for t in trials)
        # Two Ray nodes of one CPU each and jobs running side by side: trials ran on both.
        assert len(nodes) == 2, nodes
