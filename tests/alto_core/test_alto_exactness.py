"""ALTO's single-tensor, foreach and stacked paths against the paper's two-buffer Algorithm 2."""

from __future__ import annotations

import pytest
import torch

from alto_core import ALTO, Lamb
from tests.alto_core.algorithm2 import Algorithm2
from tests.alto_core.helpers import SHAPES, STACKED_SHAPES, gradient, make_params, set_grads

STEPS = 250
SETTINGS = [(-5.0, 0.99), (0.5, 0.01), (-0.9, 0.5), (2.0, 0.7), (-60.0, 0.99)]
#: "stacked" is the foreach path on parameters of which the CPU path stacks some.
PATHS = {"single": (False, SHAPES), "foreach": (True, SHAPES), "stacked": (True, STACKED_SHAPES)}


def _make_params(path):
    return make_params(shapes=PATHS[path][1])


def _run(alpha, beta1, *, bias_correction, weight_decay, trust_ratio, path):
    params = _make_params(path)
    half = len(params) // 2
    # Two groups so that "decayed" has a group with and one without weight decay.
    groups = [{"params": params[:half]}, {"params": params[half:], "weight_decay": 0.0}]
    opt = ALTO(
        groups,
        lr=1e-2,
        betas=(beta1, 0.9, 0.99),
        alpha=alpha,
        eps=1e-6,
        weight_decay=weight_decay,
        bias_correction=bias_correction,
        trust_ratio=trust_ratio,
        foreach=PATHS[path][0],
    )
    ref = Algorithm2(
        params,
        lr=1e-2,
        alpha=alpha,
        beta1=beta1,
        beta2=0.9,
        beta3=0.99,
        eps=1e-6,
        weight_decays=[weight_decay] * half + [0.0] * (len(params) - half),
        bias_correction=bias_correction,
        trust_ratio=trust_ratio,
    )
    for step in range(STEPS):
        grads = gradient(params, step)
        set_grads(params, grads)
        opt.step()
        ref.step(gradient(ref.params, step))
    return params, ref.params


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
@pytest.mark.parametrize("bias_correction", [True, False], ids=["alto", "vanilla"])
@pytest.mark.parametrize(("alpha", "beta1"), SETTINGS)
def test_matches_algorithm2(alpha, beta1, bias_correction, weight_decay, path):
    ours, ref = _run(
        alpha,
        beta1,
        bias_correction=bias_correction,
        weight_decay=weight_decay,
        trust_ratio="all",
        path=path,
    )
    for p, r in zip(ours, ref, strict=True):
        torch.testing.assert_close(p.detach(), r, rtol=1e-10, atol=1e-12)
    # The run must have moved the parameters, or the comparison proves nothing.
    start = _make_params(path)
    assert any(not torch.allclose(p.detach(), q) for p, q in zip(ours, start, strict=True))


@pytest.mark.parametrize("trust_ratio", ["decayed", "none"])
@pytest.mark.parametrize("path", PATHS)
def test_trust_ratio_modes_match_algorithm2(trust_ratio, path):
    ours, ref = _run(
        -5.0,
        0.99,
        bias_correction=True,
        weight_decay=1e-2,
        trust_ratio=trust_ratio,
        path=path,
    )
    for p, r in zip(ours, ref, strict=True):
        torch.testing.assert_close(p.detach(), r, rtol=1e-10, atol=1e-12)


def test_trust_ratio_modes_differ():
    """The flag is live: the paper's "all" and the reference code's "decayed" disagree."""
    all_, _ = _run(
        -5.0, 0.99, bias_correction=True, weight_decay=1e-2, trust_ratio="all", path="foreach"
    )
    decayed, _ = _run(
        -5.0, 0.99, bias_correction=True, weight_decay=1e-2, trust_ratio="decayed", path="foreach"
    )
    assert torch.allclose(all_[0], decayed[0])  # decayed group: trust ratio in both
    assert not torch.allclose(all_[2], decayed[2])  # no-decay group: only "all" applies it


@pytest.mark.parametrize("path", PATHS)
def test_lamb_is_algorithm2_without_adaptor(path):
    params = _make_params(path)
    opt = Lamb(params, lr=1e-2, betas=(0.9, 0.99), weight_decay=1e-2, foreach=PATHS[path][0])
    ref = Algorithm2(
        params,
        lr=1e-2,
        alpha=0.0,
        beta1=0.0,
        beta2=0.9,
        beta3=0.99,
        eps=1e-6,
        weight_decays=[1e-2] * len(params),
    )
    for step in range(STEPS):
        set_grads(params, gradient(params, step))
        opt.step()
        ref.step(gradient(ref.params, step))
    for p, r in zip(params, ref.params, strict=True):
        torch.testing.assert_close(p.detach(), r, rtol=1e-10, atol=1e-12)


def test_state_is_three_buffers_and_a_step_counter():
    params = make_params(dtype=torch.float32)
    opt = ALTO(params)
    set_grads(params, gradient(params, 0))
    opt.step()
    for p in params:
        state = opt.state[p]
        assert set(state) == {"step", "grad_ema", "exp_avg", "exp_avg_sq"}
        assert state["step"].shape == () and isinstance(state["step"], torch.Tensor)
        buffers = [v for k, v in state.items() if k != "step"]
        assert sum(b.numel() * b.element_size() for b in buffers) == 12 * p.numel()
    lamb = Lamb(params)
    lamb.step()
    assert set(lamb.state[params[0]]) == {"step", "exp_avg", "exp_avg_sq"}
