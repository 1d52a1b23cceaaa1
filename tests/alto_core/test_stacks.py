"""Stacked state on the CPU foreach path: shared storage behind ordinary per-parameter state.

The stacked kernel's arithmetic is checked against Algorithm 2 in test_alto_exactness.py
("stacked"); these tests cover what stacking could break around it: which state is
stacked, parameters whose gradients come and go, and state loaded from elsewhere.
"""

from __future__ import annotations

import io

import pytest
import torch

from alto_core import ALTO, Lamb
from tests.alto_core.helpers import STACKED_SHAPES, gradient, make_params, set_grads

KEYS = ("step", "grad_ema", "exp_avg", "exp_avg_sq")


def _storage(tensor):
    return tensor.untyped_storage().data_ptr()


def _step_all(opt, params, step, skip=()):
    grads = gradient(params, step)
    for i, (p, g) in enumerate(zip(params, grads, strict=True)):
        p.grad = None if i in skip else g.clone()
    opt.step()


def _assert_same_state(ours, theirs, params_ours, params_theirs):
    for p, q in zip(params_ours, params_theirs, strict=True):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-12, atol=1e-14)
        for key in KEYS:
            torch.testing.assert_close(ours.state[p][key], theirs.state[q][key], rtol=1e-12, atol=0)


def test_only_same_shaped_small_cpu_parameters_are_stacked():
    params = make_params(shapes=STACKED_SHAPES)
    opt = ALTO(params, lr=1e-2, foreach=True)
    set_grads(params, gradient(params, 0))
    opt.step()
    storages = {shape: set() for shape in set(STACKED_SHAPES)}
    for p in params:
        state = opt.state[p]
        assert state["step"].shape == () and float(state["step"]) == 1
        assert state["exp_avg"].shape == p.shape
        storages[tuple(p.shape)].add(_storage(state["exp_avg"]))
    # Five (3, 2) and five (4,) tensors share one storage per shape; (5, 3) and (7,) are alone.
    assert {shape: len(s) for shape, s in storages.items()} == {
        (3, 2): 1,
        (4,): 1,
        (5, 3): 1,
        (7,): 1,
    }
    # The single-tensor path never stacks.
    single = ALTO(params, lr=1e-2, foreach=False)
    single.step()
    assert len({_storage(single.state[p]["exp_avg"]) for p in params}) == len(params)


def test_gradients_that_come_and_go_leave_every_parameter_exact():
    """Parameters leave and rejoin a stack (and the stack falls below its minimum size)."""
    ours, theirs = make_params(shapes=STACKED_SHAPES), make_params(shapes=STACKED_SHAPES)
    stacked = ALTO(ours, lr=1e-2, weight_decay=1e-2, foreach=True)
    single = ALTO(theirs, lr=1e-2, weight_decay=1e-2, foreach=False)
    # Indices 0-4 are the (3, 2) stack: first two leave it, then four (one is left).
    schedule = [(), (), (0, 1), (0, 1), (), (0, 1, 2, 3), (), ()]
    for step, skip in enumerate(schedule):
        _step_all(stacked, ours, step, skip)
        _step_all(single, theirs, step, skip)
        _assert_same_state(stacked, single, ours, theirs)
    assert [float(stacked.state[p]["step"]) for p in ours[:5]] == [5, 5, 7, 7, 8]


@pytest.mark.parametrize("source_foreach", [False, True], ids=["from-single", "from-stacked"])
def test_loaded_state_continues_exactly(source_foreach):
    """A checkpoint (written by either path) continues in a stacked optimizer as in the original."""
    params = make_params(shapes=STACKED_SHAPES)
    source = Lamb(params, lr=1e-2, foreach=source_foreach)
    for step in range(5):
        _step_all(source, params, step)
    buffer = io.BytesIO()
    torch.save(source.state_dict(), buffer)

    copies = [torch.nn.Parameter(p.detach().clone()) for p in params]
    loaded = Lamb(copies, lr=1e-2, foreach=True)
    buffer.seek(0)
    loaded.load_state_dict(torch.load(buffer, weights_only=True))
    loaded.param_groups[0]["foreach"] = True  # the checkpoint carries the source's flag
    for step in range(5, 10):
        _step_all(source, params, step)
        _step_all(loaded, copies, step)
    for p, q in zip(params, copies, strict=True):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-12, atol=1e-14)
        for key in ("step", "exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(source.state[p][key], loaded.state[q][key])
    # The loaded tensors were copied into stacks, so the loaded state is stacked again.
    assert len({_storage(loaded.state[q]["exp_avg"]) for q in copies[:5]}) == 1


def test_state_reset_by_hand_is_honoured():
    """Clearing ``optimizer.state`` (a common way to restart moments) restarts stacked state too."""
    params = make_params(shapes=STACKED_SHAPES)
    opt = ALTO(params, lr=1e-2, foreach=True)
    for step in range(3):
        _step_all(opt, params, step)
    opt.state.clear()
    copies = [torch.nn.Parameter(p.detach().clone()) for p in params]
    fresh = ALTO(copies, lr=1e-2, foreach=True)
    for step in range(3, 6):
        _step_all(opt, params, step)
        _step_all(fresh, copies, step)
    _assert_same_state(opt, fresh, params, copies)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_low_precision_stacks_agree_with_the_single_tensor_path(dtype):
    results = []
    for foreach in (True, False):
        params = make_params(dtype=dtype, shapes=STACKED_SHAPES)
        opt = ALTO(params, lr=1e-2, weight_decay=1e-2, foreach=foreach)
        for step in range(10):
            _step_all(opt, params, step)
        results.append(params)
    low = dtype != torch.float32
    for a, b in zip(*results, strict=True):
        assert a.dtype == dtype
        # Same arithmetic; the norms' reduction order and the precision of the per-tensor
        # scalars (exact 0-d operands on one path, float32 columns on the other) may differ.
        torch.testing.assert_close(a, b, rtol=2e-2 if low else 1e-6, atol=1e-2 if low else 1e-6)
