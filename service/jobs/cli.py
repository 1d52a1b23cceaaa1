"""`alto jobs ...`: a client of the REST API (never of the database)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from service.client import ApiError, Client
from service.core.statuses import JobStatus

api_options = [
    click.option(
        "--url",
        envvar="ALTO_API_URL",
        default="http://127.0.0.1:8000",
        show_default=True,
        help="API base URL (env ALTO_API_URL).",
    ),
    click.option(
        "--token", envvar="ALTO_API_TOKEN", default=None, help="API token (env ALTO_API_TOKEN)."
    ),
]


def with_api(func: Any) -> Any:
    for option in reversed(api_options):
        func = option(func)
    return func


def fail(exc: ApiError) -> None:
    click.echo(f"error: {exc}", err=True)
    for error in exc.problem.get("errors", []):
        click.echo(f"  {error.get('field')}: {error.get('message')}", err=True)
    sys.exit(1)


@click.group("jobs")
def jobs() -> None:
    """Submit, list, show and cancel tuning jobs through the REST API."""


@jobs.command("submit")
@click.argument("spec_file", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("--task", help="Task name (see GET /api/v1/tasks).")
@click.option("--batch-sizes", help="Comma-separated, e.g. 128,1024,8192.")
@click.option("--optimizers", default=None, help="Comma-separated arms (default: alto,lamb).")
@click.option("--trials", type=int, default=None, help="Trials per study.")
@click.option("--epochs", type=int, default=None, help="Epochs per trial.")
@click.option("--idempotency-key", default=None)
@with_api
def submit(
    spec_file: Path | None,
    task: str | None,
    batch_sizes: str | None,
    optimizers: str | None,
    trials: int | None,
    epochs: int | None,
    idempotency_key: str | None,
    url: str,
    token: str | None,
) -> None:
    """Submit a job from a JSON spec file and/or options (options win)."""
    spec: dict[str, Any] = json.loads(spec_file.read_text()) if spec_file else {}
    if task:
        spec["task"] = task
    if batch_sizes:
        try:
            spec["batch_sizes"] = [int(b) for b in batch_sizes.split(",") if b.strip()]
        except ValueError as exc:
            raise click.BadParameter(f"not a list of integers: {batch_sizes!r}") from exc
    if optimizers:
        spec["arms"] = [{"optimizer": o.strip()} for o in optimizers.split(",") if o.strip()]
    if trials is not None:
        spec["trials_per_study"] = trials
    if epochs is not None:
        spec["epochs_per_trial"] = epochs
    with Client(url, token) as client:
        try:
            job = client.submit_job(spec, idempotency_key)
        except ApiError as exc:
            fail(exc)
    click.echo(f"job {job['id']} {job['status']}: {job['task']}, {job['trials_total']} trials")


@jobs.command("list")
@click.option("--status", default=None)
@click.option("--task", default=None)
@click.option("--limit", type=int, default=20, show_default=True)
@with_api
def list_(status: str | None, task: str | None, limit: int, url: str, token: str | None) -> None:
    """List jobs, newest first."""
    with Client(url, token) as client:
        try:
            page = client.jobs(status=status, task=task, limit=limit)
        except ApiError as exc:
            fail(exc)
    click.echo(f"{'id':>6} {'status':<10} {'task':<20} {'progress':>8}  created")
    for job in page["items"]:
        click.echo(
            f"{job['id']:>6} {job['status']:<10} {job['task']:<20} "
            f"{job['progress']:>8.0%}  {job['created_at'][:19]}"
        )
    click.echo(f"({len(page['items'])} of {page['total']})")


@jobs.command("show")
@click.argument("job_id", type=int)
@with_api
def show(job_id: int, url: str, token: str | None) -> None:
    """Show a job and its studies."""
    with Client(url, token) as client:
        try:
            job = client.job(job_id)
        except ApiError as exc:
            fail(exc)
    click.echo(
        f"job {job['id']}: {job['task']} {job['status']} "
        f"({job['trials_done']}/{job['trials_total']} trials)"
    )
    if job.get("error"):
        click.echo(f"error: {job['error']}")
    for study in job["studies"]:
        click.echo(
            f"  batch {study['batch_size']:>6} {study['optimizer']:<10} "
            f"{study['status']:<8} {study['trials_done']}/{study['trials_total']} "
            f"best {study['best_metric']}"
        )


@jobs.command("cancel")
@click.argument("job_id", type=int)
@with_api
def cancel(job_id: int, url: str, token: str | None) -> None:
    """Cancel a job."""
    with Client(url, token) as client:
        try:
            job = client.cancel(job_id)
        except ApiError as exc:
            fail(exc)
    state = "cancelled" if job["status"] == JobStatus.CANCELLED else "cancel requested"
    click.echo(f"job {job_id}: {state}")
