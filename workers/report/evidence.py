"""The report's read model: what the database holds about a set of sweeps, read once
through the storage layer into frozen values, so that the claims, the tables and the plots
compute from the same numbers and never touch the database themselves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from service.catalogue.repository import TaskInfo
from service.core.config import redacted
from service.core.statuses import TRIAL_FINISHED
from service.jobs.repository import Job
from service.storage import Database, UnitOfWork


class ReportError(Exception):
    """What the report cannot be made from (a missing sweep, task or job); the command
    line shows it as its error."""


@dataclass(frozen=True)
class ArmPoint:
    """The recommended setting of one arm at one batch size, with its evidence."""

    optimizer: str
    batch_size: int
    metric: float | None  # mean over seeds when re-evaluated
    metric_std: float | None
    n_seeds: int
    settings: dict[str, float]
    n_trials: int
    uplift: float | None  # over Lamb, positive = this arm better (None for Lamb itself)
    best_trial_id: int | None
    recommendation_id: int
    top_eigenvalue: float | None = None
    eigen_converged: bool = False
    drift_from_start: float | None = None
    drift_over_window: float | None = None
    flatness_method: str | None = None


@dataclass(frozen=True)
class TaskEvidence:
    task: str
    metric: str
    direction: str
    arms: tuple[str, ...]
    points: dict[tuple[int, str], ArmPoint]  # (batch size, arm)
    batch_sizes: tuple[int, ...]
    newest_on_dashboard: bool  # these recommendations are what the dashboard shows


@dataclass(frozen=True)
class Evidence:
    sweep_ids: tuple[int, ...]
    sweeps: tuple[dict[str, Any], ...]  # id, name, spec
    tasks: tuple[TaskEvidence, ...]
    jobs: tuple[Job, ...]
    database_url: str


def _task_info(uow: UnitOfWork, name: str) -> TaskInfo:
    info = uow.catalogue.task(name)
    if info is None:
        raise ReportError(f"task {name!r} is not in the database's catalogue")
    return info


def collect(database: Database, sweep_ids: Sequence[int]) -> Evidence:
    """Read the sweeps' recommendations, seeds and flatness through the storage layer."""
    sweeps: list[dict[str, Any]] = []
    jobs: list[Job] = []
    with database.unit_of_work() as uow:
        for sweep_id in sweep_ids:
            sweep = uow.sweeps.get(sweep_id)
            if sweep is None:
                raise ReportError(f"no sweep {sweep_id} in {redacted(database.url)}")
            sweeps.append({"id": sweep.id, "name": sweep.name, "spec": sweep.spec})
            jobs.extend(uow.sweeps.jobs(sweep_id))
        by_task: dict[str, dict[tuple[int, str], ArmPoint]] = {}
        arms: dict[str, list[str]] = {}
        for job in jobs:
            task_arms = arms.setdefault(job.task, [])
            task_arms.extend(a.optimizer for a in job.spec.arms if a.optimizer not in task_arms)
            points = by_task.setdefault(job.task, {})
            for rec in uow.recommendations.for_job(job.id):
                trials = uow.trials.for_study(rec.study_id) if rec.study_id else []
                best = next((t for t in trials if t.id == rec.best_trial_id), None)
                seeds = [
                    t
                    for t in trials
                    if best is not None and t.params == best.params and t.status in TRIAL_FINISHED
                ]
                flat = uow.trials.flatness(rec.best_trial_id) if rec.best_trial_id else None
                points[(rec.batch_size, rec.optimizer)] = ArmPoint(
                    optimizer=rec.optimizer,
                    batch_size=rec.batch_size,
                    metric=rec.metric,
                    metric_std=rec.metric_std,
                    n_seeds=max(1, len(seeds)),
                    settings=dict(rec.settings),
                    n_trials=rec.n_trials,
                    uplift=rec.uplift,
                    best_trial_id=rec.best_trial_id,
                    recommendation_id=rec.id,
                    top_eigenvalue=flat.top_eigenvalue if flat else None,
                    eigen_converged=bool(flat and flat.eigen_converged),
                    drift_from_start=flat.drift_from_start if flat else None,
                    drift_over_window=flat.drift_over_window if flat else None,
                    flatness_method=flat.method if flat else None,
                )
        tasks = []
        for name, points in by_task.items():
            info = _task_info(uow, name)
            latest = {r.id for r in uow.recommendations.latest(name)}
            tasks.append(
                TaskEvidence(
                    task=name,
                    metric=info.metric,
                    direction=info.direction,
                    arms=tuple(arms[name]),
                    points=points,
                    batch_sizes=tuple(sorted({b for b, _ in points})),
                    newest_on_dashboard=bool(points)
                    and all(p.recommendation_id in latest for p in points.values()),
                )
            )
    return Evidence(
        sweep_ids=tuple(sweep_ids),
        sweeps=tuple(sweeps),
        tasks=tuple(tasks),
        jobs=tuple(jobs),
        database_url=database.url,
    )


def _with(task: TaskEvidence, arm: str) -> list[int]:
    return [b for b in task.batch_sizes if (b, arm) in task.points]
