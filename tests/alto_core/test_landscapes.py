"""The paper's toy landscapes and its claims on them."""

from __future__ import annotations

import math

import pytest
import torch

from alto_core import E
from alto_core.landscapes import LANDSCAPES, f1, f2, rosenbrock, squared_cardioid, trajectory


def test_known_minima():
    assert rosenbrock(torch.tensor([1.0, 1.0])).item() == 0.0
    t = torch.linspace(0, 2 * math.pi, 50, dtype=torch.float64)
    r = 1 + torch.cos(t)  # the cardioid r = a (1 + cos t), a = 1
    curve = torch.stack([r * torch.cos(t), r * torch.sin(t)], dim=-1)
    assert squared_cardioid(curve).abs().max().item() < 1e-20
    # f2: three minima of (nearly) equal depth; the ones at +-0.6 are 36 times sharper.
    x = torch.tensor([[-0.6], [0.0], [0.6], [0.3]], dtype=torch.float64)
    values = f2(x)
    assert values[:3].abs().max() < 2e-4 and values[3] > 0.8

    def curvature(x0):
        return torch.autograd.functional.hessian(
            lambda z: f2(z), torch.tensor([x0], dtype=torch.float64)
        ).item()

    assert curvature(0.6) == pytest.approx(1800, rel=0.01)
    assert curvature(0.0) == pytest.approx(50, rel=0.01)
    assert f1(torch.tensor([[2.3]])).item() > f1(torch.tensor([[7.1]])).item()


def _adam(lr):
    return lambda p: torch.optim.Adam(p, lr=lr)


def _e_adam(lr, alpha):
    return lambda p: E(torch.optim.Adam(p, lr=lr), alpha=alpha, beta=0.99)


def test_f2_adam_stays_in_the_sharp_minimum_and_e_leaves_it():
    """PAPER.md section 6. Holds for alpha near -93 (c = -0.93), not for the paper's -80/-90."""
    ls = LANDSCAPES["f2"]
    adam_end = trajectory(ls, _adam(0.01), 3000)[-1, 0].item()
    e_end = trajectory(ls, _e_adam(0.01, -93.0), 3000)[-1, 0].item()
    assert abs(adam_end - 0.6) < 0.05
    assert abs(e_end) < 0.3


def test_f1_e_reaches_a_lower_minimum_than_adam():
    ls = LANDSCAPES["f1"]
    adam_end = trajectory(ls, _adam(0.01), 2000)[-1:]
    e_end = trajectory(ls, _e_adam(0.01, -90.0), 2000)[-1:]
    assert f1(e_end).item() < f1(adam_end).item() - 0.05


def test_cardioid_e_travels_further_along_the_valley():
    ls = LANDSCAPES["squared-cardioid"]

    def length(path):
        return (path[1:] - path[:-1]).norm(dim=-1).sum().item()

    adam = trajectory(ls, _adam(0.01), 2000)
    e = trajectory(ls, _e_adam(0.01, -90.0), 2000)
    assert ls.fn(adam[-1]).item() < 1e-8 and ls.fn(e[-1]).item() < 1e-8  # both in the valley
    assert length(e) > 3 * length(adam)
