"""Scoring a study's trials: the best trial, the re-evaluated best mean, the uplift over the
baseline and the recommendations. Pure functions of trial records: no database, no Ray.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from service.core.statuses import TRIAL_FINISHED, TrialStatus
from service.trials.repository import Trial
from workers.tasks import Task

BASELINE = "lamb"


@dataclass(frozen=True)
class ArmResult:
    """What one study (a batch size and an optimizer arm) recommends."""

    optimizer: str
    study_id: int
    best_trial_id: int
    settings: dict[str, float]
    metric: float
    metric_std: float | None
    n_trials: int


@dataclass(frozen=True)
class NewRecommendation:
    """A recommendation to store: the arm's result set against the baseline's."""

    task: str
    batch_size: int
    optimizer: str
    settings: dict[str, float]
    metric: float
    metric_std: float | None
    baseline_optimizer: str | None
    baseline_metric: float | None
    uplift: float | None
    n_trials: int
    job_id: int
    study_id: int
    best_trial_id: int


def objective(metric: float | None, task: Task) -> float:
    """The value the search optimises: a diverged or missing metric is the task's worst."""
    if metric is None or not math.isfinite(metric):
        return task.worst_value
    return metric


def best_metric(metrics: Sequence[float | None], direction: str) -> float | None:
    """The best finite metric in the direction of the task (None when there is none)."""
    values = [m for m in metrics if m is not None and math.isfinite(m)]
    if not values:
        return None
    return max(values) if direction == "max" else min(values)


def best_trials(trials: Sequence[Trial], seed: int, direction: str, n: int) -> list[Trial]:
    """The search's completed trials (run with ``seed``) best first, at most ``n``; a tie
    goes to the earlier trial."""
    done = [
        t
        for t in trials
        if t.status == TrialStatus.COMPLETED
        and t.seed == seed
        and t.final_metric is not None
        and math.isfinite(t.final_metric)
    ]
    sign = -1.0 if direction == "max" else 1.0
    done.sort(key=lambda t: (sign * (t.final_metric or 0.0), t.number))
    return done[: max(1, n)]


def best_mean(
    trials: Sequence[Trial], candidates: Sequence[Trial], task: Task
) -> tuple[Trial, float, float]:
    """The candidate setting with the best mean over every seed it ran with: (its search
    trial, the mean, the sample standard deviation, 0 for one seed)."""
    scores = []
    for candidate in candidates:
        values = [
            objective(t.final_metric, task)
            for t in trials
            if t.params == candidate.params and t.status in TRIAL_FINISHED
        ]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        scores.append((statistics.fmean(values), spread, candidate))
    pick = max if task.direction == "max" else min
    mean, spread, best = pick(scores, key=lambda s: s[0])
    return best, mean, spread


def uplift(metric: float, baseline: float, direction: str) -> float:
    """How much better than the baseline, positive when better in either direction."""
    return metric - baseline if direction == "max" else baseline - metric


def recommendations(
    task: Task,
    job_id: int,
    batch_size: int,
    results: Mapping[str, ArmResult],
    written: set[str],
) -> list[NewRecommendation]:
    """One recommendation per arm with a result that is not ``written`` yet; every arm
    but the baseline is set against the baseline's result when there is one."""
    baseline = results.get(BASELINE)
    out = []
    for name, result in results.items():
        if name in written:
            continue
        base = baseline.metric if baseline is not None and name != BASELINE else None
        out.append(
            NewRecommendation(
                task=task.name,
                batch_size=batch_size,
                optimizer=name,
                settings=result.settings,
                metric=result.metric,
                metric_std=result.metric_std,
                baseline_optimizer=BASELINE if base is not None else None,
                baseline_metric=base,
                uplift=None if base is None else uplift(result.metric, base, task.direction),
                n_trials=result.n_trials,
                job_id=job_id,
                study_id=result.study_id,
                best_trial_id=result.best_trial_id,
            )
        )
    return out


def failure_text(trials: Sequence[Trial], batch_size: int, optimizer: str) -> str:
    """Why a study has no result at all: the first error of its failed trials."""
    errors = [t.error for t in trials if t.status == TrialStatus.FAILED and t.error]
    detail = errors[0] if errors else "no trial completed"
    return f"no trial of {optimizer} at batch size {batch_size} completed: {detail}"
