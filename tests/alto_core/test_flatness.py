"""Top Hessian eigenvalue against the exact Hessian; parameter drift."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.func import functional_call

from alto_core import ParameterDrift, top_hessian_eigenvalue


def _problem(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x = torch.randn(32, 3, dtype=torch.float64)
    y = torch.randint(0, 2, (32,))
    return model, x, y


def _exact_eigenvalues(model, x, y):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss_of(vec):
        tensors, offset = {}, 0
        for name, shape in zip(names, shapes, strict=True):
            n = math.prod(shape)
            tensors[name] = vec[offset : offset + n].reshape(shape)
            offset += n
        return nn.functional.cross_entropy(functional_call(model, tensors, (x,)), y)

    hessian = torch.autograd.functional.hessian(loss_of, flat)
    return torch.linalg.eigvalsh(hessian)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_the_exact_top_eigenvalue(seed):
    model, x, y = _problem(seed)
    eig = _exact_eigenvalues(model, x, y)
    top = eig[eig.abs().argmax()].item()
    est = top_hessian_eigenvalue(
        lambda: nn.functional.cross_entropy(model(x), y),
        model.parameters(),
        max_iter=500,
        tol=1e-10,
        seed=seed,
    )
    assert est.converged and est.iterations < 500
    assert est.value == pytest.approx(top, rel=1e-6)


def test_seeded_and_capped():
    model, x, y = _problem()

    def loss():
        return nn.functional.cross_entropy(model(x), y)

    a = top_hessian_eigenvalue(loss, model.parameters(), seed=5, tol=1e-6)
    b = top_hessian_eigenvalue(loss, model.parameters(), seed=5, tol=1e-6)
    assert a == b
    capped = top_hessian_eigenvalue(loss, model.parameters(), max_iter=2, tol=1e-12)
    assert not capped.converged and capped.iterations == 2


def test_non_finite_loss_is_reported_not_raised():
    model, x, y = _problem()
    with torch.no_grad():
        model[0].weight[0, 0] = math.nan
    est = top_hessian_eigenvalue(
        lambda: nn.functional.cross_entropy(model(x), y), model.parameters()
    )
    assert math.isnan(est.value) and not est.converged


def test_linear_loss_has_zero_curvature():
    w = nn.Parameter(torch.ones(3))
    est = top_hessian_eigenvalue(lambda: (w * 2.0).sum(), [w])
    assert est.value == 0.0 and est.converged


def test_rejects_bad_arguments():
    w = nn.Parameter(torch.ones(3))
    with pytest.raises(ValueError, match="Invalid max_iter: 0"):
        top_hessian_eigenvalue(lambda: (w**2).sum(), [w], max_iter=0)
    with pytest.raises(ValueError, match="Invalid tol: -1"):
        top_hessian_eigenvalue(lambda: (w**2).sum(), [w], tol=-1)


def test_drift_from_start_and_over_window():
    w = nn.Parameter(torch.zeros(4))
    b = nn.Parameter(torch.zeros(2, dtype=torch.float64))
    drift = ParameterDrift([w, b], window=3)
    history = [torch.zeros(6, dtype=torch.float64)]
    for k in range(1, 7):
        with torch.no_grad():
            w.add_(float(k))
            b.sub_(0.5)
        history.append(torch.cat([w.detach().double(), b.detach()]))
        fig = drift.record()
        assert fig.step == k
        assert fig.from_start == pytest.approx(float(history[-1].norm()))
        if k < 3:
            assert math.isnan(fig.over_window)
        else:
            assert fig.over_window == pytest.approx(float((history[k] - history[k - 3]).norm()))


def test_attention_models_are_measured():
    """Fused attention kernels cannot be differentiated twice; the estimate must still come
    back (a transformer task's best trial gets its eigenvalue like any other)."""
    torch.manual_seed(0)
    attend = nn.MultiheadAttention(16, 2, batch_first=True)
    x = torch.randn(4, 8, 16)

    def loss():
        out, _ = attend(x, x, x, need_weights=False, is_causal=False)
        q = k = v = out.view(4, 8, 2, 8).transpose(1, 2)
        mixed = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return mixed.pow(2).mean()

    estimate = top_hessian_eigenvalue(loss, attend.parameters(), max_iter=50, tol=1e-3)
    assert math.isfinite(estimate.value) and estimate.iterations > 1
