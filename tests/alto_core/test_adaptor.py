"""The adaptor E: exactness, delegation, state, AMP, closures, groups, in-place gradients."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch
from torch import nn

from alto_core import ALTO, E, Lamb
from alto_core.functional import adapt_gradients
from tests.alto_core.helpers import gradient, make_params, set_grads


def _two_buffer_modified_grads(grad_stream, alpha, beta):
    """g~_k = g_k + alpha a_k, a_k = beta a + (1 - beta)(g_k - g_{k-1}): the paper's form."""
    prev = a = None
    for grads in grad_stream:
        if prev is None:
            prev = [torch.zeros_like(g) for g in grads]
            a = [torch.zeros_like(g) for g in grads]
        a = [beta * ai + (1 - beta) * (g - p) for ai, g, p in zip(a, grads, prev, strict=True)]
        prev = grads
        yield [g + alpha * ai for g, ai in zip(grads, a, strict=True)]


@pytest.mark.parametrize("foreach", [False, True], ids=["single", "foreach"])
@pytest.mark.parametrize(("alpha", "beta"), [(-5.0, 0.99), (0.5, 0.01), (-80.0, 0.99), (1.5, 0.5)])
def test_modified_gradient_is_the_two_buffer_recursion(alpha, beta, foreach):
    params = make_params()
    opt = E(torch.optim.SGD(params, lr=0.0), alpha=alpha, beta=beta, foreach=foreach)
    stream = [gradient(params, step) for step in range(300)]
    for step, expected in enumerate(_two_buffer_modified_grads(stream, alpha, beta)):
        set_grads(params, stream[step])
        opt.step()
        for p, g in zip(params, expected, strict=True):
            torch.testing.assert_close(p.grad, g, rtol=1e-10, atol=1e-12)


def test_first_step_scales_the_gradient_by_one_plus_c():
    (p,) = make_params(zero_last=False)[:1]
    p.grad = torch.ones_like(p)
    E(torch.optim.SGD([p], lr=0.0), alpha=-5.0, beta=0.99).step()
    torch.testing.assert_close(p.grad, torch.full_like(p, 0.95))


def test_constant_gradient_adaptor_term_decays_geometrically():
    p = nn.Parameter(torch.zeros(3, dtype=torch.float64))
    alpha, beta = -5.0, 0.9
    opt = E(torch.optim.SGD([p], lr=0.0), alpha=alpha, beta=beta)
    terms = []
    for _ in range(30):
        p.grad = torch.full_like(p, 2.0)
        opt.step()
        terms.append(float((p.grad[0] - 2.0) / alpha))  # = a_k
    assert terms[0] == pytest.approx((1 - beta) * 2.0)
    for k in range(1, 30):
        assert terms[k] == pytest.approx(terms[k - 1] * beta, rel=1e-9)


@pytest.mark.parametrize("foreach", [False, True], ids=["single", "foreach"])
@pytest.mark.parametrize(
    "make_base",
    [
        lambda ps, fe: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-3, foreach=fe),
        lambda ps, fe: torch.optim.AdamW(ps, lr=1e-2, weight_decay=1e-2, foreach=fe),
    ],
    ids=["sgd-momentum", "adamw"],
)
def test_alpha_zero_is_exactly_the_base_optimizer(make_base, foreach):
    ours, theirs = make_params(), make_params()
    wrapped = E(make_base(ours, foreach), alpha=0.0, beta=0.9, foreach=foreach)
    plain = make_base(theirs, foreach)
    for step in range(100):
        set_grads(ours, gradient(ours, step))
        set_grads(theirs, gradient(theirs, step))
        wrapped.step()
        plain.step()
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)


def test_e_on_lamb_equals_alto():
    ours, theirs = make_params(), make_params()
    wrapped = E(Lamb(ours, lr=1e-2, weight_decay=1e-2), alpha=-5.0, beta=0.99)
    alto = ALTO(theirs, lr=1e-2, betas=(0.99, 0.9, 0.99), alpha=-5.0, weight_decay=1e-2)
    for step in range(200):
        set_grads(ours, gradient(ours, step))
        set_grads(theirs, gradient(theirs, step))
        wrapped.step()
        alto.step()
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_gradients_are_modified_in_place():
    params = make_params()
    opt = E(torch.optim.SGD(params, lr=0.1), alpha=-5.0, beta=0.9)
    for step in range(3):
        set_grads(params, gradient(params, step))
        before = [(p.grad, p.grad.data_ptr(), p.grad.clone()) for p in params]
        opt.step()
        for p, (grad, ptr, value) in zip(params, before, strict=True):
            assert p.grad is grad and p.grad.data_ptr() == ptr
            if step > 0:
                assert not torch.equal(p.grad, value)


def test_it_is_an_optimizer_that_shares_the_base_objects():
    params = make_params()
    base = torch.optim.AdamW(params)
    opt = E(base)
    assert isinstance(opt, torch.optim.Optimizer)
    assert opt.param_groups is base.param_groups
    assert opt.state is base.state
    set_grads(params, gradient(params, 0))
    opt.step()
    assert "e_grad_ema" in base.state[params[0]] and "exp_avg" in base.state[params[0]]


