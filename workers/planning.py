"""Planning a job: which studies run, with what resources, and which trials are left. Pure
functions of the job's spec and of the trial records an earlier attempt left: no database,
no Ray (the dispatcher reads, calls these, and hands the plans to workers/tuning.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from service.core.statuses import TRIAL_FINISHED, TrialStatus
from service.jobs.spec import ArmSpec, EarlyStopping, JobSpec
from service.trials.repository import Trial, TrialEpoch
from workers import search
from workers.scoring import objective
from workers.tasks import Task
from workers.trainable import TrialConfig
from workers.tuning import PriorTrial, StudyPlan


@dataclass(frozen=True)
class Resources:
    """What each trial asks of the cluster, and how many run at once."""

    cpus: float
    gpus: float
    max_concurrent: int


def resources(spec: JobSpec, cluster_cpus: float | None) -> Resources:
    """The spec's per-trial resources; at most as many trials at once as the cluster's CPUs
    hold, unless the spec says how many."""
    cpus, gpus = spec.resources.cpu, spec.resources.gpu
    limit = spec.max_concurrent_trials
    if limit is None:
        limit = max(1, int((cluster_cpus or os.cpu_count() or 1) // cpus))
    return Resources(cpus, gpus, limit)


def study_name(job_id: int, batch_size: int, optimizer: str | None = None) -> str:
    """The Optuna study's name (also the Tuner's, without an optimizer)."""
    name = f"job{job_id}-bs{batch_size}"
    return name if optimizer is None else f"{name}-{optimizer}"


def epochs(spec: JobSpec, task: Task) -> int:
    return spec.epochs_per_trial or task.default_epochs


def trial_template(
    spec: JobSpec, task: Task, data_dir: str, batch_size: int, optimizer: str, seed: int
) -> TrialConfig:
    """A study's trial config before the search fills in ``params`` and ``hyper``."""
    return TrialConfig(
        task=task.name,
        batch_size=batch_size,
        optimizer=optimizer,
        epochs=epochs(spec, task),
        seed=seed,
        data_dir=data_dir,
        threads=max(1, int(spec.resources.cpu)),
        use_gpu=spec.resources.gpu > 0,
        bf16=spec.bf16,
        clip_norm=spec.clip_norm,
    )


@dataclass(frozen=True)
class StudyState:
    """What an earlier attempt left of a study."""

    interrupted: list[Trial]  # running when its worker died: failed now, run again
    searched: list[Trial]  # finished trials of the search (its first seed), kept
    next_number: int  # trial numbers are never reused


def study_state(trials: Sequence[Trial], first_seed: int) -> StudyState:
    return StudyState(
        interrupted=[t for t in trials if t.status == TrialStatus.RUNNING],
        searched=[t for t in trials if t.seed == first_seed and t.status in TRIAL_FINISHED],
        next_number=max((t.number for t in trials), default=-1) + 1,
    )


def prior_trial(trial: Trial, epochs: Sequence[TrialEpoch], task: Task) -> PriorTrial:
    """A finished trial as the new search is told about it (pruned ones as pruned)."""
    intermediate = {e.epoch: objective(e.metric, task) for e in epochs}
    value = None if trial.status == TrialStatus.PRUNED else objective(trial.final_metric, task)
    return PriorTrial(trial.params, value, intermediate)


def study_plan(
    *,
    job_id: int,
    spec: JobSpec,
    task: Task,
    data_dir: str,
    batch_size: int,
    arm: ArmSpec,
    state: StudyState,
    epochs_of: Mapping[int, Sequence[TrialEpoch]],
    known: Sequence[tuple[int, dict[str, float]]],
    baseline: Sequence[tuple[int, dict[str, float]]] = (),
) -> StudyPlan:
    """The rest of a study's search: its budget less the trials already searched, warm
    started from the paper's defaults, the paper's alpha and beta1 at the ``baseline``
    arm's best lr, and the settings ``known`` at other batch sizes (both (batch size,
    settings) pairs), with the searched trials fed back as its history."""
    space = search.space_for(arm.optimizer, task, arm.search)
    seed = spec.seeds[0]
    return StudyPlan(
        name=study_name(job_id, batch_size, arm.optimizer),
        trial=trial_template(spec, task, data_dir, batch_size, arm.optimizer, seed),
        space=space,
        num_trials=max(0, spec.trials_per_study - len(state.searched)),
        first_number=state.next_number,
        warm_start=search.warm_start(space, batch_size, task, list(known), list(baseline)),
        prior=[prior_trial(t, epochs_of.get(t.id, ()), task) for t in state.searched if t.params],
        seed=seed,
        early_stopping=spec.early_stopping,
    )


def reevaluation_plan(
    plan: StudyPlan, trials: Sequence[Trial], candidates: Sequence[Trial], seed: int
) -> StudyPlan | None:
    """The study's best settings (``candidates``) run again with ``seed``, except those
    that already ran with it; None when nothing is left to run."""
    done = {(_key(t.params), t.seed) for t in trials if t.status in TRIAL_FINISHED}
    todo = [t.params for t in candidates if (_key(t.params), seed) not in done]
    if not todo:
        return None
    return replace(
        plan,
        name=f"{plan.name}-seed{seed}",
        trial=replace(plan.trial, seed=seed),
        num_trials=len(todo),
        first_number=max(t.number for t in trials) + 1,
        warm_start=todo,
        prior=[],
        seed=seed,
        early_stopping=EarlyStopping(enabled=False),
    )


def _key(params: dict[str, float]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted(params.items()))
