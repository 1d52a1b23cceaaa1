"""One trial: train a task's model with one optimizer setting, reporting every epoch.

Reads like nanoGPT's loop (forward, backward, optional clip, step, zero_grad) with a
typed config. Nothing here knows about Ray: results and checkpoints go through a
``Reporter`` (workers/tuning.py implements it with Ray Tune), so the loop can be
tested and timed on its own.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from alto_core import ParameterDrift, create_optimizer, top_hessian_eigenvalue
from workers.tasks import get_task, task_data

DRIFT_WINDOW = 10  # epochs, as in the paper's Figure 3 (||theta_k - theta_{k-10}||)


@dataclass(frozen=True)
class TrialConfig:
    """Everything one trial needs, and nothing else: it travels to the trial process as
    Ray's trial config (``encode``/``decode``), so its fields are plain JSON values."""

    task: str
    batch_size: int
    optimizer: str
    epochs: int
    seed: int
    data_dir: str
    hyper: dict[str, float] = field(default_factory=dict)  # the optimizer's keyword arguments
    params: dict[str, float] = field(default_factory=dict)  # what the search sampled
    threads: int = 1
    use_gpu: bool = False
    bf16: bool = False
    clip_norm: float | None = None
    warmup_fraction: float = 0.05
    checkpoint_every: int = 1

    def encode(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def decode(cls, data: Mapping[str, Any]) -> TrialConfig:
        """The config ``encode`` made; an unknown key is an error, not something to drop."""
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown trial config keys: {sorted(unknown)}")
        return cls(**data)


class Reporter(Protocol):
    def report(self, metrics: dict[str, Any], checkpoint: dict[str, Any] | None) -> None: ...

    def restore(self) -> dict[str, Any] | None: ...

    def placement(self) -> dict[str, str]:
        """Where the trial runs, as the cluster knows it: "node" and "gpus" (ids the
        cluster gave it, "" for none); the process's own view fills what is missing."""
        ...


def warmup_cosine(total_steps: int, warmup_fraction: float):
    warmup = max(1, int(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def device_for(config: TrialConfig) -> torch.device:
    return torch.device("cuda" if config.use_gpu and torch.cuda.is_available() else "cpu")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        index = device.index or 0
        return f"cuda:{index} {torch.cuda.get_device_name(index)}"
    return f"cpu ({torch.get_num_threads()} threads)"


def build(config: TrialConfig, device: torch.device) -> tuple[Any, nn.Module, Any]:
    task = get_task(config.task)
    data = task_data(task, Path(config.data_dir))
    torch.manual_seed(config.seed)  # the initial weights depend on the seed alone
    model = task.build_model().to(device)
    return task, model, data


def run_trial(config: TrialConfig, reporter: Reporter) -> None:
    """Train for ``config.epochs`` epochs (from a checkpoint if there is one)."""
    entered = time.time()
    torch.set_num_threads(max(1, config.threads))
    device = device_for(config)
    task, model, data = build(config, device)
    drift = ParameterDrift(model.parameters(), window=DRIFT_WINDOW)
    optimizer = create_optimizer(config.optimizer, model, **config.hyper)
    steps_per_epoch = task.steps_per_epoch(data, config.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(config.epochs * steps_per_epoch, config.warmup_fraction)
    )
    generator = torch.Generator().manual_seed(config.seed)
    start_epoch, elapsed, total_steps = 0, 0.0, 0
    state = reporter.restore()
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        start_epoch, elapsed = state["epoch"], state["elapsed_s"]
        total_steps = state.get("steps", start_epoch * steps_per_epoch)

    place = reporter.placement()
    gpus = place.get("gpus")
    common = {
        "node": place.get("node") or socket.gethostname(),
        "device": device_name(device) + (f" (cluster GPU {gpus})" if gpus else ""),
        "pid": os.getpid(),
        "entered_at": entered,
        "setup_s": time.time() - entered,
    }
    autocast = torch.autocast(
        "cuda", dtype=torch.bfloat16, enabled=config.bf16 and device.type == "cuda"
    )
    for epoch in range(start_epoch + 1, config.epochs + 1):
        model.train()
        started = time.perf_counter()
        total_loss, steps = 0.0, 0
        diverged = False
        for batch in task.train_batches(data, config.batch_size, generator, device):
            with autocast:
                loss = task.loss(model, batch)
            value = loss.item()
            if not math.isfinite(value):
                diverged = True
                break
            loss.backward()
            if config.clip_norm:
                nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            total_loss += value
            steps += 1
            total_steps += 1
        model.eval()
        metric = math.nan if diverged else task.evaluate(model, data, device)
        diverged = diverged or not math.isfinite(metric)
        epoch_time = time.perf_counter() - started
        elapsed += epoch_time
        figures = drift.record()
        result = {
            **common,
            "epoch": epoch,
            "steps": total_steps,
            "objective": task.worst_value if diverged else metric,
            "metric": metric,
            "train_loss": total_loss / steps if steps else math.nan,
            "epoch_time_s": epoch_time,
            "elapsed_s": elapsed,
            "diverged": diverged,
            "drift_from_start": figures.from_start,
            "drift_over_window": figures.over_window,
        }
        keep = not diverged and (epoch % config.checkpoint_every == 0 or epoch == config.epochs)
        checkpoint = None
        if keep:
            checkpoint = {
                "epoch": epoch,
                "elapsed_s": elapsed,
                "steps": total_steps,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "generator": generator.get_state(),
            }
        reporter.report(result, checkpoint)
        if diverged:
            return  # a NaN or infinite loss ends the trial at once


def measure_flatness(config: TrialConfig, model_state: dict[str, Any]) -> dict[str, Any]:
    """Top Hessian eigenvalue of a trained model on the task's fixed evaluation batch."""
    torch.set_num_threads(max(1, config.threads))
    device = device_for(config)
    task, model, data = build(config, device)
    model.load_state_dict(model_state)
    model.eval()
    batch = task.eval_batch(data, device)
    estimate = top_hessian_eigenvalue(
        lambda: task.loss(model, batch), model.parameters(), max_iter=100, tol=1e-3, seed=0
    )
    return {
        "top_eigenvalue": estimate.value,
        "eigen_converged": estimate.converged,
        "eigen_iterations": estimate.iterations,
        "method": (
            f"power iteration on Hessian-vector products of the training loss over a fixed "
            f"batch of {batch[0].shape[0]} validation samples (model in eval mode), seed "
            f"{estimate.seed}, relative tolerance {estimate.tol}, at most 100 iterations; "
            f"drift over a window of {DRIFT_WINDOW} epochs"
        ),
    }
