"""Deterministic parameters and gradient streams shared by the alto_core tests."""

from __future__ import annotations

import torch

SHAPES = [(5, 3), (7,), (2, 3, 4), (4,)]
#: Enough parameters of one shape that the CPU foreach path stacks them
#: (alto_core/_stacks.py), mixed with shapes that it does not stack.
STACKED_SHAPES = [(3, 2)] * 5 + [(5, 3), (7,)] + [(4,)] * 5


def make_params(dtype=torch.float64, seed=0, zero_last=True, shapes=SHAPES):
    """Parameters of several shapes; the last one starts at zero (trust-ratio fallback)."""
    gen = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=dtype)) for s in shapes]
    if zero_last:
        with torch.no_grad():
            params[-1].zero_()
    return params


def gradient(params, step, seed=1):
    """A gradient that depends on the parameters and on a seeded noise stream."""
    gen = torch.Generator().manual_seed(seed * 100_003 + step)
    return [0.3 * p.detach() + torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]


def set_grads(params, grads):
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()
