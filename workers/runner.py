"""One claimed job, run to the end: read what the database holds, ask workers/planning.py
what to run, hand the plans to Ray Tune (workers/tuning.py), stream every trial into the
database as it happens, ask workers/scoring.py what was found, and record it.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from service.core.config import Settings
from service.core.statuses import TRIAL_FINISHED, StudyStatus, TrialStatus
from service.jobs.repository import Job
from service.jobs.spec import ArmSpec
from service.storage import Database
from service.trials.repository import Trial
from workers import planning, scoring, tuning
from workers.scoring import ArmResult
from workers.tasks import Task, get_task
from workers.trainable import DRIFT_WINDOW

log = logging.getLogger(__name__)


class JobStopped(Exception):
    """The job must stop now: cancelled, its lease lost, or the worker shutting down."""


class JobFailed(Exception):
    """The job cannot produce results (e.g. every trial of a study failed)."""


class JobRunner:
    """Runs one claimed job to the end (or until ``stop`` is set): reads what the database
    holds, asks planning.py what to run and scoring.py what it found, and records both."""

    def __init__(
        self,
        database: Database,
        settings: Settings,
        job: Job,
        stop: threading.Event,
        cluster_cpus: float | None,
        on_trial_end: Callable[[Trial], None] | None = None,
    ) -> None:
        self.database, self.job, self.stop = database, job, stop
        self.spec = job.spec
        self.task: Task = get_task(self.spec.task)
        self.data_dir = str(settings.datasets_path)
        self.resources = planning.resources(self.spec, cluster_cpus)
        self.storage_path, self.optuna_url = settings.ray_storage_path, settings.optuna_url
        self.on_trial_end = on_trial_end
        self._studies: dict[str, int] = {}  # Optuna study name -> our study id

    # --- the job -----------------------------------------------------------------
    def run(self) -> None:
        """Batch size by batch size: one Tuner runs the studies of every arm together,
        then the batch size's recommendations are written (and inform the warm start of
        the next batch size)."""
        for batch_size in self.spec.batch_sizes:
            self._check_stop()
            plans = [self._plan(batch_size, arm) for arm in self.spec.arms]
            self._tune(planning.study_name(self.job.id, batch_size), [p for p, _ in plans])
            results = {}
            for plan, study_id in plans:
                result = self._finish_study(study_id, batch_size, plan)
                if result is not None:
                    results[result.optimizer] = result
            scored = [(p, s) for p, s in plans if p.trial.optimizer in results]
            self._reevaluate(batch_size, scored, results)
            self._write_recommendations(batch_size, results)

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise JobStopped

    def _tune(self, name: str, plans: list[tuning.StudyPlan]) -> None:
        run = tuning.TuneRun(
            name=name,
            studies=plans,
            direction=self.task.direction,
            cpus=self.resources.cpus,
            gpus=self.resources.gpus,
            max_concurrent=self.resources.max_concurrent,
            storage_path=self.storage_path,
            optuna_storage=self.optuna_url,
        )
        tuning.run_studies(run, self._recorder(), self.stop)
        self._check_stop()

    def _trials(self, study_id: int) -> list[Trial]:
        with self.database.unit_of_work() as uow:
            return uow.trials.for_study(study_id)

    # --- one study -----------------------------------------------------------------
    def _plan(self, batch_size: int, arm: ArmSpec) -> tuple[tuning.StudyPlan, int]:
        """The study's row, and what is left of its search (after an earlier attempt:
        finished trials are kept and fed back; interrupted ones are run again)."""
        with self.database.unit_of_work(write=True) as uow:
            study = uow.studies.ensure(
                self.job.id, batch_size, arm.optimizer, self.spec.trials_per_study
            )
            state = planning.study_state(uow.trials.for_study(study.id), self.spec.seeds[0])
            for t in state.interrupted:
                uow.trials.record(
                    study_id=study.id,
                    job_id=self.job.id,
                    number=t.number,
                    status=TrialStatus.FAILED,
                    error="interrupted: its worker was lost",
                )
            uow.jobs.refresh_progress(self.job.id, more_trials=len(state.interrupted))
            uow.studies.update(study.id, status=StudyStatus.RUNNING)
            epochs_of = uow.trials.epochs_of([t.id for t in state.searched])
            known = [
                (r.batch_size, r.settings)
                for r in uow.recommendations.latest(self.task.name, arm.optimizer)
            ]
            baseline = (
                []
                if arm.optimizer == scoring.BASELINE
                else [
                    (r.batch_size, r.settings)
                    for r in uow.recommendations.latest(self.task.name, scoring.BASELINE)
                ]
            )
        plan = planning.study_plan(
            job_id=self.job.id,
            spec=self.spec,
            task=self.task,
            data_dir=self.data_dir,
            batch_size=batch_size,
            arm=arm,
            state=state,
            epochs_of=epochs_of,
            known=known,
            baseline=baseline,
        )
        self._studies[plan.name] = study.id
        return plan, study.id

    def _finish_study(
        self, study_id: int, batch_size: int, plan: tuning.StudyPlan
    ) -> ArmResult | None:
        """The study's best completed trial (None when every trial diverged: a result, not
        an error). Fails the job only when no trial ran at all (every one errored)."""
        optimizer = plan.trial.optimizer
        trials = self._trials(study_id)
        top = scoring.best_trials(trials, self.spec.seeds[0], self.task.direction, 1)
        if not top and not any(t.status in TRIAL_FINISHED for t in trials):
            raise JobFailed(scoring.failure_text(trials, batch_size, optimizer))
        best = top[0] if top else None
        if best is not None:
            self._measure_flatness(best, plan)
        with self.database.unit_of_work(write=True) as uow:
            uow.studies.update(
                study_id,
                status=StudyStatus.DONE,
                trials_done=len(trials),
                best_trial_id=best.id if best else None,
                best_metric=best.final_metric if best else None,
            )
        if best is None or best.final_metric is None:
            return None
        settings = plan.space.hyper(best.params)
        return ArmResult(
            optimizer, study_id, best.id, settings, best.final_metric, None, len(trials)
        )

    def _reevaluate(
        self,
        batch_size: int,
        plans: list[tuple[tuning.StudyPlan, int]],
        results: dict[str, ArmResult],
    ) -> None:
        """Run each study's top settings with the other seeds (one Tuner per seed, all arms
        together) and recommend the setting with the best mean."""
        top_n, seeds = self.spec.reevaluate_top, self.spec.seeds
        if top_n == 0 or len(seeds) < 2:
            return
        for seed in seeds[1:]:
            again = []
            for plan, study_id in plans:
                trials = self._trials(study_id)
                top = scoring.best_trials(trials, seeds[0], self.task.direction, top_n)
                extra = planning.reevaluation_plan(plan, trials, top, seed)
                if extra is not None:
                    self._studies[extra.name] = study_id
                    again.append(extra)
            self._tune(f"{planning.study_name(self.job.id, batch_size)}-seed{seed}", again)
        for plan, study_id in plans:
            trials = self._trials(study_id)
            top = scoring.best_trials(trials, seeds[0], self.task.direction, top_n)
            best, mean, spread = scoring.best_mean(trials, top, self.task)
            self._measure_flatness(best, plan)
            with self.database.unit_of_work(write=True) as uow:
                uow.studies.update(study_id, best_trial_id=best.id, best_metric=mean)
            optimizer = plan.trial.optimizer
            settings = plan.space.hyper(best.params)
            results[optimizer] = ArmResult(
                optimizer, study_id, best.id, settings, mean, spread, len(trials)
            )

    def _measure_flatness(self, trial: Trial, plan: tuning.StudyPlan) -> None:
        """Top Hessian eigenvalue of the best trial's final weights (drift is recorded for
        every trial as it ends)."""
        with self.database.unit_of_work() as uow:
            known = uow.trials.flatness(trial.id)
        if known is not None and known.eigen_iterations > 0:
            return
        if not trial.checkpoint or not Path(trial.checkpoint).exists():
            log.warning("no checkpoint for trial %s: its eigenvalue is not measured", trial.id)
            return
        config = replace(
            plan.trial,
            seed=trial.seed or 0,
            params=trial.params,
            hyper=plan.space.hyper(trial.params),
        )
        try:
            figures = tuning.flatness_of(
                config, trial.checkpoint, self.resources.cpus, self.resources.gpus
            )
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
        """One unit of work per event, reading nothing but the trial row it upserts: the
        event carries the trial's best metric, and progress is counted in SQL."""
        hyper = event.hyper
        fields: dict[str, Any] = {
            "params": event.params,
            "alpha": hyper.get("alpha"),
            "beta1": hyper.get("beta1"),
            "lr": hyper.get("lr"),
        }
        result = event.result or {}
        if kind == "start":
            fields.update(status=TrialStatus.RUNNING, seed=event.seed)
        if result:
            fields.update(
                epochs_run=int(result.get("epoch", 0)),
                steps=result.get("steps"),
                final_train_loss=result.get("train_loss"),
                final_metric=result.get("metric"),
                wall_time_s=result.get("elapsed_s"),
                node=result.get("node"),
                device=result.get("device"),
            )
        if kind == "epoch" and result:
            fields["best_metric"] = event.best_metric
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
            if kind == "end":
                if result:
                    uow.trials.record_flatness(
                        trial.id,
                        drift_from_start=result.get("drift_from_start"),
                        drift_over_window=result.get("drift_over_window"),
                        method=f"drift over epochs (window {DRIFT_WINDOW})",
                    )
                uow.jobs.refresh_progress(self.job.id)
                uow.studies.refresh_progress(study_id)
        if kind == "end" and self.on_trial_end is not None:
            self.on_trial_end(trial)

    # --- recommendations -------------------------------------------------------------
    def _write_recommendations(self, batch_size: int, results: dict[str, ArmResult]) -> None:
        with self.database.unit_of_work(write=True) as uow:
            written = {
                r.optimizer
                for r in uow.recommendations.for_job(self.job.id)
                if r.batch_size == batch_size
            }
            for new in scoring.recommendations(
                self.task, self.job.id, batch_size, results, written
            ):
                uow.recommendations.add(**asdict(new))
