"""Pieces the Lamb kernels share: the single-tensor and foreach paths of
:func:`alto_core.functional.lamb` (``alto_core/functional.py``,
``alto_core/_foreach.py``) and :func:`alto_core.functional.lamb_stacked`.

Precisions for scalars and norms, the bias-correction terms, the step's scale and
learning rate, and scratch memory; like the kernels, nothing here reads a tensor
back to the host.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _scalar_dtype(dtype: torch.dtype) -> torch.dtype:
    # Bias corrections of float64 parameters are computed in float64 so the
    # float64 transcription of the paper can be matched to ~1e-12.
    return torch.float64 if dtype == torch.float64 else torch.float32


def _norm_dtype(dtype: torch.dtype) -> torch.dtype | None:
    # Trust-ratio norms of half-precision tensors accumulate in float32.
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else None


def _bias_terms(
    step: Tensor, *, beta2: float, beta3: float, eps: float, weight_decay: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-tensor (eps', weight_decay', s) for the bias-corrected form of r'.

    ``step`` is a 0-d tensor (single-tensor path) or a vector of step counts
    (foreach path); everything stays on the device.
    """
    bc1 = 1.0 - torch.pow(beta2, step)
    sqrt_bc2 = torch.sqrt(1.0 - torch.pow(beta3, step))
    return eps * sqrt_bc2, weight_decay * bc1 / sqrt_bc2, sqrt_bc2 / bc1


def _step_scale(
    param_norm: Tensor | None, dir_norm: Tensor | None, fallback: Tensor | None
) -> Tensor | None:
    """The step's multiplier of -lr: the trust ratio where both norms are positive,
    else the bias-correction scale (``fallback``); None means 1."""
    if param_norm is None or dir_norm is None:
        return fallback
    # Norms are >= 0, so their minimum is > 0 exactly when both are (NaN is not).
    keep = torch.minimum(param_norm, dir_norm) > 0
    return torch.where(keep, param_norm / dir_norm, 1.0 if fallback is None else fallback)


def _with_lr(
    scale: Tensor | None, lr: float | Tensor, shape: tuple[int, ...], like: Tensor
) -> tuple[Tensor | None, float]:
    """(multiplier tensor, multiplier number) whose product is the update's -lr * scale.

    A float lr stays a Python number (the ``alpha``/``value`` of the update op). A
    tensor lr, which a scheduler may change in place, is folded into the multiplier
    tensor on the parameters' device, so it is read without a host sync.
    """
    if not isinstance(lr, Tensor):
        return scale, -lr
    neg_lr = torch.neg(lr.reshape(())).to(device=like.device, dtype=_scalar_dtype(like.dtype))
    return (neg_lr.expand(shape) if scale is None else scale * neg_lr), 1.0


def _workspace(numel: int, like: Tensor) -> Tensor:
    """Scratch memory for one step, reused across tensors.

    A fresh temporary per tensor and operation costs more than the arithmetic on
    CPU (the allocator hands back memory that must be faulted in again), so each
    kernel allocates one flat buffer and carves views out of it.
    """
    return torch.empty(numel, dtype=like.dtype, device=like.device)
