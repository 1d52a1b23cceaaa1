"""The tuning engine end to end: a real server, real workers on local Ray, real training.

Jobs go in over REST and come out as trials, recommendations and flatness figures in
the database; cancelling, divergence and a worker killed with SIGKILL are handled.
"""

from __future__ import annotations

import functools
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest

from tests.service.server import running_server

ALTO = Path(sys.executable).with_name("alto")
TERMINAL = ("succeeded", "failed", "cancelled")
FINISHED = ("completed", "pruned", "diverged")


def wait_for(condition, timeout: float, what: str, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def job_of(http, job_id):
    return http.get(f"/api/v1/jobs/{job_id}").json()


def finished(http, job_id, timeout=420):
    return wait_for(
        lambda: (j := job_of(http, job_id))["status"] in TERMINAL and j,
        timeout,
        f"job {job_id} to finish",
    )


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """`alto serve` with its tuning worker (local Ray)."""
    with running_server(tmp_path_factory.mktemp("engine"), worker=True) as server:
        with server.client() as http:
            # The worker publishes the task catalogue when it starts.
            wait_for(lambda: http.get("/api/v1/tasks").json(), 120, "the worker's catalogue")
        yield server


def test_a_job_over_rest_is_tuned_and_served(engine):
    spec = {
        "task": "digits-mlp",
        "batch_sizes": [32, 256],
        "trials_per_study": 3,
        "epochs_per_trial": 2,
        "arms": [{"optimizer": "alto"}, {"optimizer": "lamb"}],
    }
    with engine.client() as http:
        names = [t["name"] for t in http.get("/api/v1/tasks").json()]
        assert names == ["charlm", "cifar10-resnet20", "digits-mlp", "gpt2-small", "mnist1d-cnn"]
        job = http.post("/api/v1/jobs", json=spec).json()
        done = finished(http, job["id"])
        assert done["status"] == "succeeded", done
        assert done["progress"] == 1.0 and done["trials_done"] == 12
        assert [(s["batch_size"], s["optimizer"], s["status"]) for s in done["studies"]] == [
            (32, "alto", "done"),
            (32, "lamb", "done"),
            (256, "alto", "done"),
            (256, "lamb", "done"),
        ]
        trials = http.get(f"/api/v1/jobs/{job['id']}/trials", params={"limit": 100}).json()
        assert trials["total"] == 12
        assert all(t["status"] in FINISHED and t["node"] and t["device"] for t in trials["items"])
        # Every trial stores its optimizer steps (a whole number of epochs of one batch
        # size's steps, fewer at the larger batch size) and its final training loss.
        batch_of = {s["id"]: s["batch_size"] for s in done["studies"]}
        per_epoch: dict[int, set[int]] = {}
        for t in (t for t in trials["items"] if t["status"] != "diverged"):
            assert t["steps"] % t["epochs_run"] == 0 and t["final_train_loss"] > 0, t
            per_epoch.setdefault(batch_of[t["study_id"]], set()).add(t["steps"] // t["epochs_run"])
        assert len(per_epoch[32]) == len(per_epoch[256]) == 1
        assert per_epoch[32].pop() > 4 * per_epoch[256].pop()
        alto = [t for t in trials["items"] if t["alpha"] is not None]
        assert len(alto) == 6 and all(abs(t["alpha"] * (1 - t["beta1"])) < 1 for t in alto)

        rec = http.get(
            "/api/v1/recommendations", params={"task": "digits-mlp", "batch_size": 32}
        ).json()
        assert rec["source"] == "measured" and rec["job_id"] == job["id"]
        assert rec["baseline_optimizer"] == "lamb"
        assert rec["uplift"] == pytest.approx(rec["metric"] - rec["baseline_metric"])
        best = http.get(f"/api/v1/trials/{rec['evidence'][0]['best_trial_id']}").json()
        assert best["final_metric"] == rec["metric"] and len(best["epochs"]) == 2
        flat = best["flatness"]
        assert flat["eigen_converged"] and math.isfinite(flat["top_eigenvalue"])
        assert flat["drift_from_start"] > 0
        between = http.get(
            "/api/v1/recommendations", params={"task": "digits-mlp", "batch_size": 64}
        ).json()
        assert between["source"] == "interpolated"

    # Each study is also an Optuna study, for optuna-dashboard.
    storage = f"sqlite:///{engine.env['ALTO_DATA_DIR']}/optuna.db"
    study = optuna.load_study(study_name=f"job{job['id']}-bs32-alto", storage=storage)
    assert len(study.trials) == 3


def test_diverged_trials_are_recorded_and_the_job_succeeds(engine):
    huge = {"lr": {"low": 1e3, "high": 1e4, "log": True}}
    spec = {
        "task": "digits-mlp",
        "batch_sizes": [64],
        "trials_per_study": 2,
        "epochs_per_trial": 2,
        "arms": [{"optimizer": "lamb"}, {"optimizer": "adamw", "search": huge}],
    }
    with engine.client() as http:
        job = http.post("/api/v1/jobs", json=spec).json()
        done = finished(http, job["id"])
        assert done["status"] == "succeeded", done
        adamw = [s for s in done["studies"] if s["optimizer"] == "adamw"][0]
        diverged = http.get(
            f"/api/v1/jobs/{job['id']}/trials", params={"study_id": adamw["id"]}
        ).json()["items"]
        assert [t["status"] for t in diverged] == ["diverged", "diverged"]
        assert all(t["final_metric"] == "NaN" for t in diverged)
        recs = http.get("/api/v1/recommendations/digits-mlp").json()
        mine = {r["optimizer"] for r in recs if r["job_id"] == job["id"]}
        assert mine == {"lamb"}  # nothing to recommend from diverged trials


def test_cancel_mid_job(engine):
    spec = {
        "task": "digits-mlp",
        "batch_sizes": [32, 64, 128],
        "trials_per_study": 40,
        "epochs_per_trial": 3,
    }
    with engine.client() as http:
        job = http.post("/api/v1/jobs", json=spec).json()
        wait_for(lambda: job_of(http, job["id"])["trials_done"] >= 2, 180, "two trials")
        assert http.post(f"/api/v1/jobs/{job['id']}/cancel").status_code == 202
        asked = time.monotonic()
        done = finished(http, job["id"], timeout=60)
        assert done["status"] == "cancelled"
        assert time.monotonic() - asked < 30
        assert done["trials_done"] < done["trials_total"]


def test_unknown_task_is_refused(engine):
    with engine.client() as http:
        response = http.post("/api/v1/jobs", json={"task": "imagenet", "batch_sizes": [64]})
        assert response.status_code == 422
        assert "known tasks: charlm, cifar10-resnet20" in response.json()["detail"]


def _worker(env, ray_dir=None, concurrent_jobs=1):
    env = dict(env)
    if ray_dir is not None:
        env["RAY_TMPDIR"] = str(ray_dir)  # marks every process of its local Ray cluster
    return subprocess.Popen(
        [ALTO, "worker", f"--concurrent-jobs={concurrent_jobs}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _processes_using(ray_dir):
    """Processes whose command line, environment or open files mention ``ray_dir`` (Ray's
    agents rename themselves, but keep their log files open there)."""
    marker = str(ray_dir)
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            seen = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
            links = [os.readlink(fd) for fd in (proc / "fd").iterdir()]
        except OSError:
            continue
        if marker.encode() in seen or any(marker in link for link in links):
            found.append(int(proc.name))
    return found


def _kill_machine(worker, ray_dir):
    """SIGKILL the worker and every process of its Ray cluster, as when a machine dies."""
    victims = [worker.pid] + _processes_using(ray_dir)
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    worker.wait()


def _finished_trials(server, job_id):
    with server.database.unit_of_work() as uow:
        trials = uow.trials.for_job(job_id, limit=500)[0]
    return {t.number: t for t in trials if t.status in FINISHED}


def test_a_killed_worker_loses_no_finished_trial(tmp_path):
    spec = {
        "task": "digits-mlp",
        "batch_sizes": [64],
        "trials_per_study": 8,
        "epochs_per_trial": 3,
        "arms": [{"optimizer": "alto"}],
        "max_concurrent_trials": 1,
        "early_stopping": {"enabled": False},
    }
    with running_server(tmp_path, lease_seconds="4") as server, server.client() as http:
        ray_dir = Path(tempfile.mkdtemp(prefix="rk", dir="/tmp"))  # short: socket paths
        first = _worker(server.env, ray_dir)
        try:
            wait_for(lambda: http.get("/api/v1/tasks").json(), 120, "the worker's catalogue")
            job = http.post("/api/v1/jobs", json=spec).json()
            wait_for(lambda: job_of(http, job["id"])["trials_done"] >= 2, 240, "two trials")
        finally:
            _kill_machine(first, ray_dir)
        before = _finished_trials(server, job["id"])
        assert len(before) >= 2
        second = _worker(server.env)
        try:
            done = finished(http, job["id"])
        finally:
            second.terminate()
            second.wait(timeout=90)
        assert done["status"] == "succeeded", done
        assert done["attempts"] == 2 and done["abandoned"] == 1
        with server.database.unit_of_work() as uow:
            trials = uow.trials.for_job(job["id"], limit=500)[0]
        after = {t.number: t for t in trials}
        for number, trial in before.items():  # kept as they were, not run again
            assert after[number].final_metric == trial.final_metric
            assert after[number].updated_at == trial.updated_at
        finished_trials = [t for t in trials if t.status in FINISHED]
        assert len(finished_trials) == 8  # the budget, not more: nothing ran twice
        assert len({t.number for t in trials}) == len(trials)
        interrupted = [t for t in trials if t.status == "failed"]
        assert all("interrupted" in t.error for t in interrupted)


def _job_processes(worker):
    """The dispatcher's job processes (multiprocessing spawns them; its Ray is the rest)."""
    found = []
    for task in Path(f"/proc/{worker.pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmdline:
                found.append(int(child))
    return found


def _progressed(http, job_id, attempt, trials_before):
    job = job_of(http, job_id)
    return (
        job["attempts"] == attempt
        and job["status"] == "running"
        and job["trials_done"] > trials_before
    )


def test_a_dead_job_process_is_retried_at_once_then_failed(tmp_path):
    """With --concurrent-jobs, a job whose process dies is handed back at once (its lease
    of 600 s never expires here) and resumed; abandoned job_max_abandoned times, it fails."""
    spec = {
        "task": "digits-mlp",
        "batch_sizes": [64],
        "trials_per_study": 40,
        "epochs_per_trial": 3,
        "arms": [{"optimizer": "alto"}],
        "max_concurrent_trials": 1,
        "early_stopping": {"enabled": False},
    }
    settings = {"lease_seconds": "600", "job_max_abandoned": "2"}
    with running_server(tmp_path, **settings) as server, server.client() as http:
        worker = _worker(server.env, concurrent_jobs=2)
        try:
            wait_for(lambda: http.get("/api/v1/tasks").json(), 120, "the worker's catalogue")
            job_id = http.post("/api/v1/jobs", json=spec).json()["id"]
            kept = {}
            for attempt in (1, 2):
                progressed = functools.partial(_progressed, http, job_id, attempt, len(kept))
                wait_for(progressed, 240, f"a new trial on attempt {attempt}")
                kept = _finished_trials(server, job_id)
                (victim,) = wait_for(lambda: _job_processes(worker), 30, "the job process")
                os.kill(victim, signal.SIGKILL)
            done = finished(http, job_id, timeout=120)
        finally:
            worker.terminate()
            assert worker.wait(timeout=90) == 0
        assert done["status"] == "failed", done
        assert done["abandoned"] == 2 and done["attempts"] == 2
        assert done["error"] == "abandoned 2 times, the last: its job process died (exit code -9)"
        after = _finished_trials(server, job_id)
        for number, trial in kept.items():  # the finished trials survived both deaths
            assert after[number].final_metric == trial.final_metric


@pytest.mark.parametrize("concurrent_jobs", [1, 2], ids=["serial", "pool"])
def test_sigterm_hands_the_job_back(tmp_path, concurrent_jobs):
    """Also with --concurrent-jobs, where the job runs in a process of its own."""
    spec = {
        "task": "digits-mlp",
        "batch_sizes": [64],
        "trials_per_study": 30,
        "epochs_per_trial": 3,
        "max_concurrent_trials": 1,
    }
    with running_server(tmp_path) as server, server.client() as http:
        worker = _worker(server.env, concurrent_jobs=concurrent_jobs)
        try:
            wait_for(lambda: http.get("/api/v1/tasks").json(), 120, "the worker's catalogue")
            job = http.post("/api/v1/jobs", json=spec).json()
            wait_for(lambda: job_of(http, job["id"])["trials_done"] >= 1, 180, "a trial")
        finally:
            worker.terminate()
            assert worker.wait(timeout=90) == 0
        released = job_of(http, job["id"])
        assert released["status"] == "queued" and released["lease_owner"] is None
        assert released["abandoned"] == 0  # a clean hand-back
        kept = http.get(f"/api/v1/jobs/{job['id']}/trials").json()["items"]
        assert any(t["status"] in FINISHED for t in kept)


def test_reevaluation_with_several_seeds_recommends_the_best_mean(engine):
    spec = {
        "task": "digits-mlp",
        "batch_sizes": [128],
        "trials_per_study": 3,
        "epochs_per_trial": 2,
        "arms": [{"optimizer": "lamb"}],
        "seeds": [0, 1],
        "reevaluate_top": 1,
        "early_stopping": {"enabled": False},
    }
    with engine.client() as http:
        job = http.post("/api/v1/jobs", json=spec).json()
        done = finished(http, job["id"])
        assert done["status"] == "succeeded", done
        trials = http.get(f"/api/v1/jobs/{job['id']}/trials").json()["items"]
        assert sorted(t["seed"] for t in trials) == [0, 0, 0, 1]
        (rec,) = [
            r
            for r in http.get("/api/v1/recommendations/digits-mlp").json()
            if r["job_id"] == job["id"]
        ]
        best = [t for t in trials if t["id"] == rec["best_trial_id"]][0]
        runs = [t["final_metric"] for t in trials if t["params"] == best["params"]]
        assert len(runs) == 2 and rec["metric"] == pytest.approx(sum(runs) / 2)
        assert rec["metric_std"] is not None
