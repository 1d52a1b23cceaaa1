"""The job dispatcher (`alto worker`): claim a queued job, keep its lease alive, run its
studies through Ray Tune, stream every trial into the database, write recommendations.

Leases make the queue safe: a worker renews its lease every few seconds; if it dies,
the lease expires and another worker claims the job and resumes it. Finished trials
stay in the database, are fed back to the new search and are not re-run; a trial
that was running when its worker died is recorded as failed ("interrupted") and its
budget slot is run again under a new number, so no trial number is ever reused.
"""

from __future__ import annotations

import ctypes
import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import statistics
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.catalogue.repository import OptimizerInfo, TaskInfo
from service.core.config import Settings
from service.jobs.repository import Job, LeaseLost
from service.storage import Database
from service.trials.repository import Trial
from workers import search, tuning
from workers.tasks import Task, get_task, registered_tasks
from workers.trainable import DRIFT_WINDOW

log = logging.getLogger(__name__)

FINISHED = ("completed", "pruned", "diverged")
BASELINE = "lamb"


class JobStopped(Exception):
    """The job must stop now: cancelled, its lease lost, or the worker shutting down."""


class JobFailed(Exception):
    """The job cannot produce results (e.g. every trial of a study failed)."""


def publish_catalogue(database: Database, worker: str) -> None:
    tasks = [TaskInfo(**t.catalogue_entry()) for t in registered_tasks().values()]
    optimizers = [OptimizerInfo(**o) for o in search.catalogue_entries()]
    with database.unit_of_work(write=True) as uow:
        uow.catalogue.publish_tasks(tasks, publisher=worker)
        uow.catalogue.publish_optimizers(optimizers)


class LeaseKeeper(threading.Thread):
    """Renews the job's lease and watches for a cancel request."""

    def __init__(
        self,
        database: Database,
        job_id: int,
        worker: str,
        settings: Settings,
        stop: threading.Event,
    ) -> None:
        super().__init__(name=f"lease-{job_id}", daemon=True)
        self.database, self.job_id, self.worker = database, job_id, worker
        self.lease_seconds, self.period = settings.lease_seconds, settings.heartbeat_period
        self.stop_job = stop
        self.reason: str | None = None
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.period):
            try:
                with self.database.unit_of_work(write=True) as uow:
                    job = uow.jobs.heartbeat(self.job_id, self.worker, self.lease_seconds)
                if job.cancel_requested:
                    self._halt("cancelled")
            except LeaseLost:
                self._halt("lease-lost")
            except Exception:  # a database hiccup: the next beat tries again
                log.exception("heartbeat of job %s failed", self.job_id)

    def _halt(self, reason: str) -> None:
        self.reason = self.reason or reason
        self.stop_job.set()
        self._done.set()

    def close(self) -> None:
        self._done.set()
        self.join(timeout=30)


@dataclass(frozen=True)
class ArmResult:
    optimizer: str
    study_id: int
    best_trial_id: int | None
    settings: dict[str, float] | None
    metric: float | None
    metric_std: float | None
    n_trials: int


def _key(params: dict[str, float]) -> tuple:
    return tuple(sorted(params.items()))