def test_loading_through_the_base_keeps_the_objects_shared():
    params = make_params()
    base = torch.optim.AdamW(params)
    opt = E(base)
    set_grads(params, gradient(params, 0))
    opt.step()
    old_state = base.state
    base.load_state_dict(opt.state_dict())  # replaces the base's groups and state
    assert base.state is not old_state
    assert opt.param_groups is base.param_groups
    assert opt.state is base.state
    assert "e_grad_ema" in opt.state[params[0]]


def _train(model, opt, sched, start, stop):
    gen = torch.Generator().manual_seed(7)
    data = [
        (torch.randn(16, 6, generator=gen), torch.randn(16, 2, generator=gen)) for _ in range(stop)
    ]
    for x, y in data[start:stop]:
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()


def _model():
    torch.manual_seed(3)
    # Six (8,) biases and norm parameters: enough for ALTO's CPU foreach path to stack them.
    return nn.Sequential(
        nn.Linear(6, 8),
        nn.LayerNorm(8),
        nn.Tanh(),
        nn.Linear(8, 8),
        nn.LayerNorm(8),
        nn.Tanh(),
        nn.Linear(8, 2),
    )


OPTIMIZERS = {
    "alto": lambda m: ALTO(m.parameters(), lr=1e-2, alpha=-5.0),
    "e-adamw": lambda m: E(torch.optim.AdamW(m.parameters(), lr=1e-2), alpha=-5.0, beta=0.99),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_save_load_continue_is_bit_identical(name, tmp_path):
    make = OPTIMIZERS[name]
    model = _model()
    opt = make(model)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)
    _train(model, opt, sched, 0, 10)
    torch.save(
        {"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()},
        tmp_path / "ckpt.pt",
    )
    _train(model, opt, sched, 10, 25)

    fresh = _model()
    with torch.no_grad():
        for p in fresh.parameters():
            p.add_(1.0)  # make sure the load, not the seed, restores the weights
    fresh_opt = make(fresh)
    fresh_sched = torch.optim.lr_scheduler.StepLR(fresh_opt, step_size=5, gamma=0.5)
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    fresh.load_state_dict(ckpt["model"])
    fresh_opt.load_state_dict(ckpt["opt"])
    fresh_sched.load_state_dict(ckpt["sched"])
    _train(fresh, fresh_opt, fresh_sched, 10, 25)

    for a, b in zip(model.parameters(), fresh.parameters(), strict=True):
        assert torch.equal(a, b)
    assert fresh_opt.param_groups[0]["lr"] == opt.param_groups[0]["lr"] == 1e-2 * 0.5**5


def test_e_buffer_is_saved_and_restored():
    model = _model()
    opt = OPTIMIZERS["e-adamw"](model)
    _train(model, opt, torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0), 0, 3)
    saved = opt.state_dict()
    assert all("e_grad_ema" in s for s in saved["state"].values())
    fresh_opt = OPTIMIZERS["e-adamw"](model)
    fresh_opt.load_state_dict(copy.deepcopy(saved))
    first = next(iter(model.parameters()))
    assert torch.equal(fresh_opt.state[first]["e_grad_ema"], opt.state[first]["e_grad_ema"])


def test_scheduler_drives_the_base_after_load_state_dict():
    model = _model()
    opt = E(torch.optim.AdamW(model.parameters(), lr=1.0))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    _train(model, opt, sched, 0, 2)
    old_groups = opt.base_optimizer.param_groups
    opt.load_state_dict(opt.state_dict())
    assert opt.base_optimizer.param_groups is not old_groups  # torch replaced them
    assert opt.param_groups is opt.base_optimizer.param_groups
    _train(model, opt, sched, 2, 4)
    assert opt.base_optimizer.param_groups[0]["lr"] == 0.5**4
    # Scheduler attached after the load, too.
    sched2 = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.1)
    _train(model, opt, sched2, 4, 5)
    assert opt.base_optimizer.param_groups[0]["lr"] == pytest.approx(0.5**4 * 0.1)


