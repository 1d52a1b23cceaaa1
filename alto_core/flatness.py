"""Flatness diagnostics: top Hessian eigenvalue and parameter drift (PAPER.md section 5).

The paper's Figure 3 tracks the top Hessian eigenvalue, ||theta_k - theta_0||
and ||theta_k - theta_{k-10}|| but does not say how the eigenvalue was
computed. Here it is power iteration on exact Hessian-vector products (double
backward) of a loss over a fixed batch, from a seeded start vector, stopped at a
relative tolerance or an iteration cap; the result says which one happened.
Non-finite figures are returned as such, never raised: a diverged model has an
infinite or undefined sharpness, and that is a result.
"""

from __future__ import annotations

import functools
import math
import operator
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn.attention import SDPBackend, sdpa_kernel

__all__ = ["DriftFigures", "EigenEstimate", "ParameterDrift", "top_hessian_eigenvalue"]


@dataclass(frozen=True)
class EigenEstimate:
    """Result of :func:`top_hessian_eigenvalue`.

    ``value`` is the Rayleigh quotient v.Hv at the last iterate: the eigenvalue
    of largest magnitude (it may be negative away from a minimum).
    ``converged`` is True when two successive estimates differed by at most
    ``tol * |value|``.
    """

    value: float
    converged: bool
    iterations: int
    tol: float
    seed: int


def _dot(xs: list[Tensor], ys: list[Tensor]) -> Tensor:
    """Sum of the tensors' dot products, added in order (the lists are not empty)."""
    return functools.reduce(operator.add, ((x * y).sum() for x, y in zip(xs, ys, strict=True)))


def top_hessian_eigenvalue(
    loss_fn: Callable[[], Tensor],
    params: Iterable[Tensor],
    *,
    max_iter: int = 100,
    tol: float = 1e-4,
    seed: int = 0,
) -> EigenEstimate:
    """Estimate the top Hessian eigenvalue of ``loss_fn()`` w.r.t. ``params``.

    ``loss_fn`` must compute the loss on the same fixed data every call (it is
    called once; put the model in the mode you want measured, e.g. ``eval()``).
    Each iteration costs one Hessian-vector product (about two backward passes).
    """
    if max_iter < 1:
        raise ValueError(f"Invalid max_iter: {max_iter!r} (must be >= 1)")
    if not tol > 0:
        raise ValueError(f"Invalid tol: {tol!r} (must be > 0)")
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("top_hessian_eigenvalue needs at least one parameter with requires_grad")

    generator = torch.Generator().manual_seed(seed)
    vec = [torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device) for p in params]
    norm = torch.sqrt(_dot(vec, vec))
    vec = [v / norm for v in vec]

    # Fused attention kernels (flash, memory-efficient) have no double backward; the math
    # kernel computes the same attention and can be differentiated twice.
    with sdpa_kernel(SDPBackend.MATH):
        return _power_iteration(loss_fn, params, vec, max_iter=max_iter, tol=tol, seed=seed)


def _power_iteration(
    loss_fn: Callable[[], Tensor],
    params: list[Tensor],
    vec: list[Tensor],
    *,
    max_iter: int,
    tol: float,
    seed: int,
) -> EigenEstimate:
    loss = loss_fn()
    if not bool(torch.isfinite(loss.detach())):
        return EigenEstimate(math.nan, False, 0, tol, seed)
    # None for a parameter the loss does not use.
    raw_grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
    grads = [
        torch.zeros_like(p) if g is None else g for g, p in zip(raw_grads, params, strict=True)
    ]
    if not any(g.requires_grad for g in grads):
        # The loss is linear in the parameters: the Hessian is zero.
        return EigenEstimate(0.0, True, 0, tol, seed)
    differentiable = [g for g in grads if g.requires_grad]
    diff_params = [p for g, p in zip(grads, params, strict=True) if g.requires_grad]
    diff_index = [i for i, g in enumerate(grads) if g.requires_grad]

    previous = math.nan
    value = math.nan
    for iteration in range(1, max_iter + 1):
        hvp_part = torch.autograd.grad(
            differentiable,
            diff_params,
            grad_outputs=[vec[i] for i in diff_index],
            retain_graph=True,
            allow_unused=True,
        )
        hvp = [torch.zeros_like(p) for p in params]
        for i, h in zip(diff_index, hvp_part, strict=True):
            if h is not None:
                hvp[i] = h.detach()
        value = float(_dot(vec, hvp))
        hvp_norm = float(torch.sqrt(_dot(hvp, hvp)))
        if not (math.isfinite(value) and math.isfinite(hvp_norm)):
            return EigenEstimate(value, False, iteration, tol, seed)
        if hvp_norm == 0.0:
            return EigenEstimate(0.0, True, iteration, tol, seed)
        if abs(value - previous) <= tol * abs(value):
            return EigenEstimate(value, True, iteration, tol, seed)
        previous = value
        vec = [h / hvp_norm for h in hvp]
    return EigenEstimate(value, False, max_iter, tol, seed)


@dataclass(frozen=True)
class DriftFigures:
    """||theta_k - theta_0|| and ||theta_k - theta_{k-window}|| (NaN until ``window`` records)."""

    step: int
    from_start: float
    over_window: float
    window: int


class ParameterDrift:
    """Track how far the parameters travel, as in the paper's Figure 3.

    Call :meth:`record` at each point of interest (each step or each epoch);
    ``window`` is counted in records. Snapshots are flat copies kept on
    ``storage_device`` (CPU by default, so GPU memory is not spent on history).
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        window: int = 10,
        storage_device: torch.device | str = "cpu",
    ) -> None:
        if window < 1:
            raise ValueError(f"Invalid window: {window!r} (must be >= 1)")
        self.params = list(params)
        self.window = window
        self.storage_device = torch.device(storage_device)
        wide = any(p.dtype == torch.float64 for p in self.params)
        self._dtype = torch.float64 if wide else torch.float32
        self._start = self._snapshot()
        self._history: deque[Tensor] = deque([self._start], maxlen=window + 1)
        self._step = 0

    def _snapshot(self) -> Tensor:
        with torch.no_grad():
            flat = torch.cat([p.detach().reshape(-1).to(self._dtype) for p in self.params])
        return flat.to(self.storage_device)

    def record(self) -> DriftFigures:
        current = self._snapshot()
        self._step += 1
        self._history.append(current)
        from_start = float(torch.linalg.vector_norm(current - self._start))
        over_window = math.nan
        if len(self._history) == self.window + 1:
            over_window = float(torch.linalg.vector_norm(current - self._history[0]))
        return DriftFigures(self._step, from_start, over_window, self.window)
