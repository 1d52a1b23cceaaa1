"""Search spaces respect the stability rule by construction; warm starts; the catalogue."""

from __future__ import annotations

import optuna
import pytest

from alto_core import OPTIMIZERS
from service.jobs.spec import SearchRange
from workers import search
from workers.tasks import get_task

TASK = get_task("digits-mlp")


@pytest.mark.parametrize("optimizer", ["alto", "alto-vanilla", "e-adamw", "e-sgd"])
def test_adaptor_spaces_never_break_the_stability_rule(optimizer):
    space = search.space_for(optimizer, TASK)
    assert space.mode == "c" and set(space.distributions) == {"lr", "one_minus_beta1", "c"}
    sampler = optuna.samplers.RandomSampler(seed=0)
    study = optuna.create_study(sampler=sampler)
    for _ in range(500):
        trial = study.ask(space.distributions)
        hyper = space.hyper(trial.params)
        assert abs(hyper["alpha"] * (1 - hyper["beta1"])) < 1
        assert 0.0 <= hyper["beta1"] < 1 and TASK.lr_range[0] <= hyper["lr"] <= TASK.lr_range[1]
        study.tell(trial, 0.0)


def test_overrides_and_baselines():
    lamb = search.space_for("lamb", TASK, {"lr": SearchRange(low=1e-3, high=1e-2, log=True)})
    assert lamb.mode == "lr" and list(lamb.distributions) == ["lr"]
    assert lamb.distributions["lr"].low == 1e-3
    direct = search.space_for("alto", TASK, {"alpha": SearchRange(low=-5, high=0)})
    assert direct.mode == "direct" and direct.distributions["beta1"].low == pytest.approx(0.01)
    by_beta = search.space_for("alto", TASK, {"beta1": SearchRange(low=0.9, high=0.99)})
    assert by_beta.mode == "c-beta1"
    assert search.space_for("sgd", TASK).fixed == {"momentum": 0.9}


def test_params_and_hyper_round_trip():
    space = search.space_for("alto", TASK)
    hyper = {"lr": 3e-3, "alpha": -5.0, "beta1": 0.99}
    assert space.hyper(space.params(hyper)) == pytest.approx(hyper)
    clipped = space.params({"lr": 100.0, "alpha": -500.0, "beta1": 0.5})
    assert clipped["lr"] == TASK.lr_range[1] and clipped["c"] == -search.C_LIMIT


def test_warm_start_paper_defaults_then_nearest_tuned_sizes():
    space = search.space_for("alto", TASK)
    known = [
        (32, {"lr": 1e-2, "alpha": 0.3, "beta1": 0.1}),
        (512, {"lr": 2e-3, "alpha": -2.0, "beta1": 0.9}),
        (4096, {"lr": 1e-3, "alpha": -5.0, "beta1": 0.99}),
    ]
    points = [space.hyper(p) for p in search.warm_start(space, 128, TASK, known)]
    assert points[0] == pytest.approx({"lr": TASK.default_lr, "alpha": 0.5, "beta1": 0.01})
    assert points[1] == pytest.approx(known[0][1]) and points[2] == pytest.approx(known[1][1])
    large = [space.hyper(p) for p in search.warm_start(space, 2048, TASK, [])]
    assert large == [pytest.approx({"lr": TASK.default_lr, "alpha": -5.0, "beta1": 0.99})]


def test_catalogue_entries_cover_the_registry():
    entries = {e["name"]: e for e in search.catalogue_entries()}
    assert set(entries) == set(OPTIMIZERS)
    assert entries["alto"]["searched"] == ["lr", "alpha", "beta1"]
    assert entries["lamb"]["searched"] == ["lr"]
    assert entries["alto"]["defaults"]["paper"]["large"] == {"alpha": -5.0, "beta1": 0.99}
