"""Sweeps through a real `alto serve` process: the CLI, the REST API and the sweep page in
Chromium. A sweep is queued whole or not at all."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from playwright.sync_api import expect

ALTO = Path(sys.executable).with_name("alto")

GOOD = """\
name: digits-and-charlm
defaults:
  trials: 2
  epochs: 1
tasks:
  - digits-mlp
  - charlm
batch_sizes: [32, 64, 128]
optimizers:
  - alto
  - {optimizer: lamb}
budgets:
  - {trials: 2, epochs: 1}
  - {trials: 3}
"""

# Line 4: a task no worker published; line 7: above digits-mlp's maximum batch (1024).
BAD = """\
name: broken
tasks:
  - digits-mlp
  - no-such-task
batch_sizes:
  - 64
  - 2048
optimizers: [alto, lamb]
"""


def alto(server, *args, check=True):
    env = {**os.environ, "ALTO_API_URL": server.url}
    return subprocess.run(
        [ALTO, *map(str, args)], capture_output=True, text=True, env=env, check=check, timeout=60
    )


def totals(http) -> tuple[int, int]:
    jobs = http.get("/api/v1/jobs", params={"limit": 1}).json()["total"]
    return jobs, http.get("/api/v1/sweeps", params={"limit": 1}).json()["total"]


def test_submit_expands_the_axes_into_jobs_of_one_sweep(server, http, tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(GOOD)
    out = alto(server, "sweep", "submit", path).stdout
    assert out.startswith("sweep ") and "4 jobs" in out
    sweep_id = int(out.split()[1])
    job_ids = [int(j) for j in out.splitlines()[1].removeprefix("jobs: ").split()]

    page = http.get("/api/v1/jobs", params={"sweep_id": sweep_id}).json()
    jobs = page["items"]
    # One job per (task, budget), each holding every batch size and arm: 2 x 2 jobs and
    # 2 tasks x 3 batch sizes x 2 arms x 2 budgets studies.
    assert page["total"] == len(job_ids) == 2 * 2
    assert sorted(j["id"] for j in jobs) == job_ids
    assert sum(len(j["spec"]["batch_sizes"]) * len(j["spec"]["arms"]) for j in jobs) == 24
    assert {j["sweep_id"] for j in jobs} == {sweep_id}
    budgets = sorted(
        (j["task"], j["spec"]["trials_per_study"], j["spec"]["epochs_per_trial"]) for j in jobs
    )
    assert budgets == [
        ("charlm", 2, 1),
        ("charlm", 3, 1),
        ("digits-mlp", 2, 1),
        ("digits-mlp", 3, 1),
    ]

    detail = http.get(f"/api/v1/sweeps/{sweep_id}").json()
    assert detail["name"] == "digits-and-charlm" and [j["id"] for j in detail["jobs"]] == job_ids
    assert detail["totals"]["by_status"]["queued"] == 4
    assert detail["totals"]["trials_total"] == sum(j["trials_total"] for j in jobs) == 60

    status = alto(server, "sweep", "status", sweep_id).stdout
    assert f"sweep {sweep_id} digits-and-charlm: 4 jobs, 0/60 trials" in status
    assert "digits-mlp" in status and "32,64,128" in status and "3 trials x 1 epochs" in status
    assert "totals: queued 4" in status
    assert "digits-and-charlm" in alto(server, "sweep", "status").stdout

    assert "cancelled 4" in alto(server, "sweep", "cancel", sweep_id).stdout
    again = alto(server, "sweep", "cancel", sweep_id, check=False)
    assert again.returncode == 1 and "no queued or running jobs" in again.stderr


def test_an_invalid_file_is_refused_whole_with_its_lines(server, http, tmp_path):
    before = totals(http)
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    result = alto(server, "sweep", "submit", path, check=False)
    assert result.returncode == 1
    assert f"{path}:4: tasks[1]: unknown task 'no-such-task'" in result.stderr
    assert f"{path}:7: batch_sizes[1]: batch size 2048 is above task 'digits-mlp'" in (
        result.stderr
    )
    assert "nothing was queued" in result.stderr
    assert totals(http) == before

    # A schema error (found before the catalogue is consulted) points at its line too.
    path.write_text(GOOD.replace("{trials: 3}", "{trials: 0}"))
    result = alto(server, "sweep", "submit", path, check=False)
    assert result.returncode == 1
    assert f"{path}:14: budgets[1].trials: Input should be greater than or equal to 1" in (
        result.stderr
    )
    path.write_text("name: x\ntasks: [digits-mlp\nbatch_sizes: [1]\n")
    result = alto(server, "sweep", "submit", path, check=False)
    assert result.returncode == 1 and f"{path}:3: YAML:" in result.stderr
    path.write_text("name: x\ntasks: digits-mlp\nbatch_sizes: [1]\nbudget: []\n")
    result = alto(server, "sweep", "submit", path, check=False)
    assert f"{path}:2: tasks: must be a list" in result.stderr
    assert f"{path}:4: budget: unknown key" in result.stderr
    assert totals(http) == before


def test_one_job_per_batch_size_places_errors_at_the_sweeps_batch_size(http):
    body = {
        "name": "per-size",
        "tasks": ["charlm"],
        "batch_sizes": [64, 1024, 4096],
        "optimizers": ["alto", {"optimizer": "alto", "search": {"alpha": {"low": -9, "high": 9}}}],
        "group_batch_sizes": False,
    }
    refused = http.post("/api/v1/sweeps", json=body)
    assert refused.status_code == 422 and refused.headers["content-type"].startswith(
        "application/problem+json"
    )
    fields = [e["field"] for e in refused.json()["errors"]]
    assert fields == ["optimizers"]  # schema first: the arms are not unique
    body["optimizers"] = [
        "alto",
        {"optimizer": "adamw", "search": {"beta1": {"low": 0.1, "high": 0.5}}},
    ]
    fields = sorted(e["field"] for e in http.post("/api/v1/sweeps", json=body).json()["errors"])
    assert fields == ["batch_sizes[1]", "batch_sizes[2]", "optimizers[1].search.beta1"]

    body["batch_sizes"] = [64, 128, 256]
    body["optimizers"] = ["alto", "lamb"]
    created = http.post("/api/v1/sweeps", json=body, headers={"Idempotency-Key": "s1"})
    assert created.status_code == 201, created.text
    sweep = created.json()
    assert created.headers["location"] == f"/api/v1/sweeps/{sweep['id']}"
    assert [j["spec"]["batch_sizes"] for j in sweep["jobs"]] == [[64], [128], [256]]
    again = http.post("/api/v1/sweeps", json=body, headers={"Idempotency-Key": "s1"})
    assert again.status_code == 200 and again.json()["id"] == sweep["id"]
    assert http.get("/api/v1/jobs", params={"sweep_id": sweep["id"]}).json()["total"] == 3


def test_a_token_sees_only_its_own_sweeps(server, http):
    with server.database.unit_of_work(write=True) as uow:
        alice = uow.tokens.create("sweep-alice")[0]
        bob = uow.tokens.create("sweep-bob")[0]
    body = {"name": "mine", "tasks": ["digits-mlp"], "batch_sizes": [32]}
    with server.client(alice) as a, server.client(bob) as b:
        sweep_id = a.post("/api/v1/sweeps", json=body).json()["id"]
        assert [s["id"] for s in a.get("/api/v1/sweeps").json()["items"]] == [sweep_id]
        assert b.get("/api/v1/sweeps").json()["total"] == 0
        assert b.get(f"/api/v1/sweeps/{sweep_id}").status_code == 404
        assert b.post(f"/api/v1/sweeps/{sweep_id}/cancel").status_code == 404
        assert b.get("/api/v1/jobs", params={"sweep_id": sweep_id}).json()["total"] == 0
    assert http.get(f"/api/v1/sweeps/{sweep_id}").status_code == 200  # the local admin


def test_the_sweep_page_lists_its_jobs(server, http, browser):
    body = {"name": "page", "tasks": ["digits-mlp", "charlm"], "batch_sizes": [32, 64]}
    sweep = http.post("/api/v1/sweeps", json=body).json()
    page = browser.new_page(base_url=server.url)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"/dashboard/sweeps/{sweep['id']}")
    page.wait_for_selector("body[data-ready='1']", timeout=20_000)
    expect(page.locator("#title")).to_contain_text(f"Sweep {sweep['id']}: page")
    rows = page.locator("#sweep-jobs tbody tr")
    expect(rows).to_have_count(2)
    for job in sweep["jobs"]:
        expect(page.locator(f"#sweep-jobs tr[data-job-id='{job['id']}']")).to_contain_text(
            f"{job['task']}32, 64"
        )
    page.get_by_role("button", name="Cancel sweep").click()
    expect(rows.first).to_contain_text("cancelled")
    # The jobs page links each job to its sweep and filters by it.
    page.goto(f"/dashboard/jobs?sweep_id={sweep['id']}")
    page.wait_for_selector("body[data-ready='1']")
    expect(page.locator("#jobs tbody tr")).to_have_count(2)
    page.locator("#jobs tbody tr").first.get_by_role("link", name=f"sweep {sweep['id']}").click()
    expect(page).to_have_url(f"{server.url}/dashboard/sweeps/{sweep['id']}")
    assert not errors, errors
