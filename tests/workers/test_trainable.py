"""One trial without Ray: per-epoch reports, divergence, checkpoint and resume, flatness."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from workers.tasks import get_task, task_data
from workers.trainable import TrialConfig, measure_flatness, run_trial


class Collect:
    """A Reporter that keeps what a trial reports (Ray Tune's place in production)."""

    def __init__(self, restore=None):
        self.results, self.checkpoints, self._restore = [], [], restore

    def report(self, metrics, checkpoint):
        self.results.append(metrics)
        # A copy, as serialising the checkpoint makes one: training goes on in place.
        self.checkpoints.append(copy.deepcopy(checkpoint))

    def restore(self):
        return self._restore

    def placement(self):
        return {}


def _config(tmp_path, **kw):
    base = dict(
        task="digits-mlp",
        batch_size=64,
        optimizer="alto",
        hyper={"lr": 1e-2, "alpha": -1.0, "beta1": 0.9},
        epochs=4,
        seed=3,
        data_dir=str(tmp_path),
    )
    return TrialConfig(**{**base, **kw})


def test_reports_every_epoch(tmp_path):
    out = Collect()
    run_trial(_config(tmp_path), out)
    assert [r["epoch"] for r in out.results] == [1, 2, 3, 4]
    per_epoch = get_task("digits-mlp").steps_per_epoch(
        task_data(get_task("digits-mlp"), tmp_path), 64
    )
    assert [r["steps"] for r in out.results] == [per_epoch * e for e in (1, 2, 3, 4)]
    last = out.results[-1]
    assert 0.5 < last["metric"] <= 1.0 and last["objective"] == last["metric"]
    assert not last["diverged"] and last["train_loss"] < out.results[0]["train_loss"]
    assert last["drift_from_start"] > out.results[0]["drift_from_start"] > 0
    assert math.isnan(last["drift_over_window"])  # fewer than 10 epochs
    assert all(c is not None for c in out.checkpoints) and last["device"].startswith("cpu")


def test_resume_from_a_checkpoint_is_bit_identical(tmp_path):
    whole = Collect()
    run_trial(_config(tmp_path), whole)
    resumed = Collect(restore=whole.checkpoints[1])  # as if stopped after epoch 2
    run_trial(_config(tmp_path), resumed)
    assert [r["epoch"] for r in resumed.results] == [3, 4]
    assert [r["steps"] for r in resumed.results] == [r["steps"] for r in whole.results[2:]]
    assert resumed.results[-1]["metric"] == whole.results[-1]["metric"]
    for name, tensor in whole.checkpoints[-1]["model"].items():
        assert torch.equal(resumed.checkpoints[-1]["model"][name], tensor), name


def test_a_non_finite_loss_ends_the_trial_as_diverged(tmp_path):
    out = Collect()
    run_trial(_config(tmp_path, optimizer="adamw", hyper={"lr": 1e4}), out)
    assert len(out.results) < 4 and out.results[-1]["diverged"]
    assert math.isnan(out.results[-1]["metric"]) and out.results[-1]["objective"] == 0.0
    assert out.checkpoints[-1] is None


@pytest.mark.parametrize("task, epochs, batch_size", [("digits-mlp", 3, 64), ("charlm", 1, 512)])
def test_flatness_of_a_trained_model(tmp_path, task, epochs, batch_size):
    # charlm's transformer attends with fused kernels that have no double backward.
    out = Collect()
    config = _config(tmp_path, task=task, epochs=epochs, batch_size=batch_size)
    run_trial(config, out)
    figures = measure_flatness(config, out.checkpoints[-1]["model"])
    assert figures["eigen_iterations"] > 1 and math.isfinite(figures["top_eigenvalue"])
    assert "power iteration" in figures["method"]
    if task == "digits-mlp":
        assert figures["eigen_converged"] and 0 < figures["top_eigenvalue"] < 1e4
