"""Study summaries for the dashboard, aggregated on the server so a study of ten thousand
trials still answers with a few thousand points."""

from __future__ import annotations

import math
import random

from pydantic import BaseModel

from service.auth.principal import Principal
from service.core.errors import NotFound
from service.core.statuses import TRIAL_FINISHED
from service.core.types import JSONFloat
from service.jobs.repository import Job
from service.jobs.service import visible_job
from service.storage import UnitOfWork
from service.studies.repository import Study
from service.trials.repository import Flatness


class History(BaseModel):
    number: list[int]
    value: list[JSONFloat | None]
    best_so_far: list[JSONFloat | None]
    sampled: bool


class Parallel(BaseModel):
    trial_id: list[int]
    alpha: list[JSONFloat | None]
    beta1: list[JSONFloat | None]
    lr: list[JSONFloat | None]
    metric: list[JSONFloat | None]
    sampled: bool


class FlatnessRow(BaseModel):
    optimizer: str
    study_id: int
    trial_id: int | None
    metric: JSONFloat | None
    flatness: Flatness | None


class StudySummary(BaseModel):
    study: Study
    job: Job
    metric_name: str
    direction: str
    counts: dict[str, int]
    history: History
    parallel: Parallel
    flatness: list[FlatnessRow]


def _sample(indices: list[int], keep: set[int], limit: int, seed: int) -> list[int]:
    """At most ``limit`` indices, always including ``keep``, the rest evenly drawn."""
    if len(indices) <= limit:
        return indices
    rest = [i for i in indices if i not in keep]
    chosen = set(keep) | set(random.Random(seed).sample(rest, max(0, limit - len(keep))))
    return sorted(chosen)


def study_summary(
    uow: UnitOfWork, study_id: int, principal: Principal, max_points: int = 2000
) -> StudySummary:
    study = uow.studies.get(study_id)
    if study is None:
        raise NotFound(f"no study {study_id}", field="path.study_id", value=study_id)
    job = visible_job(uow, study.job_id, principal)
    task = uow.catalogue.task(job.task)
    direction = task.direction if task else "max"
    metric_name = task.metric if task else "metric"
    better = max if direction == "max" else min
    points = uow.trials.points(study_id)
    counts: dict[str, int] = {}
    for _, _, status, *_ in points:
        counts[status] = counts.get(status, 0) + 1

    # Optimisation history: every finished trial's metric and the best so far.
    done = [p for p in points if p[2] in TRIAL_FINISHED]
    best, best_curve, improvements = None, [], set()
    for i, p in enumerate(done):
        value = p[3]
        if value is not None and math.isfinite(value):
            if best is None or better(best, value) != best:
                best = value
                improvements.add(i)
        best_curve.append(best)
    keep = _sample(list(range(len(done))), improvements, max_points, seed=study_id)
    history = History(
        number=[done[i][1] for i in keep],
        value=[done[i][3] for i in keep],
        best_so_far=[best_curve[i] for i in keep],
        sampled=len(keep) < len(done),
    )

    # Parallel coordinates: the best trials always, a fixed random sample of the rest
    # (a quarter as many lines as history points: each line is drawn across every axis).
    finite = [i for i, p in enumerate(done) if p[3] is not None and math.isfinite(p[3])]
    ranked = sorted(finite, key=lambda i: done[i][3], reverse=direction == "max")
    lines = max(10, max_points // 4)
    top = set(ranked[: lines // 5])
    chosen = _sample(finite, top, lines, seed=study_id + 1)
    parallel = Parallel(
        trial_id=[done[i][0] for i in chosen],
        alpha=[done[i][4] for i in chosen],
        beta1=[done[i][5] for i in chosen],
        lr=[done[i][6] for i in chosen],
        metric=[done[i][3] for i in chosen],
        sampled=len(chosen) < len(finite),
    )

    # Flatness of the best trial of every study of the same job and batch size.
    flatness = []
    for other in uow.studies.for_job(study.job_id):
        if other.batch_size != study.batch_size:
            continue
        figures = uow.trials.flatness(other.best_trial_id) if other.best_trial_id else None
        flatness.append(
            FlatnessRow(
                optimizer=other.optimizer,
                study_id=other.id,
                trial_id=other.best_trial_id,
                metric=other.best_metric,
                flatness=figures,
            )
        )
    return StudySummary(
        study=study,
        job=job,
        metric_name=metric_name,
        direction=direction,
        counts=counts,
        history=history,
        parallel=parallel,
        flatness=flatness,
    )
