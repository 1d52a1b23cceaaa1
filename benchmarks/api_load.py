"""Load the REST API: concurrent job submissions and a stream of recommendation reads.

Starts `alto serve` on loopback against a fresh PostgreSQL database, submits jobs
from many concurrent clients (each with an Idempotency-Key, retried on network
errors), reads recommendations for a fixed time, prints throughput and p50/p99
latency, then checks that every accepted job is in the database exactly once.
Asserts nothing; prints figures.

    .venv/bin/python benchmarks/api_load.py [--jobs 2000] [--read-seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import httpx
from common import serving
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from service.core.migrate import upgrade
from service.storage import Database
from workers.dispatcher import publish_catalogue

ADMIN_URL = os.environ.get(
    "ALTO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
ALTO = Path(sys.executable).with_name("alto")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def seed_database(url: str) -> None:
    upgrade(url)
    database = Database(url)
    publish_catalogue(database, "benchmark")  # the catalogue a worker publishes
    with database.unit_of_work(write=True) as uow:
        for bs in (32, 128, 512):
            uow.recommendations.add(
                task="digits-mlp",
                batch_size=bs,
                optimizer="alto",
                settings={"alpha": -1.0, "beta1": 0.9, "lr": 1e-3},
                metric=0.97,
                n_trials=16,
            )
    database.dispose()


async def submit_jobs(url: str, count: int, concurrency: int) -> tuple[list[float], list[int]]:
    latencies: list[float] = []
    accepted: list[int] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    spec = {"task": "digits-mlp", "batch_sizes": [64, 512], "trials_per_study": 8}

    async def client() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            while not queue.empty():
                i = queue.get_nowait()
                key = f"load-{i}"
                for attempt in range(5):  # noqa: B007 (reported after the loop)
                    start = time.perf_counter()
                    try:
                        response = await http.post(
                            "/api/v1/jobs", json=spec, headers={"Idempotency-Key": key}
                        )
                    except httpx.HTTPError:
                        continue  # the same key makes the retry safe
                    latencies.append(time.perf_counter() - start)
                    if response.status_code in (200, 201):
                        accepted.append(response.json()["id"])
                    break
                else:
                    print(f"job {i}: gave up after {attempt + 1} attempts")

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies, accepted


async def read_recommendations(url: str, seconds: float, concurrency: int) -> list[float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    sizes = [16, 32, 64, 128, 256, 512, 1024]

    async def client(offset: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            n = offset
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                response = await http.get(
                    "/api/v1/recommendations",
                    params={"task": "digits-mlp", "batch_size": sizes[n % len(sizes)]},
                )
                latencies.append(time.perf_counter() - start)
                response.raise_for_status()
                n += 1

    await asyncio.gather(*(client(i) for i in range(concurrency)))
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--submitters", type=int, default=32)
    parser.add_argument("--read-seconds", type=float, default=15.0)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--server-workers", type=int, default=2)
    args = parser.parse_args()

    name = f"alto_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    port = 8700 + os.getpid() % 200
    try:
        seed_database(url)
        with serving({"ALTO_DATABASE_URL": url}, port, args.server_workers) as base:
            print(
                f"server: uvicorn x{args.server_workers} on {base}, PostgreSQL database "
                f"{name}; {os.cpu_count()} CPUs shared with the clients"
            )
            measure(base, url, args)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def measure(base: str, url: str, args: argparse.Namespace) -> None:
    start = time.perf_counter()
    lat, accepted = asyncio.run(submit_jobs(base, args.jobs, args.submitters))
    elapsed = time.perf_counter() - start
    print(
        f"submissions: {len(accepted)}/{args.jobs} accepted in {elapsed:.1f} s "
        f"({len(accepted) / elapsed:.0f}/s) with {args.submitters} clients; latency "
        f"p50 {1e3 * statistics.median(lat):.1f} ms, "
        f"p99 {1e3 * percentile(lat, 0.99):.1f} ms"
    )

    lat = asyncio.run(read_recommendations(base, args.read_seconds, args.readers))
    print(
        f"recommendation reads: {len(lat) / args.read_seconds:.0f}/s with {args.readers} "
        f"clients; latency p50 {1e3 * statistics.median(lat):.1f} ms, "
        f"p99 {1e3 * percentile(lat, 0.99):.1f} ms"
    )

    database = Database(url)
    with database.unit_of_work() as uow:
        rows = uow.session.execute(text("SELECT id, idempotency_key FROM jobs")).all()
    database.dispose()
    stored = {row.id for row in rows}
    keys = [row.idempotency_key for row in rows]
    lost = set(accepted) - stored
    print(
        f"check: {len(stored)} jobs stored, {len(lost)} accepted jobs missing, "
        f"{len(keys) - len(set(keys))} duplicated keys, "
        f"{len(set(accepted))} distinct accepted ids"
    )


if __name__ == "__main__":
    main()
