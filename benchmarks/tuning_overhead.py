"""Tuning overhead: run 32 trials of a short real task through the worker's Ray Tune path.

Prints the total wall time, the sum of the trials' own training time (as each trial
reports it), and the overhead per trial: (slots x wall - training) / trials, where
slots is the number of trials running at once. Includes Ray start-up separately.
Asserts nothing.

    .venv/bin/python benchmarks/tuning_overhead.py [--trials 32] [--epochs 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

from service.core.config import Settings
from service.jobs.spec import EarlyStopping
from workers import search, tuning
from workers.runtime import Runtime
from workers.tasks import Task, get_task
from workers.trainable import TrialConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="digits-mlp")
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--concurrent", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()

    task = get_task(args.task)
    workdir = Path(tempfile.mkdtemp(prefix="alto-overhead-"))
    task.load(workdir / "datasets")  # on disk, as after a task's first use
    start = time.perf_counter()
    with Runtime(Settings(ray_num_cpus=args.concurrent)) as runtime:
        ray_start = time.perf_counter() - start
        wall, training, ended, first_end = _tune(args, task, workdir)
    train = sum(training.values())
    slots = min(args.concurrent, int(runtime.cpus or 1))
    per_trial = (slots * wall - train) / args.trials
    print(
        f"task {task.name}, batch {args.batch_size}, {args.epochs} epochs per trial, "
        f"{args.trials} trials, {slots} at a time; Ray start-up {ray_start:.1f} s"
    )
    print(f"statuses: {', '.join(f'{s} {ended.count(s)}' for s in sorted(set(ended)))}")
    print(
        f"total wall time {wall:.1f} s; sum of training time {train:.1f} s "
        f"({train / args.trials:.2f} s per trial)"
    )
    print(f"overhead per trial: {per_trial:.2f} s  [(slots x wall - training) / trials]")
    # Warm-up: until the first trial of every slot ended (trial processes import torch and
    # Ray Tune, and torch's optimizers import torch._dynamo on first use).
    warm = sorted(first_end)[slots - 1]
    rest = args.trials - slots
    later = sum(sorted(training.values())[:rest])  # approximate: trials are alike
    steady = (slots * (wall - warm) - later) / rest if rest > 0 else float("nan")
    print(
        f"of which warm-up {warm:.1f} s once (the first trial of each slot); after it, "
        f"{steady:.2f} s per trial"
    )


def _tune(
    args: argparse.Namespace, task: Task, workdir: Path
) -> tuple[float, dict[int, float], list[str], list[float]]:
    """Run the trials through the worker's Tune path; (wall, training per trial, statuses,
    time of each end since the start)."""
    space = search.space_for("alto", task)
    plan = tuning.StudyPlan(
        name="overhead",
        trial=TrialConfig(
            task=task.name,
            batch_size=args.batch_size,
            optimizer="alto",
            epochs=args.epochs,
            seed=0,
            data_dir=str(workdir / "datasets"),
        ),
        space=space,
        num_trials=args.trials,
        first_number=0,
        warm_start=search.warm_start(space, args.batch_size, task, []),
        prior=[],
        seed=0,
        early_stopping=EarlyStopping(enabled=False),  # every trial runs all its epochs
    )
    run = tuning.TuneRun(
        name="overhead",
        studies=[plan],
        direction=task.direction,
        cpus=1,
        gpus=0,
        max_concurrent=args.concurrent,
        storage_path=str(workdir / "ray_results"),
        optuna_storage=f"sqlite:///{workdir / 'optuna.db'}",
    )
    training: dict[int, float] = {}
    ended: list[str] = []
    first_end: list[float] = []

    def on_event(kind: str, event: tuning.TrialEvent) -> None:
        if event.result:
            training[event.number] = float(event.result.get("elapsed_s", 0.0))
        if kind == "end":
            ended.append(event.status or "?")
            first_end.append(time.perf_counter() - start)

    start = time.perf_counter()
    tuning.run_studies(run, on_event, threading.Event())
    wall = time.perf_counter() - start
    return wall, training, ended, first_end


if __name__ == "__main__":
    main()
