"""ALTO and Lamb as torch optimizers: dtypes, missing gradients, closures, AMP, groups."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from alto_core import ALTO, Lamb
from tests.alto_core.algorithm2 import Algorithm2


def _mixed_params():
    gen = torch.Generator().manual_seed(0)
    return [
        nn.Parameter(torch.randn(6, 5, generator=gen, dtype=torch.float64).to(dtype))
        for dtype in (torch.float32, torch.float64, torch.bfloat16, torch.float32, torch.bfloat16)
    ]


def _grads(params, step):
    gen = torch.Generator().manual_seed(step)
    return [torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in params]


@pytest.mark.parametrize("foreach", [False, True], ids=["single", "foreach"])
def test_mixed_dtypes_follow_algorithm2_at_their_precision(foreach):
    params = _mixed_params()
    opt = ALTO(params, lr=1e-2, weight_decay=1e-2, foreach=foreach)
    ref = Algorithm2(
        params,
        lr=1e-2,
        alpha=-5.0,
        beta1=0.99,
        beta2=0.9,
        beta3=0.99,
        eps=1e-6,
        weight_decays=[1e-2] * len(params),
    )
    for step in range(10):
        grads = _grads(params, step)
        for p, g in zip(params, grads, strict=True):
            p.grad = g.to(p.dtype)
        opt.step()
        ref.step([g.to(p.dtype) for p, g in zip(params, grads, strict=True)])
    tolerance = {torch.float64: 1e-10, torch.float32: 1e-5, torch.bfloat16: 3e-2}
    for p, r in zip(params, ref.params, strict=True):
        torch.testing.assert_close(
            p.detach().double(), r, rtol=tolerance[p.dtype], atol=tolerance[p.dtype]
        )
        state = opt.state[p]
        assert state["exp_avg"].dtype == state["grad_ema"].dtype == p.dtype
        assert state["step"].dtype == torch.float32 and float(state["step"]) == 10


def test_foreach_and_single_tensor_paths_agree_on_mixed_dtypes():
    results = []
    for foreach in (False, True):
        params = _mixed_params()
        opt = ALTO(params, lr=1e-2, foreach=foreach)
        for step in range(20):
            for p, g in zip(params, _grads(params, step), strict=True):
                p.grad = g.to(p.dtype)
            opt.step()
        results.append(params)
    for a, b in zip(*results, strict=True):
        # Same arithmetic; only the reduction order of the trust-ratio norms may differ.
        low = a.dtype == torch.bfloat16
        torch.testing.assert_close(a, b, rtol=2e-2 if low else 1e-6, atol=1e-3 if low else 1e-7)


@pytest.mark.parametrize("cls", [ALTO, Lamb])
@pytest.mark.parametrize("foreach", [False, True], ids=["single", "foreach"])
def test_none_and_empty_gradients(cls, foreach):
    used = nn.Parameter(torch.ones(4))
    unused = nn.Parameter(torch.ones(4))
    empty = nn.Parameter(torch.ones(0))
    zero = nn.Parameter(torch.zeros(3))
    opt = cls([used, unused, empty, zero], lr=0.1, foreach=foreach)
    used.grad, empty.grad, zero.grad = torch.ones(4), torch.ones(0), torch.ones(3)
    opt.step()
    assert unused not in opt.state and torch.equal(unused, torch.ones(4))
    assert empty.numel() == 0 and float(opt.state[empty]["step"]) == 1
    assert torch.isfinite(used).all() and not torch.equal(used, torch.ones(4))
    # ||theta|| = 0: the trust ratio falls back to 1, the parameter still moves.
    assert torch.isfinite(zero).all() and torch.count_nonzero(zero) == 3
    opt.zero_grad()
    opt.step()  # no gradients: a no-op
    assert float(opt.state[used]["step"]) == 1


def test_group_without_weight_decay_gets_none():
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(5, 5))
    b = nn.Parameter(torch.randn(5))
    decayed = ALTO(
        [{"params": [w]}, {"params": [b], "weight_decay": 0.0}], lr=0.1, weight_decay=0.5
    )
    plain = ALTO(
        [nn.Parameter(w.detach().clone()), nn.Parameter(b.detach().clone())],
        lr=0.1,
        weight_decay=0.0,
    )
    for opt in (decayed, plain):
        for p in (q for g in opt.param_groups for q in g["params"]):
            p.grad = torch.ones_like(p)
        opt.step()
    pw, pb = plain.param_groups[0]["params"]
    assert torch.equal(b, pb)  # the no-decay group moved exactly as without decay
    assert not torch.allclose(w, pw)


def test_closure():
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    opt = ALTO(model.parameters(), lr=0.05, betas=(0.01, 0.9, 0.99), alpha=0.5)
    x, y = torch.randn(32, 4), torch.randn(32, 1)

    def closure():
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    first = opt.step(closure).item()
    for _ in range(50):
        last = opt.step(closure).item()
    assert last < first


def test_grad_scaler_skips_inf_step():
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    opt = ALTO(model.parameters(), lr=1e-2)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    x, y = torch.randn(8, 4), torch.randn(8, 2)
    for poison in (False, True):
        opt.zero_grad()
        scaler.scale(nn.functional.mse_loss(model(x), y)).backward()
        if poison:
            before = copy.deepcopy(opt.state_dict())
            params = [p.detach().clone() for p in model.parameters()]
            model.bias.grad[0] = math.nan
        scaler.step(opt)
        scaler.update()
    for p, q in zip(model.parameters(), params, strict=True):
        assert torch.equal(p, q)
    for key, value in before["state"].items():
        for name, tensor in value.items():
            assert torch.equal(opt.state_dict()["state"][key][name], tensor)


def test_no_gradient_clipping_inside_step():
    """A huge gradient is not clipped: the update direction is Adam-normalised, not rescaled."""
    p1, p2 = nn.Parameter(torch.ones(3)), nn.Parameter(torch.ones(3))
    opt1 = ALTO([p1], lr=0.1, trust_ratio="none", alpha=0.0)
    opt2 = ALTO([p2], lr=0.1, trust_ratio="none", alpha=0.0)
    p1.grad = torch.tensor([1e6, 1e-6, -1.0])
    p2.grad = p1.grad / torch.linalg.vector_norm(p1.grad)  # what clipping to 1 would give
    opt1.step()
    opt2.step()
    # Adam's normalisation makes both steps nearly the same size, but clipping would have
    # shrunk the small components: their updates differ.
    assert not torch.allclose(p1, p2)