def test_scheduler_built_on_the_base_sees_its_steps():
    """Code written for a plain optimizer may attach its scheduler to the base, then wrap it."""
    model = _model()
    base = torch.optim.AdamW(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(base, step_size=1, gamma=0.5)
    opt = E(base)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "lr_scheduler.step() before optimizer.step()"
        _train(model, opt, sched, 0, 3)
    assert base.param_groups[0]["lr"] == 0.5**3


@pytest.mark.parametrize("foreach", [False, True], ids=["single", "foreach"])
def test_grad_scaler_inf_step_is_skipped_and_leaves_state_untouched(foreach):
    model = _model()
    opt = E(torch.optim.AdamW(model.parameters(), lr=1e-2, foreach=foreach), foreach=foreach)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    x, y = torch.randn(8, 6), torch.randn(8, 2)

    def backward():
        opt.zero_grad()
        scaler.scale(nn.functional.mse_loss(model(x), y)).backward()

    backward()
    scaler.step(opt)
    scaler.update()
    params = [p.detach().clone() for p in model.parameters()]
    state = copy.deepcopy(opt.state_dict())
    backward()
    first = next(iter(model.parameters()))
    first.grad[0, 0] = math.inf
    scaler.step(opt)
    scaler.update()
    assert scaler.get_scale() == 2.0**7
    for p, q in zip(model.parameters(), params, strict=True):
        assert torch.equal(p, q)
    after = opt.state_dict()["state"]
    for key, value in state["state"].items():
        for name, tensor in value.items():
            assert torch.equal(after[key][name], tensor), name
    # ...and the next finite step goes through.
    backward()
    scaler.step(opt)
    scaler.update()
    assert not torch.equal(first.detach(), params[0])


def test_closure_is_evaluated_with_grad_and_its_loss_returned():
    model = _model()
    opt = E(torch.optim.SGD(model.parameters(), lr=0.1), alpha=-2.0, beta=0.9)
    x, y = torch.randn(8, 6), torch.randn(8, 2)

    def closure():
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    with torch.no_grad():
        first = opt.step(closure)
    losses = [opt.step(closure).item() for _ in range(20)]
    assert first.item() > losses[-1]


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad(set_to_none):
    params = make_params()
    opt = E(torch.optim.SGD(params, lr=0.1))
    set_grads(params, gradient(params, 0))
    opt.step()
    opt.zero_grad(set_to_none=set_to_none)
    for p in params:
        if set_to_none:
            assert p.grad is None
        else:
            assert torch.count_nonzero(p.grad) == 0


def test_per_group_overrides():
    params = make_params()
    together = E(
        torch.optim.SGD(
            [{"params": params[:2], "e_alpha": -2.0, "e_beta": 0.7}, {"params": params[2:]}], lr=0.0
        ),
        alpha=0.5,
        beta=0.01,
    )
    assert [g["e_alpha"] for g in together.param_groups] == [-2.0, 0.5]
    apart = make_params()
    first = E(torch.optim.SGD(apart[:2], lr=0.0), alpha=-2.0, beta=0.7)
    second = E(torch.optim.SGD(apart[2:], lr=0.0), alpha=0.5, beta=0.01)
    for step in range(20):
        grads = gradient(params, step)
        set_grads(params, grads)
        set_grads(apart, grads)
        together.step()
        first.step()
        second.step()
        for p, q in zip(params, apart, strict=True):
            torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=0)
    # A group added later gets E's defaults.
    extra = nn.Parameter(torch.ones(2, dtype=torch.float64))
    together.add_param_group({"params": [extra]})
    assert together.param_groups[-1]["e_alpha"] == 0.5


def test_none_and_empty_gradients():
    used = nn.Parameter(torch.ones(3))
    unused = nn.Parameter(torch.ones(3))
    empty = nn.Parameter(torch.ones(0))
    opt = E(torch.optim.AdamW([used, unused, empty], lr=0.1))
    used.grad = torch.ones(3)
    empty.grad = torch.ones(0)
    opt.step()
    assert unused not in opt.state and torch.equal(unused, torch.ones(3))
    assert empty.numel() == 0 and "e_grad_ema" in opt.state[empty]
    assert not torch.equal(used, torch.ones(3))
    opt.zero_grad()
    opt.step()  # no gradients at all: nothing happens, nothing breaks


def test_wraps_only_optimizers():
    with pytest.raises(TypeError, match="torch.optim.Optimizer"):
        E([nn.Parameter(torch.ones(1))])


def test_e_survives_deepcopy():
    params = make_params()
    opt = E(torch.optim.AdamW(params))
    set_grads(params, gradient(params, 0))
    opt.step()
    clone = copy.deepcopy(opt)
    assert clone.param_groups is clone.base_optimizer.param_groups
    assert "E(alpha=-5.0, beta=0.99" in repr(clone)


def _gd_on_quadratic(c, steps):
    """GD (lr 0.1) on x^2 / 2 from x = 1 with the raw E kernel, bypassing validation."""
    x, ema = torch.ones(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
    path = []
    for _ in range(steps):
        g = x.clone()
        adapt_gradients([g], [ema], alpha=c / 0.5, beta=0.5, foreach=False)
        x -= 0.1 * g
        path.append(float(x))
    return path


@pytest.mark.parametrize("c", [-3.0, -1.5, -1.0, -0.9, 0.0, 0.9])
def test_first_step_goes_uphill_exactly_when_c_is_at_most_minus_one(c):
    """Why the rule exists: g~_1 = (1 + c) g_1 points uphill (or nowhere) once c <= -1."""
    (x1,) = _gd_on_quadratic(c, 1)
    assert (abs(x1) >= 1.0) == (c <= -1.0)


@pytest.mark.parametrize("c", [-0.9, -0.5, 0.0, 0.5, 0.9])
def test_kernel_within_the_stability_rule_converges_without_oscillating(c):
    path = _gd_on_quadratic(c, 2000)
    assert abs(path[-1]) < 1e-6
    assert all(x > 0 for x in path)
