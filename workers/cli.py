"""`alto worker` and `alto tune`."""

from __future__ import annotations

import logging
import math
import sys

import click

from service.core.config import Settings
from service.core.errors import InvalidInput
from service.core.statuses import JobStatus
from service.jobs.repository import Job
from service.jobs.service import create_job
from service.jobs.spec import ArmSpec, JobSpec, Resources
from service.storage import UnitOfWork
from service.trials.repository import Trial


def settings_for(ray_address: str | None) -> Settings:
    """The settings from the environment, with the Ray cluster a command line named."""
    settings = Settings()
    if ray_address:
        settings = settings.model_copy(update={"ray_address": ray_address})
    return settings


@click.command("worker")
@click.option("--ray-address", default=None, help="An existing Ray cluster (or RAY_ADDRESS).")
@click.option("--max-jobs", type=int, default=None, help="Exit after this many jobs.")
@click.option("--exit-when-idle", is_flag=True, help="Exit when no job is queued.")
@click.option("--worker-id", default=None, help="Default: host:pid:random.")
@click.option(
    "--concurrent-jobs",
    type=click.IntRange(1, 64),
    default=None,
    help="Jobs run at once, each in its own process (default: ALTO_WORKER_CONCURRENT_JOBS, 1).",
)
@click.option("--queue-demo", is_flag=True, help="On an empty database, queue a small demo job.")
def worker(
    ray_address: str | None,
    max_jobs: int | None,
    exit_when_idle: bool,
    worker_id: str | None,
    concurrent_jobs: int | None,
    queue_demo: bool,
) -> None:
    """Claim queued tuning jobs and run them on Ray (local unless --ray-address)."""
    from workers.dispatcher import Dispatcher, publish_catalogue

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    dispatcher = Dispatcher(
        settings_for(ray_address),
        worker_id=worker_id,
        max_jobs=max_jobs,
        exit_when_idle=exit_when_idle,
        concurrent_jobs=concurrent_jobs,
    )
    if queue_demo:
        publish_catalogue(dispatcher.database, dispatcher.worker)
        with dispatcher.database.unit_of_work(write=True) as uow:
            if uow.jobs.list(limit=1)[1] == 0:
                job = _create(uow, DEMO_SPEC)
                click.echo(
                    f"queued demo job {job.id}: {job.task}, batch sizes "
                    f"{job.spec.batch_sizes}, {job.trials_total} trials"
                )
    done = dispatcher.run()
    click.echo(f"worker ran {done} job(s)")


# What `alto serve --demo` queues on an empty database: small enough to finish in minutes.
DEMO_SPEC = JobSpec(
    task="digits-mlp",
    batch_sizes=[32, 512],
    arms=[ArmSpec(optimizer="alto"), ArmSpec(optimizer="lamb")],
    trials_per_study=6,
    epochs_per_trial=8,
)


def _create(uow: UnitOfWork, spec: JobSpec) -> Job:
    """The job, created as the API creates it; a spec the catalogue refuses is a usage
    error naming the field (exit status 2), before any Ray starts."""
    try:
        return create_job(uow, spec)
    except InvalidInput as exc:
        raise click.UsageError(f"{exc.field}: {exc.detail}") from exc


def _format(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}"


@click.command("tune")
@click.option("--task", required=True, help="A registered task, e.g. mnist1d-cnn.")
@click.option("--batch-sizes", required=True, help="Comma-separated, e.g. 128,1024,8192.")
@click.option(
    "--trials",
    type=click.IntRange(1, 10_000),
    default=16,
    show_default=True,
    help="Trials per study (per batch size and optimizer).",
)
@click.option(
    "--epochs",
    type=click.IntRange(1, 10_000),
    default=None,
    help="Epochs per trial (default: the task's).",
)
@click.option("--optimizers", default="alto,lamb", show_default=True)
@click.option("--seeds", default="0", show_default=True, help="Comma-separated seeds.")
@click.option("--reevaluate-top", type=click.IntRange(0, 10), default=0, show_default=True)
@click.option("--cpus-per-trial", type=float, default=1.0, show_default=True)
@click.option("--gpus-per-trial", type=float, default=0.0, show_default=True)
@click.option("--max-concurrent", type=int, default=None)
@click.option("--ray-address", default=None)
def tune(
    task: str,
    batch_sizes: str,
    trials: int,
    epochs: int | None,
    optimizers: str,
    seeds: str,
    reevaluate_top: int,
    cpus_per_trial: float,
    gpus_per_trial: float,
    max_concurrent: int | None,
    ray_address: str | None,
) -> None:
    """Tune a task here and now, without the API: the worker's code path, a progress bar,
    and a table of the best settings per batch size."""
    from pydantic import ValidationError
    from tqdm import tqdm

    from service.core.migrate import upgrade
    from workers.dispatcher import Dispatcher, publish_catalogue
    from workers.runtime import Runtime
    from workers.tasks import get_task

    logging.basicConfig(level=logging.WARNING)
    try:
        spec = JobSpec(
            task=task,
            batch_sizes=[int(b) for b in batch_sizes.split(",") if b.strip()],
            arms=[ArmSpec(optimizer=o.strip()) for o in optimizers.split(",") if o.strip()],
            trials_per_study=trials,
            epochs_per_trial=epochs,
            seeds=[int(s) for s in seeds.split(",") if s.strip()],
            reevaluate_top=reevaluate_top,
            resources=Resources(cpu=cpus_per_trial, gpu=gpus_per_trial),
            max_concurrent_trials=max_concurrent,
        )
    except (ValidationError, ValueError) as exc:
        raise click.UsageError(str(exc)) from exc
    settings = settings_for(ray_address)
    upgrade(settings.url)
    dispatcher = Dispatcher(settings, worker_id="alto-tune-cli")
    publish_catalogue(dispatcher.database, dispatcher.worker)
    with dispatcher.database.unit_of_work(write=True) as uow:
        job_id = _create(uow, spec).id
    claimed = dispatcher.claim(job_id)
    if claimed is None:
        raise click.ClickException(f"job {job_id} was taken by another worker")
    with (
        Runtime(settings) as runtime,
        tqdm(total=claimed.trials_total, unit="trial", desc=f"job {job_id}") as bar,
    ):

        def advance(trial: Trial) -> None:
            bar.update(1)
            bar.set_postfix_str(f"{trial.status} {_format(trial.final_metric)}")

        outcome = dispatcher.run_job(claimed, runtime, on_trial_end=advance)
    with dispatcher.database.unit_of_work() as uow:
        recs = uow.recommendations.for_job(job_id)
        final = uow.jobs.get(job_id)
    error = final.error if final else None
    click.echo(f"\njob {job_id} {outcome}" + (f": {error}" if error else ""))
    metric = get_task(task).metric
    click.echo(
        f"{'batch':>6} {'optimizer':<10} {'alpha':>9} {'beta1':>8} {'lr':>9} "
        f"{metric:>11} {'Lamb':>9} {'uplift':>8} {'trials':>6}"
    )
    for r in recs:
        s = r.settings
        click.echo(
            f"{r.batch_size:>6} {r.optimizer:<10} {_format(s.get('alpha')):>9} "
            f"{_format(s.get('beta1')):>8} {_format(s.get('lr'), 3):>9} "
            f"{_format(r.metric):>11} {_format(r.baseline_metric):>9} "
            f"{_format(r.uplift, 3):>8} {r.n_trials:>6}"
        )
    dispatcher.database.dispose()
    if outcome != JobStatus.SUCCEEDED:
        sys.exit(1)
