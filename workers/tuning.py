"""Everything that touches Ray Tune: running Optuna studies through it, and measuring
flatness as a Ray task. Ray Tune's API moves, so it stays in this module (starting and
stopping Ray is workers/runtime.py's).

All studies of a job (one per batch size and optimizer arm) run in ONE ``tune.Tuner``:
a trial process pays for importing torch and Ray Tune and for warming up torch's
optimizers (about 8 s here) once per job instead of once per study, and
``reuse_actors=True`` hands it trial after trial. Each study keeps its own Optuna
search (``OptunaSearch``, multivariate TPE, seeded) and its own ASHA early stopping:
``_StudySearcher`` and ``_StudyScheduler`` route every trial to the study it belongs
to, so trials of different batch sizes or optimizers are never compared.
"""

from __future__ import annotations

import logging
import socket
import tempfile
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher
from ray.tune.stopper import Stopper

from service.core.statuses import TrialStatus
from service.jobs.spec import EarlyStopping
from workers.scoring import best_metric
from workers.search import SearchSpace
from workers.trainable import TrialConfig, measure_flatness, run_trial

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "state.pt"
STUDY_KEY = "study"
TRIAL_KEY = "trial"


# --- inside a trial process ---------------------------------------------------------------


class _TuneReporter:
    """The trainable's Reporter on top of ``ray.tune``."""

    def report(self, metrics: dict[str, Any], checkpoint: dict[str, Any] | None) -> None:
        if checkpoint is None:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as directory:
            torch.save(checkpoint, Path(directory) / CHECKPOINT_FILE)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))

    def placement(self) -> dict[str, str]:
        # Nodes of one machine (a loopback cluster, several pods on a host) share a host
        # name and an address; the node id tells them apart.
        node = (
            f"{socket.gethostname()} {ray.util.get_node_ip_address()} "
            f"node {ray.get_runtime_context().get_node_id()[:12]}"
        )
        return {"node": node, "gpus": ",".join(str(i) for i in ray.get_gpu_ids())}

    def restore(self) -> dict[str, Any] | None:
        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as directory:
            return torch.load(Path(directory) / CHECKPOINT_FILE, weights_only=False)


def _trainable(config: dict[str, Any]) -> None:
    # Trial processes import torch and this module, but neither Optuna nor its objects:
    # the searcher turned the sampled parameters into the optimizer's hyperparameters.
    run_trial(TrialConfig.decode(config[TRIAL_KEY]), _TuneReporter())


# --- what the dispatcher asks for -----------------------------------------------------------


@dataclass(frozen=True)
class PriorTrial:
    """A finished trial from an earlier attempt, fed back to the search."""

    params: dict[str, float]
    objective: float | None  # None: pruned
    intermediate: dict[int, float] = field(default_factory=dict)


@dataclass(frozen=True)
class StudyPlan:
    """One Optuna study: what to train, the space, and how many more trials to run."""

    name: str
    trial: TrialConfig  # without params and hyper: the search fills them in
    space: SearchSpace
    num_trials: int
    first_number: int
    warm_start: list[dict[str, float]]
    prior: list[PriorTrial]
    seed: int
    early_stopping: EarlyStopping


@dataclass(frozen=True)
class TuneRun:
    """Studies that run together in one Tuner."""

    name: str
    studies: list[StudyPlan]
    direction: str  # "max" or "min"
    cpus: float
    gpus: float
    max_concurrent: int
    storage_path: str
    optuna_storage: str


@dataclass
class TrialEvent:
    study: str
    number: int
    params: dict[str, float]
    hyper: dict[str, float]
    seed: int
    result: dict[str, Any] | None = None
    best_metric: float | None = None  # the best finite metric of its epochs so far
    status: TrialStatus | None = None  # set when it ended
    error: str | None = None
    checkpoint_dir: str | None = None


# --- Optuna ---------------------------------------------------------------------------------


def _optuna_study(plan: StudyPlan, direction: str) -> Any:
    """An in-memory Optuna study holding exactly the finished trials our database holds
    (also after another worker died mid-study). Searching in memory saves an RDB round
    trip per ask; ``_mirror`` copies the study to the Optuna RDB afterwards."""
    import optuna

    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(
        storage=storage,
        study_name=plan.name,
        direction="maximize" if direction == "max" else "minimize",
    )
    distributions: dict[str, optuna.distributions.BaseDistribution] = dict(plan.space.distributions)
    for prior in plan.prior:
        study.add_trial(
            optuna.trial.create_trial(
                params=prior.params,
                distributions=distributions,
                value=prior.objective,
                intermediate_values=prior.intermediate,
                state=optuna.trial.TrialState.PRUNED
                if prior.objective is None
                else optuna.trial.TrialState.COMPLETE,
            )
        )
    return storage


def _mirror(run: TuneRun, storages: dict[str, Any]) -> None:
    """Copy each study to the Optuna RDB, where optuna-dashboard can open it."""
    import optuna

    target = optuna.storages.RDBStorage(run.optuna_storage)
    try:
        for name, storage in storages.items():
            try:
                optuna.delete_study(study_name=name, storage=target)
            except KeyError:
                pass
            optuna.copy_study(from_study_name=name, from_storage=storage,
                              to_storage=target, to_study_name=name)  # fmt: skip
    finally:
        target.remove_session()
        target.engine.dispose()


