"""How fast a study of 10,000 trials opens in the dashboard, in headless Chromium.

Writes a study with N trials (random but plausible alpha, beta1, lr and accuracy) into
a fresh SQLite database, serves it, opens the study page and times it until the page
says it is ready (summary fetched, history and parallel coordinates drawn, first page of
the trials table filled). Prints the figures; asserts nothing.

    .venv/bin/python benchmarks/dashboard_scale.py [--trials 10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from common import CHROMIUM, CHROMIUM_ARGS, serving
from playwright.sync_api import sync_playwright
from sqlalchemy import insert

from service.core.migrate import upgrade
from service.core.statuses import StudyStatus, TrialStatus
from service.jobs.service import create_job
from service.jobs.spec import ArmSpec, JobSpec
from service.storage import Database
from service.trials.models import TrialRow
from workers.dispatcher import publish_catalogue

# Statuses as a study of this size ends up: mostly pruned by ASHA, some diverged.
MIX = [TrialStatus.COMPLETED, TrialStatus.PRUNED, TrialStatus.PRUNED, TrialStatus.DIVERGED]


def seed(url: str, trials: int) -> int:
    upgrade(url)
    database = Database(url)
    publish_catalogue(database, "benchmark")  # the catalogue a worker publishes
    rng = random.Random(0)
    with database.unit_of_work(write=True) as uow:
        spec = JobSpec(
            task="digits-mlp",
            batch_sizes=[256],
            arms=[ArmSpec(optimizer="alto")],
            trials_per_study=trials,
        )
        job = create_job(uow, spec)
        study = uow.studies.ensure(job.id, 256, "alto", trials)
        rows = []
        for n in range(trials):
            beta1 = 1 - 10 ** rng.uniform(-3, -0.005)
            c = rng.uniform(-0.99, 0.99)
            status = rng.choice(
                [
                    TrialStatus.COMPLETED,
                    TrialStatus.PRUNED,
                    TrialStatus.PRUNED,
                    TrialStatus.DIVERGED,
                ]
            )
            rows.append(
                {
                    "study_id": study.id,
                    "job_id": job.id,
                    "number": n,
                    "status": status,
                    "params": {"lr": 0.01, "one_minus_beta1": 1 - beta1, "c": c},
                    "alpha": c / (1 - beta1),
                    "beta1": beta1,
                    "lr": 10 ** rng.uniform(-4, -0.5),
                    "final_metric": float("nan")
                    if status == TrialStatus.DIVERGED
                    else rng.uniform(0.1, 0.98),
                    "epochs_run": rng.randint(1, 10),
                    "wall_time_s": rng.uniform(1, 30),
                }
            )
        uow.session.execute(insert(TrialRow), rows)
        uow.studies.update(study.id, status=StudyStatus.DONE, trials_done=trials)
    database.dispose()
    return study.id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="alto-dash-"))
    url = f"sqlite:///{data / 'alto.db'}"
    started = time.perf_counter()
    study = seed(url, args.trials)
    print(f"seeded {args.trials} trials in {time.perf_counter() - started:.1f} s")
    port = 8600 + os.getpid() % 300
    with serving({"ALTO_DATA_DIR": str(data)}, port) as base:
        api = []
        for _ in range(args.runs):
            start = time.perf_counter()
            httpx.get(f"{base}/api/v1/studies/{study}/summary", timeout=30).raise_for_status()
            api.append(time.perf_counter() - start)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{base}/dashboard/studies/{study}")  # warm the browser cache
            page.wait_for_selector("body[data-ready='1']", timeout=60_000)
            times, inside = [], []
            for _ in range(args.runs):
                start = time.perf_counter()
                page.goto(f"{base}/dashboard/studies/{study}")
                page.wait_for_selector("body[data-ready='1']", timeout=60_000)
                page.wait_for_selector("#parallel .main-svg")
                times.append(time.perf_counter() - start)
                # The page's own clock: from navigation start to "ready".
                inside.append(float(page.get_attribute("body", "data-ready-at")) / 1e3)
            rows = page.locator("#trials tbody tr").count()
            info = page.inner_text("#page-info")
            browser.close()
        print(f"page clock, navigation start to ready: median {statistics.median(inside):.2f} s")
        print(f"summary API for {args.trials} trials: median {1e3 * statistics.median(api):.0f} ms")
        print(
            "study page in headless Chromium until ready: "
            f"median {statistics.median(times):.2f} s, "
            f"max {max(times):.2f} s over {args.runs} loads (table shows {rows} rows: {info})"
        )


if __name__ == "__main__":
    main()
