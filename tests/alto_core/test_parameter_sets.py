"""Generated parameter sets: every kernel path steps them and agrees with the single-tensor path.

The CPU foreach path sorts parameters three ways (stacks of small same-shaped
tensors, small tensors with out-of-place temporaries, tensors of at least
SCRATCH_MIN_NUMEL elements in scratch batches of at most CPU_CHUNK_NUMEL), so a
parameter set that only packs one way hides the others' bugs: an earlier scratch
buffer crashed whenever the large tensors did not pack into equal batches. Here
hypothesis draws the sets: 1 to 60 tensors of sizes on both sides of each
threshold, empty and 0-d ones, repeated and distinct shapes in random order,
fp32, fp64, bf16 or a mixture, two parameter groups, and gradients that come and
go between steps. ``HYPOTHESIS_PROFILE=thorough`` runs many more examples.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from alto_core import ALTO, E, Lamb
from alto_core._foreach import CPU_CHUNK_NUMEL, SCRATCH_MIN_NUMEL

STEPS = 4
#: Elements per example at most: room for two batches above CPU_CHUNK_NUMEL.
BUDGET = 3 * CPU_CHUNK_NUMEL
DTYPES = {"fp32": torch.float32, "fp64": torch.float64, "bf16": torch.bfloat16}
#: (rtol, atol as a fraction of the tensor's largest magnitude) against the single-tensor path.
TOLERANCE = {
    torch.float64: (1e-10, 1e-10),
    torch.float32: (1e-5, 1e-5),
    # bf16 keeps 8 bits: paths that round in a different order differ by a few ulps.
    torch.bfloat16: (2e-2, 2e-2),
}

SIZE_CLASSES = {
    "empty": (0, 0),
    "tiny": (1, 64),
    "mid": (65, SCRATCH_MIN_NUMEL - 1),
    "edge": (SCRATCH_MIN_NUMEL - 1, SCRATCH_MIN_NUMEL + 1),
    "large": (SCRATCH_MIN_NUMEL, CPU_CHUNK_NUMEL),
    "huge": (CPU_CHUNK_NUMEL + 1, CPU_CHUNK_NUMEL + CPU_CHUNK_NUMEL // 2),
}
#: Size classes by weight: tensors above the scratch threshold are drawn often, because
#: how they pack into batches is where the paths differ most.
SIZE_DRAWS = [
    "empty",
    "tiny",
    "tiny",
    "mid",
    "mid",
    "edge",
    "large",
    "large",
    "large",
    "huge",
    "huge",
]


@st.composite
def shapes(draw):
    low, high = SIZE_CLASSES[draw(st.sampled_from(SIZE_DRAWS))]
    numel = draw(st.integers(low, high))
    if numel == 0:
        return draw(st.sampled_from([(0,), (3, 0), (0, 2, 5)]))
    if numel == 1 and draw(st.booleans()):
        return ()
    # A leading dimension that divides numel, so 1-, 2- and 3-d shapes all occur.
    divisors = [d for d in (1, 2, 3, 4, 5, 7, 8, 16, 64, 768) if numel % d == 0]
    rows = draw(st.sampled_from(divisors))
    if rows == 1 or numel == rows:
        return (numel,)
    rest = numel // rows
    if rest % 4 == 0 and draw(st.booleans()):
        return (rows, 4, rest // 4)
    return (rows, rest)


@st.composite
def parameter_sets(draw):
    """(shapes, dtypes, group of each tensor, gradient presence per step)."""
    pool = draw(st.lists(shapes(), min_size=1, max_size=6))
    picks = draw(st.lists(st.integers(0, len(pool) - 1), min_size=1, max_size=60))
    chosen, total = [], 0
    for i in picks:
        numel = math.prod(pool[i])
        if total + numel <= BUDGET:
            chosen.append(i)
            total += numel
    if not chosen:
        chosen = [min(range(len(pool)), key=lambda i: math.prod(pool[i]))]
    mode = draw(st.sampled_from(["fp32", "fp64", "bf16", "mixed"]))
    if mode == "mixed":
        pool_dtypes = [DTYPES[draw(st.sampled_from(sorted(DTYPES)))] for _ in pool]
    else:
        pool_dtypes = [DTYPES[mode]] * len(pool)
    n = len(chosen)
    groups = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    # Mostly present: a gradient that is missing on some steps leaves and rejoins stacks.
    present = st.sampled_from([True, True, True, False])
    schedule = draw(
        st.lists(st.lists(present, min_size=n, max_size=n), min_size=STEPS, max_size=STEPS)
    )
    return [pool[i] for i in chosen], [pool_dtypes[i] for i in chosen], groups, schedule


@st.composite
def lamb_settings(draw):
    c = draw(st.floats(-0.9, 0.9))
    beta1 = draw(st.sampled_from([0.01, 0.5, 0.9, 0.99]))
    return dict(
        lr=draw(st.sampled_from([1e-3, 1e-2, 1e-1])),
        alpha=c / (1.0 - beta1),
        beta1=beta1,
        weight_decay=draw(st.sampled_from([0.0, 1e-2])),
        trust_ratio=draw(st.sampled_from(["all", "decayed", "none"])),
    )


def _alto(params, settings, foreach, bias_correction=True):
    return ALTO(
        params,
        lr=settings["lr"],
        betas=(settings["beta1"], 0.9, 0.99),
        alpha=settings["alpha"],
        weight_decay=settings["weight_decay"],
        bias_correction=bias_correction,
        trust_ratio=settings["trust_ratio"],
        foreach=foreach,
    )


OPTIMIZERS = {
    "alto": _alto,
    "alto-vanilla": lambda params, s, foreach: _alto(params, s, foreach, bias_correction=False),
    "lamb": lambda params, s, foreach: Lamb(
        params,
        lr=s["lr"],
        weight_decay=s["weight_decay"],
        trust_ratio=s["trust_ratio"],
        foreach=foreach,
    ),
    "e-adamw": lambda params, s, foreach: E(
        torch.optim.AdamW(params, lr=s["lr"], weight_decay=s["weight_decay"], foreach=foreach),
        alpha=s["alpha"],
        beta=s["beta1"],
        foreach=foreach,
    ),
}


def _run(name, settings, sets, seed, foreach):
    """Step a fresh copy of the drawn set; returns its parameters and optimizer."""
    tensor_shapes, dtypes, groups, schedule = sets
    gen = torch.Generator().manual_seed(seed)
    params = [
        torch.nn.Parameter(torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype))
        for shape, dtype in zip(tensor_shapes, dtypes, strict=True)
    ]
    # The second group overrides weight decay, so "decayed" trust ratios differ by group.
    param_groups = [
        {"params": [p for p, g in zip(params, groups, strict=True) if g == 0]},
        {
            "params": [p for p, g in zip(params, groups, strict=True) if g == 1],
            "weight_decay": 1e-2 - settings["weight_decay"],
        },
    ]
    opt = OPTIMIZERS[name]([g for g in param_groups if g["params"]], settings, foreach)
    for present in schedule:
        for p, has_grad in zip(params, present, strict=True):
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            p.grad = (0.3 * p.detach().double() + noise).to(p.dtype) if has_grad else None
        opt.step()
    return params, opt


def _assert_agree(actual, expected, what):
    rtol, atol = TOLERANCE[expected.dtype]
    scale = float(expected.detach().abs().max()) if expected.numel() else 0.0
    torch.testing.assert_close(
        actual.detach(), expected.detach(), rtol=rtol, atol=atol * max(scale, 1e-30), msg=what
    )


@pytest.mark.parametrize("name", OPTIMIZERS)
@given(sets=parameter_sets(), settings=lamb_settings(), seed=st.integers(0, 2**16))
def test_every_path_agrees_with_the_single_tensor_path(name, sets, settings, seed):
    reference, single = _run(name, settings, sets, seed, foreach=False)
    for foreach in (True, None):  # None: the default, what create_optimizer gives
        params, opt = _run(name, settings, sets, seed, foreach=foreach)
        for i, (p, q) in enumerate(zip(params, reference, strict=True)):
            where = f"tensor {i} {tuple(p.shape)} {p.dtype}, foreach={foreach}"
            assert p.dtype == q.dtype and p.shape == q.shape
            _assert_agree(p, q, lambda m, where=where: f"{where}: {m}")
            assert set(opt.state[p]) == set(single.state[q]), where
            for key, value in single.state[q].items():
                _assert_agree(opt.state[p][key], value, lambda m, k=key, w=where: f"{w} {k}: {m}")
    # The comparison proves nothing unless the run moved something: some fp32/fp64 tensor
    # that had a gradient (bf16 may round a small step away).
    start = torch.Generator().manual_seed(seed)
    initial = [torch.randn(p.shape, generator=start, dtype=torch.float64) for p in reference]
    stepped = [
        p.dtype != torch.bfloat16 and p.numel() > 0 and any(step[i] for step in sets[3])
        for i, p in enumerate(reference)
    ]
    moved = [
        not torch.equal(p.detach(), x.to(p.dtype)) for p, x in zip(reference, initial, strict=True)
    ]
    assert any(m for m, s in zip(moved, stepped, strict=True) if s) or not any(stepped)