def _sampler_seed(plan: StudyPlan) -> int:
    """The job's seed, made distinct per batch size and arm: with one seed for all, every
    study would draw the same random points, and a study warm-started with a neighbour's
    best (itself one of those points) would run that point twice."""
    key = f"{plan.seed}/{plan.trial.batch_size}/{plan.trial.optimizer}"
    return zlib.crc32(key.encode())


def _startup_trials(plan: StudyPlan) -> int:
    """Random trials before TPE models the space. Optuna's default of 10 would leave a
    small budget (the usual 8 to 24 trials per study) mostly or wholly random; the warm
    start and a third of the budget seed the model instead."""
    return max(len(plan.warm_start) + 1, min(10, plan.num_trials // 3))


class _StudySearcher(Searcher):
    """Several Optuna studies behind one Searcher: each trial is drawn from the first study
    that still has budget, and every result goes back to the study it came from."""

    def __init__(self, run: TuneRun, storages: dict[str, Any]) -> None:
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        super().__init__(metric="objective", mode=run.direction)
        self.plans = {plan.name: plan for plan in run.studies if plan.num_trials > 0}
        self.remaining = {name: plan.num_trials for name, plan in self.plans.items()}
        self.searchers = {
            name: OptunaSearch(
                space={f"p_{k}": v for k, v in plan.space.distributions.items()},
                metric="objective",
                mode=run.direction,
                points_to_evaluate=None
                if plan.prior or not plan.warm_start
                else [{f"p_{k}": v for k, v in p.items()} for p in plan.warm_start],
                sampler=optuna.samplers.TPESampler(
                    seed=_sampler_seed(plan),
                    multivariate=True,
                    n_startup_trials=_startup_trials(plan),
                ),
                study_name=name,
                storage=storages[name],
            )
            for name, plan in self.plans.items()
        }
        self.trial_study: dict[str, str] = {}

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict,
                              **spec: Any) -> bool:  # fmt: skip
        return True  # every study's space is already set

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        for name, left in self.remaining.items():
            if left > 0:
                sampled = self.searchers[name].suggest(trial_id)
                if sampled is None:
                    return None  # ask again later
                self.remaining[name] -= 1
                self.trial_study[trial_id] = name
                plan = self.plans[name]
                params = {k[2:]: float(v) for k, v in sampled.items()}
                trial = replace(plan.trial, params=params, hyper=plan.space.hyper(params))
                return {
                    **sampled,  # OptunaSearch matches results to its trials by these
                    STUDY_KEY: name,
                    "first_number": plan.first_number,
                    TRIAL_KEY: trial.encode(),
                }
        # Ray's sentinel is a str, returned from this Optional[Dict] method by Ray's own
        # searchers too.
        return Searcher.FINISHED  # type: ignore[return-value]

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.searchers[self.trial_study[trial_id]].on_trial_result(trial_id, result)

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: a resumed job rebuilds its searches from the database."""

    def restore(self, checkpoint_path: str) -> None:
        """See ``save``."""

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:  # fmt: skip
        self.searchers[self.trial_study[trial_id]].on_trial_complete(trial_id, result, error)


def grace_period(requested: int | None, epochs: int) -> int:
    """Epochs before ASHA may stop a trial: as requested, else a third of the epochs (at
    least 1). One epoch is too early at large batch sizes: an epoch of mnist1d at batch
    8192 is 5 optimizer steps, too few to rank trials by."""
    return min(epochs, requested or max(1, epochs // 3))


class _StudyScheduler(FIFOScheduler):
    """One early-stopping scheduler per study: ASHA compares a trial only with trials of
    its own batch size and optimizer."""

    def __init__(self, run: TuneRun) -> None:
        super().__init__()
        self.schedulers: dict[str, TrialScheduler] = {}
        for plan in run.studies:
            epochs = plan.trial.epochs
            stopping = plan.early_stopping
            if stopping.enabled and epochs > 1:
                self.schedulers[plan.name] = ASHAScheduler(
                    time_attr="training_iteration",
                    max_t=epochs,
                    grace_period=grace_period(stopping.grace_period, epochs),
                    reduction_factor=stopping.reduction_factor,
                )
            else:
                self.schedulers[plan.name] = FIFOScheduler()

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        for scheduler in self.schedulers.values():
            scheduler.set_search_properties(metric, mode, **spec)
        return super().set_search_properties(metric, mode, **spec)

    def _of(self, trial: Any) -> TrialScheduler:
        return self.schedulers[trial.config[STUDY_KEY]]

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._of(trial).on_trial_add(tune_controller, trial)

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        self._of(trial).on_trial_error(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        return self._of(trial).on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        self._of(trial).on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self._of(trial).on_trial_remove(tune_controller, trial)


# --- running ----------------------------------------------------------------------------------

# Tune pickles its run configuration, and locks and database handles do not pickle: the
# callback and the stopper find the live objects by key instead.
_LIVE: dict[str, tuple[Callable[[str, TrialEvent], None], threading.Event]] = {}


def run_studies(
    run: TuneRun,
    on_event: Callable[[str, TrialEvent], None],
    stop: threading.Event,
) -> None:
    """Run the remaining trials of every study; ``on_event(kind, event)`` is called with
    kind "start", "epoch" or "end" as trials progress (in the Tune driver loop)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    plans = [plan for plan in run.studies if plan.num_trials > 0]
    if not plans:
        return
    storages = {plan.name: _optuna_study(plan, run.direction) for plan in plans}
    key = f"{run.name}-{id(stop)}"
    _LIVE[key] = (on_event, stop)
    epochs = {plan.name: plan.trial.epochs for plan in plans}
    tuner = tune.Tuner(
        tune.with_resources(_trainable, {"cpu": run.cpus, "gpu": run.gpus}),
        tune_config=tune.TuneConfig(
            metric="objective",
            mode=run.direction,
            search_alg=_StudySearcher(run, storages),
            scheduler=_StudyScheduler(run),
            num_samples=sum(plan.num_trials for plan in plans),
            max_concurrent_trials=run.max_concurrent,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=run.name,
            storage_path=run.storage_path,
            callbacks=[_EventCallback(key, epochs, run.direction)],
            stop=_StopAll(key),
            verbose=0,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
        ),
    )
    try:
        tuner.fit()
    finally:
        _LIVE.pop(key, None)
        try:
            _mirror(run, storages)
        except Exception:  # the mirror is for people; losing it must not fail the job
            log.exception("mirroring the Optuna studies of %s failed", run.name)


class _StopAll(Stopper):
    """Ends every study when the job is cancelled, its lease is lost or we shut down."""

    def __init__(self, key: str) -> None:
        self.key = key

    def _stopped(self) -> bool:
        live = _LIVE.get(self.key)
        return live is None or live[1].is_set()

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return self._stopped()

    def stop_all(self) -> bool:
        return self._stopped()


class _EventCallback(tune.Callback):
    """Streams trial starts, epochs and ends to ``on_event`` as they happen."""

    def __init__(self, key: str, epochs: dict[str, int], direction: str) -> None:
        self.key = key
        self.epochs = epochs
        self.direction = direction
        self.events: dict[str, TrialEvent] = {}
        self.next_number: dict[str, int] = {}

    def _emit(self, kind: str, event: TrialEvent) -> None:
        live = _LIVE.get(self.key)
        if live is not None:
            live[0](kind, event)

    def _event(self, trial: Any) -> TrialEvent:
        event = self.events.get(trial.trial_id)
        if event is None:
            config = trial.config
            study = config[STUDY_KEY]
            sampled = TrialConfig.decode(config[TRIAL_KEY])
            number = self.next_number.get(study, config["first_number"])
            self.next_number[study] = number + 1
            event = TrialEvent(study, number, sampled.params, sampled.hyper, sampled.seed)
            self.events[trial.trial_id] = event
        return event

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._emit("start", self._event(trial))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:  # fmt: skip
        event = self._event(trial)
        event.result = result
        event.best_metric = best_metric([event.best_metric, result.get("metric")], self.direction)
        self._emit("epoch", event)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        event = self._event(trial)
        result = trial.last_result or {}
        event.result = result or event.result
        if result.get("diverged"):
            event.status = TrialStatus.DIVERGED
        elif result.get("epoch", 0) >= self.epochs[event.study]:
            event.status = TrialStatus.COMPLETED
        elif result:
            event.status = TrialStatus.PRUNED
        else:
            event.status = TrialStatus.FAILED
            event.error = "the trial ended without reporting a result"
        if trial.checkpoint is not None:
            event.checkpoint_dir = trial.checkpoint.path
        self._emit("end", event)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        event = self._event(trial)
        event.result = trial.last_result or event.result
        event.status, event.error = TrialStatus.FAILED, _error_text(trial)
        self._emit("end", event)


def _error_text(trial: Any) -> str:
    error_file = getattr(trial, "error_file", None)
    if error_file and Path(error_file).exists():
        lines = Path(error_file).read_text(errors="replace").strip().splitlines()
        return "\n".join(lines[-6:])[-2000:]
    return "the trial failed"


def flatness_of(
    config: TrialConfig, checkpoint_dir: str, cpus: float, gpus: float
) -> dict[str, Any]:
    """Measure a checkpoint's top Hessian eigenvalue: a CPU trial's model right here (this
    process has torch warm; a new Ray worker would spend seconds importing it), a GPU
    trial's as a Ray task with the trial's resources, on a GPU node."""
    state = torch.load(Path(checkpoint_dir) / CHECKPOINT_FILE, weights_only=False)["model"]
    if gpus <= 0:
        return measure_flatness(config, state)
    task = ray.remote(num_cpus=cpus, num_gpus=gpus)(measure_flatness)
    return ray.get(task.remote(config, state))