class JobRunner:
    """Runs one claimed job to the end (or until ``stop`` is set)."""

    def __init__(
        self,
        database: Database,
        settings: Settings,
        job: Job,
        worker: str,
        stop: threading.Event,
        on_trial_end: Callable[[Trial], None] | None = None,
        cluster_cpus: float | None = None,
    ) -> None:
        self.database, self.settings, self.job, self.worker = database, settings, job, worker
        self.stop = stop
        self.spec = job.spec
        self.task: Task = get_task(self.spec["task"])
        self.epochs = int(self.spec.get("epochs_per_trial") or self.task.default_epochs)
        self.seeds = list(self.spec.get("seeds") or [0])
        self.on_trial_end = on_trial_end
        self.cluster_cpus = cluster_cpus
        self._studies: dict[str, int] = {}  # Optuna study name -> our study id

    # --- the job -----------------------------------------------------------------
    def run(self) -> None:
        """Batch size by batch size: one Tuner runs the studies of every arm together,
        then the batch size's recommendations are written (and inform the warm start of
        the next batch size)."""
        for batch_size in self.spec["batch_sizes"]:
            self._check_stop()
            plans = [self._plan(batch_size, arm) for arm in self.spec["arms"]]
            self._tune(f"job{self.job.id}-bs{batch_size}", [plan for plan, _ in plans])
            results = {}
            for plan, study_id in plans:
                result = self._finish_study(study_id, batch_size, plan)
                if result is not None:
                    results[plan.name] = result
            self._reevaluate(batch_size, [p for p in plans if p[0].name in results], results)
            self.write_recommendations(batch_size, {r.optimizer: r for r in results.values()})

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise JobStopped

    def _resources(self) -> tuple[float, float, int]:
        resources = self.spec.get("resources") or {}
        cpus, gpus = float(resources.get("cpu", 1.0)), float(resources.get("gpu", 0.0))
        limit = self.spec.get("max_concurrent_trials")
        if limit is None:
            limit = max(1, int((self.cluster_cpus or os.cpu_count() or 1) // cpus))
        return cpus, gpus, int(limit)

    def trial_config(self, batch_size: int, optimizer: str, seed: int) -> dict[str, Any]:
        cpus, gpus, _ = self._resources()
        return {
            "task": self.task.name,
            "batch_size": batch_size,
            "optimizer": optimizer,
            "epochs": self.epochs,
            "seed": seed,
            "data_dir": str(self.settings.datasets_path),
            "threads": max(1, int(cpus)),
            "use_gpu": gpus > 0,
            "bf16": bool(self.spec.get("bf16", False)),
            "clip_norm": self.spec.get("clip_norm"),
        }

    def _tune(self, name: str, plans: list[tuning.StudyPlan]) -> None:
        cpus, gpus, limit = self._resources()
        run = tuning.TuneRun(
            name=name,
            studies=plans,
            direction=self.task.direction,
            cpus=cpus,
            gpus=gpus,
            max_concurrent=limit,
            storage_path=self.settings.ray_storage_path,
            optuna_storage=self.settings.optuna_url,
        )
        tuning.run_studies(run, self._recorder(), self.stop)
        self._check_stop()

    # --- one study -----------------------------------------------------------------
    def _plan(self, batch_size: int, arm: dict[str, Any]) -> tuple[tuning.StudyPlan, int]:
        """The study's row, and what is left of its search (after an earlier attempt:
        finished trials are kept and fed back; interrupted ones are run again)."""
        optimizer = arm["optimizer"]
        per_study = int(self.spec["trials_per_study"])
        with self.database.unit_of_work(write=True) as uow:
            study = uow.studies.ensure(self.job.id, batch_size, optimizer, per_study)
            trials = uow.trials.for_study(study.id)
            interrupted = [t for t in trials if t.status == "running"]
            for t in interrupted:
                uow.trials.record(
                    study_id=study.id,
                    job_id=self.job.id,
                    number=t.number,
                    status="failed",
                    error="interrupted: its worker was lost",
                )
            if interrupted:
                uow.jobs.set_progress(
                    self.job.id, self._done_count(uow), self.job.trials_total + len(interrupted)
                )
            uow.studies.update(study.id, status="running")
            known = [
                (r.batch_size, r.settings)
                for r in uow.recommendations.latest(self.task.name, optimizer)
            ]
        space = search.space_for(optimizer, self.task, arm.get("search") or {})
        searched = [t for t in trials if t.seed == self.seeds[0] and t.status in FINISHED]
        name = f"job{self.job.id}-bs{batch_size}-{optimizer}"
        self._studies[name] = study.id
        plan = tuning.StudyPlan(
            name=name,
            trial_config=self.trial_config(batch_size, optimizer, self.seeds[0]),
            space=space,
            num_trials=max(0, per_study - len(searched)),
            first_number=max((t.number for t in trials), default=-1) + 1,
            warm_start=search.warm_start(space, batch_size, self.task, known),
            prior=[self._prior(t) for t in searched if t.params],
            seed=self.seeds[0],
            early_stopping=self.spec.get("early_stopping") or {},
        )
        return plan, study.id

    def _finish_study(
        self, study_id: int, batch_size: int, plan: tuning.StudyPlan
    ) -> ArmResult | None:
        """The study's best completed trial (None when every trial diverged: a result, not
        an error). Fails the job only when no trial ran at all (every one errored)."""
        optimizer = plan.trial_config["optimizer"]
        with self.database.unit_of_work() as uow:
            trials = uow.trials.for_study(study_id)
        top = self._best_configs(study_id)
        if not top and not any(t.status in FINISHED for t in trials):
            raise JobFailed(self._failure_text(study_id, batch_size, optimizer))
        best = top[0] if top else None
        if best is not None:
            self._measure_flatness(best, batch_size, optimizer)
        with self.database.unit_of_work(write=True) as uow:
            uow.studies.update(
                study_id,
                status="done",
                trials_done=len(trials),
                best_trial_id=best.id if best else None,
                best_metric=best.final_metric if best else None,
            )
        if best is None:
            return None
        return ArmResult(
            optimizer,
            study_id,
            best.id,
            plan.space.hyper(best.params),
            best.final_metric,
            None,
            len(trials),
        )

    def _prior(self, trial: Trial) -> tuning.PriorTrial:
        with self.database.unit_of_work() as uow:
            epochs = uow.trials.get(trial.id).epochs
        intermediate = {e.epoch: self._objective(e.metric) for e in epochs}
        if trial.status == "pruned":
            return tuning.PriorTrial(trial.params, None, intermediate)
        return tuning.PriorTrial(trial.params, self._objective(trial.final_metric), intermediate)

    def _objective(self, metric: float | None) -> float:
        if metric is None or not math.isfinite(metric):
            return self.task.worst_value
        return metric

    def _best_configs(self, study_id: int) -> list[Trial]:
        """Completed search trials, best first (as many as will be re-evaluated)."""
        with self.database.unit_of_work() as uow:
            trials = uow.trials.for_study(study_id)
        done = [
            t
            for t in trials
            if t.status == "completed"
            and t.seed == self.seeds[0]
            and t.final_metric is not None
            and math.isfinite(t.final_metric)
        ]
        sign = -1.0 if self.task.direction == "max" else 1.0
        done.sort(key=lambda t: (sign * t.final_metric, t.number))
        return done[: max(1, int(self.spec.get("reevaluate_top") or 0))]

    def _reevaluate(
        self,
        batch_size: int,
        plans: list[tuple[tuning.StudyPlan, int]],
        results: dict[str, ArmResult],
    ) -> None:
        """Run each study's top settings with the other seeds (one Tuner per seed, all arms
        together) and recommend the setting with the best mean."""
        top_n = int(self.spec.get("reevaluate_top") or 0)
        if top_n == 0 or len(self.seeds) < 2:
            return
        for seed in self.seeds[1:]:
            extra = []
            for plan, study_id in plans:
                with self.database.unit_of_work() as uow:
                    trials = uow.trials.for_study(study_id)
                done = {(_key(t.params), t.seed) for t in trials if t.status in FINISHED}
                todo = [
                    t.params
                    for t in self._best_configs(study_id)
                    if (_key(t.params), seed) not in done
                ]
                if not todo:
                    continue
                name = f"{plan.name}-seed{seed}"
                self._studies[name] = study_id
                extra.append(
                    tuning.StudyPlan(
                        name=name,
                        trial_config={**plan.trial_config, "seed": seed},
                        space=plan.space,
                        num_trials=len(todo),
                        first_number=max(t.number for t in trials) + 1,
                        warm_start=todo,
                        prior=[],
                        seed=seed,
                        early_stopping={"enabled": False},
                    )
                )
            self._tune(f"job{self.job.id}-bs{batch_size}-seed{seed}", extra)
        for plan, study_id in plans:
            with self.database.unit_of_work() as uow:
                trials = uow.trials.for_study(study_id)
            scores = []
            for candidate in self._best_configs(study_id):
                values = [
                    self._objective(t.final_metric)
                    for t in trials
                    if t.params == candidate.params and t.status in FINISHED
                ]
                spread = statistics.stdev(values) if len(values) > 1 else 0.0
                scores.append((statistics.fmean(values), spread, candidate))
            pick = max if self.task.direction == "max" else min
            mean, spread, best = pick(scores, key=lambda s: s[0])
            old = results[plan.name]
            self._measure_flatness(best, batch_size, old.optimizer)
            with self.database.unit_of_work(write=True) as uow:
                uow.studies.update(study_id, best_trial_id=best.id, best_metric=mean)
            results[plan.name] = ArmResult(
                old.optimizer,
                study_id,
                best.id,
                plan.space.hyper(best.params),
                mean,
                spread,
                len(trials),
            )

    def _measure_flatness(self, trial: Trial, batch_size: int, optimizer: str) -> None:
        """Top Hessian eigenvalue of the best trial's final weights (drift is recorded for
        every trial as it ends)."""
        with self.database.unit_of_work() as uow:
            known = uow.trials.flatness(trial.id)
        if known is not None and known.eigen_iterations > 0:
            return
        if not trial.checkpoint or not Path(trial.checkpoint).exists():
            log.warning("no checkpoint for trial %s: its eigenvalue is not measured", trial.id)
            return
        cpus, gpus, _ = self._resources()
        config = self.trial_config(batch_size, optimizer, trial.seed or 0)
        config["params"] = trial.params
        config["hyper"] = {
            k: v
            for k, v in (("lr", trial.lr), ("alpha", trial.alpha), ("beta1", trial.beta1))
            if v is not None
        }
        try:
            figures = tuning.flatness_of(config, trial.checkpoint, cpus, gpus)
        except Exception as exc:  # evidence we could not gather, not a failed job
            log.exception("measuring the eigenvalue of trial %s failed", trial.id)
            figures = {
                "top_eigenvalue": math.nan,
                "eigen_converged": False,
                "method": f"not measured: {type(exc).__name__}: {exc}"[:2000],
            }
        with self.database.unit_of_work(write=True) as uow:
            uow.trials.record_flatness(trial.id, **figures)

    # --- streaming trials into the database -------------------------------------------
    def _recorder(self) -> Callable[[str, tuning.TrialEvent], None]:
        def on_event(kind: str, event: tuning.TrialEvent) -> None:
            try:
                self._record(self._studies[event.study], kind, event)
            except Exception:
                log.exception("recording trial %s of %s failed", event.number, event.study)

        return on_event

    def _record(self, study_id: int, kind: str, event: tuning.TrialEvent) -> None:
        hyper = event.hyper
        fields: dict[str, Any] = {
            "params": event.params,
            "alpha": hyper.get("alpha"),
            "beta1": hyper.get("beta1"),
            "lr": hyper.get("lr"),
        }
        result = event.result or {}
        if kind == "start":
            fields.update(status="running", seed=event.seed)
        if result:
            fields.update(
                epochs_run=int(result.get("epoch", 0)),
                final_metric=result.get("metric"),
                wall_time_s=result.get("elapsed_s"),
                node=result.get("node"),
                device=result.get("device"),
            )
        if kind == "end":
            fields.update(status=event.status, error=event.error)
            if event.checkpoint_dir:
                fields["checkpoint"] = event.checkpoint_dir
        with self.database.unit_of_work(write=True) as uow:
            trial = uow.trials.record(
                study_id=study_id, job_id=self.job.id, number=event.number, **fields
            )
            if kind == "epoch" and result:
                uow.trials.record_epochs(
                    trial.id,
                    [
                        {
                            "epoch": int(result["epoch"]),
                            "metric": result.get("metric"),
                            "train_loss": result.get("train_loss"),
                            "wall_time_s": result.get("epoch_time_s"),
                        }
                    ],
                )
                best = self._best_metric(uow.trials.get(trial.id).epochs)
                uow.trials.record(
                    study_id=study_id, job_id=self.job.id, number=event.number, best_metric=best
                )
            if kind == "end":
                if result:
                    uow.trials.record_flatness(
                        trial.id,
                        drift_from_start=result.get("drift_from_start"),
                        drift_over_window=result.get("drift_over_window"),
                        method=f"drift over epochs (window {DRIFT_WINDOW})",
                    )
                uow.jobs.set_progress(self.job.id, self._done_count(uow))
                done = sum(1 for t in uow.trials.for_study(study_id) if t.status != "running")
                uow.studies.update(study_id, trials_done=done)
        if kind == "end" and self.on_trial_end is not None:
            self.on_trial_end(trial)

    def _best_metric(self, epochs: list) -> float | None:
        values = [e.metric for e in epochs if e.metric is not None and math.isfinite(e.metric)]
        if not values:
            return None
        return max(values) if self.task.direction == "max" else min(values)

    def _done_count(self, uow: Any) -> int:
        counts = uow.trials.counts_for_job(self.job.id)
        return sum(n for status, n in counts.items() if status != "running")

    def _failure_text(self, study_id: int, batch_size: int, optimizer: str) -> str:
        with self.database.unit_of_work() as uow:
            trials = uow.trials.for_study(study_id)
        errors = [t.error for t in trials if t.status == "failed" and t.error]
        detail = errors[0] if errors else "no trial completed"
        return f"no trial of {optimizer} at batch size {batch_size} completed: {detail}"

    # --- recommendations -------------------------------------------------------------
    def write_recommendations(self, batch_size: int, results: dict[str, ArmResult]) -> None:
        baseline = results.get(BASELINE)
        with self.database.unit_of_work(write=True) as uow:
            written = {
                (r.batch_size, r.optimizer) for r in uow.recommendations.for_job(self.job.id)
            }
            for name, result in results.items():
                if (batch_size, name) in written or result.settings is None:
                    continue
                base_metric = baseline.metric if baseline and name != BASELINE else None
                uplift = None
                if base_metric is not None and result.metric is not None:
                    uplift = result.metric - base_metric
                    if self.task.direction == "min":
                        uplift = -uplift
                uow.recommendations.add(
                    task=self.task.name,
                    batch_size=batch_size,
                    optimizer=name,
                    settings=result.settings,
                    metric=result.metric,
                    metric_std=result.metric_std,
                    baseline_optimizer=BASELINE if base_metric is not None else None,
                    baseline_metric=base_metric,
                    uplift=uplift,
                    n_trials=result.n_trials,
                    job_id=self.job.id,
                    study_id=result.study_id,
                    best_trial_id=result.best_trial_id,
                )


class Dispatcher:
    """`alto worker`: claim jobs and run them until told to stop.

    With ``concurrent_jobs`` 1 (the default) jobs run one after another in this process.
    With more, each job runs in a process of its own that joins the same Ray cluster:
    Ray Tune keeps process-wide state (its trainable registry among others) that two
    Tuners in one process trample, and Ray's own advice for several experiments on one
    cluster is one driver each.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        worker_id: str | None = None,
        max_jobs: int | None = None,
        exit_when_idle: bool = False,
        concurrent_jobs: int | None = None,
    ) -> None:
        self.settings = settings
        self.database = Database.from_settings(settings)
        self.worker = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.max_jobs = max_jobs
        self.exit_when_idle = exit_when_idle
        self.concurrent_jobs = concurrent_jobs or settings.worker_concurrent_jobs
        self.shutdown = threading.Event()
        self._job_stop: threading.Event | None = None

    def _on_signal(self, signum: int, _frame: Any) -> None:
        log.info("signal %s: finishing the current step and releasing the lease", signum)
        self.shutdown.set()
        if self._job_stop is not None:
            self._job_stop.set()

    def run(self) -> int:
        publish_catalogue(self.database, self.worker)
        address = self.settings.ray_address or os.environ.get("RAY_ADDRESS")
        resources = tuning.init_ray(address, self.settings.ray_num_cpus)
        # After ray.init, which installs handlers of its own.
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        log.info("worker %s on Ray with %s", self.worker, resources)
        try:
            if self.concurrent_jobs > 1:
                return self._run_pool(tuning.cluster_address(), resources.get("CPU"))
            return self._run_serial(resources.get("CPU"))
        finally:
            tuning.shutdown_ray()
            self.database.dispose()

    def _claim(self) -> Job | None:
        with self.database.unit_of_work(write=True) as uow:
            return uow.jobs.claim(
                self.worker,
                self.settings.lease_seconds,
                max_abandoned=self.settings.job_max_abandoned,
            )

    def _run_serial(self, cluster_cpus: float | None) -> int:
        done = 0
        while not self.shutdown.is_set():
            if self.max_jobs is not None and done >= self.max_jobs:
                break
            job = self._claim()
            if job is None:
                if self.exit_when_idle:
                    break
                self.shutdown.wait(self.settings.worker_poll_seconds)
                continue
            self.run_job(job, cluster_cpus)
            done += 1
        return done

    def _run_pool(self, address: str, cluster_cpus: float | None) -> int:
        """Up to ``concurrent_jobs`` jobs at once, each in its own process."""
        context = multiprocessing.get_context("spawn")
        running: dict[int, multiprocessing.process.BaseProcess] = {}
        started = 0
        try:
            while not self.shutdown.is_set():
                for job_id, process in list(running.items()):
                    if not process.is_alive():
                        process.join()
                        del running[job_id]
                        log.info("job %s: its process exited with %s", job_id, process.exitcode)
                        if process.exitcode != 0:
                            self._after_crash(job_id, process.exitcode)
                more = self.max_jobs is None or started < self.max_jobs
                job = self._claim() if more and len(running) < self.concurrent_jobs else None
                if job is not None:
                    process = context.Process(
                        target=_job_process,
                        args=(self.settings, job, self.worker, address, cluster_cpus, os.getpid()),
                        name=f"alto-job-{job.id}",
                    )
                    process.start()
                    running[job.id] = process
                    started += 1
                    continue
                if not running and (self.exit_when_idle or not more):
                    break
                # Wake when a job process ends, or to look for new jobs.
                multiprocessing.connection.wait(
                    [p.sentinel for p in running.values()], self.settings.worker_poll_seconds
                )
        finally:
            # SIGTERM makes each job process hand its job back (see _job_process).
            for process in running.values():
                process.terminate()
            for process in running.values():
                process.join()
        return started

    def _after_crash(self, job_id: int, exitcode: int | None) -> None:
        """A job process died (killed, out of memory, crashed) and left its job running under
        our lease. Hand it back now rather than when the lease expires, so this or another
        worker resumes it (its finished trials are in the database), unless it has been
        abandoned ``job_max_abandoned`` times: then it fails."""
        reason = f"its job process died (exit code {exitcode})"
        try:
            with self.database.unit_of_work(write=True) as uow:
                after = uow.jobs.abandon(
                    job_id, self.worker, self.settings.job_max_abandoned, reason
                )
        except LeaseLost:
            return  # it had finished or handed the job back itself, or another worker took it
        if after.status == "failed":
            log.error("job %s failed: %s", job_id, after.error)
        else:
            log.warning("job %s: %s; handed back to the queue", job_id, reason)

    def run_job(
        self,
        job: Job,
        cluster_cpus: float | None = None,
        on_trial_end: Callable[[Trial], None] | None = None,
    ) -> str:
        stop = threading.Event()
        self._job_stop = stop
        if self.shutdown.is_set():
            stop.set()
        keeper = LeaseKeeper(self.database, job.id, self.worker, self.settings, stop)
        keeper.start()
        outcome = "succeeded"
        error = None
        try:
            JobRunner(
                self.database,
                self.settings,
                job,
                self.worker,
                stop,
                on_trial_end=on_trial_end,
                cluster_cpus=cluster_cpus,
            ).run()
            if stop.is_set():
                raise JobStopped
        except JobStopped:
            outcome = keeper.reason or ("shutdown" if self.shutdown.is_set() else "cancelled")
        except Exception as exc:  # any failure of the job is the job's, not the worker's
            log.exception("job %s failed", job.id)
            outcome, error = "failed", f"{type(exc).__name__}: {exc}"[:4000]
        finally:
            keeper.close()
            self._job_stop = None
        try:
            with self.database.unit_of_work(write=True) as uow:
                if outcome == "shutdown":
                    uow.jobs.release(job.id, self.worker)
                elif outcome != "lease-lost":
                    if keeper.reason == "cancelled":
                        outcome = "cancelled"
                    uow.jobs.finish(job.id, self.worker, outcome, error)
        except LeaseLost:
            outcome = "lease-lost"
        log.info("job %s: %s", job.id, outcome)
        return outcome


def _die_with_parent(parent_pid: int) -> None:
    """A job process must not outlive its dispatcher: it would keep renewing the lease of
    a job that nobody can stop or hand back. On Linux the kernel kills it when the
    dispatcher dies, even by SIGKILL; elsewhere the lease keeper's next beat notices."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent_pid:  # it died before the line above took effect
        os._exit(1)


def _job_process(
    settings: Settings,
    job: Job,
    worker: str,
    address: str,
    cluster_cpus: float | None,
    parent_pid: int,
) -> None:
    """Run one claimed job in a process of its own, on the dispatcher's Ray cluster."""
    _die_with_parent(parent_pid)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    dispatcher = Dispatcher(settings, worker_id=worker)
    try:
        tuning.init_ray(address)
        signal.signal(signal.SIGTERM, dispatcher._on_signal)
        signal.signal(signal.SIGINT, dispatcher._on_signal)
        dispatcher.run_job(job, cluster_cpus)
    finally:
        tuning.shutdown_ray()
        dispatcher.database.dispose()
