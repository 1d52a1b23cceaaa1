"""The ``torch._foreach_*`` path of :func:`alto_core.functional.lamb`, and the
grouping by device and dtype that :func:`alto_core.functional.adapt_gradients`
shares with it.

Kept apart from ``alto_core/functional.py`` for size only (``torch/optim/adam.py``
keeps both paths in one file); the public functions there dispatch here.
"""

from __future__ import annotations

import functools
from typing import cast

import torch
from torch import Tensor
from torch.optim import Optimizer

from alto_core._kernel_parts import (
    _bias_terms,
    _norm_dtype,
    _scalar_dtype,
    _step_scale,
    _with_lr,
    _workspace,
)

#: What torch's foreach ops take and return (the out-of-place ones return tuples).
_TensorList = list[Tensor] | tuple[Tensor, ...]


def _group_by_device_and_dtype(
    tensorlists: list[list[Tensor]],
) -> dict[tuple[torch.device, torch.dtype], list[list[Tensor]]]:
    """``Optimizer._group_tensors_by_device_and_dtype``, without the indices.

    torch annotates the lists as holding optional tensors (and the keys as
    optional, which they are only under torch.compile); these hold tensors.
    """
    grouped = Optimizer._group_tensors_by_device_and_dtype(
        cast("list[list[Tensor | None]]", tensorlists)
    )
    return {
        cast("tuple[torch.device, torch.dtype]", key): cast("list[list[Tensor]]", tensors)
        for key, (tensors, _) in grouped.items()
    }


# Where temporaries come from in the foreach path on CPU. A fresh temporary for a
# large tensor comes straight from the OS and is faulted in page by page, which
# costs several times the arithmetic; small ones are recycled by malloc and
# cost nothing, while every extra op on a small tensor costs a dispatch. So
# tensors of at least SCRATCH_MIN_NUMEL elements work in place in a reused
# scratch buffer (chunks of at most CPU_CHUNK_NUMEL elements), and smaller ones
# use out-of-place ops (fewest passes), unless enough of them share a shape to be
# stacked (lamb_stacked, alto_core/_stacks.py). Accelerators' caching allocators
# make temporaries cheap, so there everything takes the out-of-place form.
SCRATCH_MIN_NUMEL = 1 << 15
CPU_CHUNK_NUMEL = 1 << 20


def _batches(params: list[Tensor], device: torch.device) -> list[tuple[list[int], bool]]:
    """Index batches of a device/dtype group, each flagged whether it uses a scratch buffer."""
    if device.type != "cpu":
        return [(list(range(len(params))), False)]
    small = [i for i, p in enumerate(params) if p.numel() < SCRATCH_MIN_NUMEL]
    batches = [(small, False)] if small else []
    chunk: list[int] = []
    total = 0
    for i, p in enumerate(params):
        if p.numel() < SCRATCH_MIN_NUMEL:
            continue
        if chunk and total + p.numel() > CPU_CHUNK_NUMEL:
            batches.append((chunk, True))
            chunk, total = [], 0
        chunk.append(i)
        total += p.numel()
    if chunk:
        batches.append((chunk, True))
    return batches


def _pick(tensors: list[Tensor], index: list[int]) -> list[Tensor]:
    """The tensors at ``index``: the list itself when that is all of them."""
    return tensors if len(index) == len(tensors) else [tensors[i] for i in index]


def _multi_tensor_lamb(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[Tensor],
    emas: list[Tensor] | None,
    *,
    lr: float | Tensor,
    c: float,
    beta1: float,
    beta2: float,
    beta3: float,
    eps: float,
    weight_decay: float,
    bias_correction: bool,
    trust_ratio: bool,
) -> None:
    lists = [params, grads, exp_avgs, exp_avg_sqs, steps]
    if emas is not None:
        lists.append(emas)
    for (device, dtype), tensors in _group_by_device_and_dtype(lists).items():
        torch._foreach_add_(tensors[4], torch.ones((), device=device))
        bias = None
        if bias_correction:
            step_vec = torch.stack(tensors[4]).to(_scalar_dtype(dtype))
            bias = _bias_terms(
                step_vec, beta2=beta2, beta3=beta3, eps=eps, weight_decay=weight_decay
            )
        batches = _batches(tensors[0], device)
        # One scratch buffer per group, as large as the largest batch that needs it.
        scratch_numel = max(
            (sum(tensors[0][i].numel() for i in index) for index, use in batches if use),
            default=0,
        )
        buffer = _workspace(scratch_numel, tensors[0][0]) if scratch_numel else None
        for index, use_scratch in batches:
            p, g, m, v = (_pick(tensors[j], index) for j in range(4))
            ema = None if emas is None else _pick(tensors[5], index)
            batch_bias = bias
            if bias is not None and len(index) < len(tensors[0]):
                picked = torch.tensor(index, device=device)
                batch_bias = (bias[0][picked], bias[1][picked], bias[2][picked])
            scratch = None
            if use_scratch:
                assert buffer is not None  # scratch_numel > 0: this batch counted
                # Each batch takes a view of its own size: the buffer is sized for the
                # largest batch, and split_with_sizes must cover its input exactly.
                sizes = [t.numel() for t in p]
                parts = buffer[: sum(sizes)].split(sizes)
                scratch = [part.view(t.shape) for part, t in zip(parts, p, strict=True)]
            _multi_tensor_lamb_batch(
                p,
                g,
                m,
                v,
                ema,
                scratch,
                batch_bias,
                lr=lr,
                c=c,
                beta1=beta1,
                beta2=beta2,
                beta3=beta3,
                eps=eps,
                weight_decay=weight_decay,
                trust_ratio=trust_ratio,
                dtype=dtype,
            )


def _multi_tensor_lamb_batch(
    p: list[Tensor],
    g: list[Tensor],
    m: list[Tensor],
    v: list[Tensor],
    e: list[Tensor] | None,
    scratch: list[Tensor] | None,
    bias: tuple[Tensor, Tensor, Tensor] | None,
    *,
    lr: float | Tensor,
    c: float,
    beta1: float,
    beta2: float,
    beta3: float,
    eps: float,
    weight_decay: float,
    trust_ratio: bool,
    dtype: torch.dtype,
) -> None:
    eps_k, wd_k, fallback = bias if bias is not None else (None, None, None)
    # Hyperparameters as 0-d tensors: the Tensor overloads of the foreach ops skip
    # wrapping a Python scalar for every tensor (about 3x cheaper on CPU), and a
    # 0-d operand computes in the same precision as the Python number would.
    scalar = functools.partial(torch.tensor, dtype=_scalar_dtype(dtype), device=p[0].device)

    # tmp: one temporary per tensor, made by the first out-of-place op (or the
    # scratch views) and reused in place for g~, then sqrt(v), then the direction.
    tmp: _TensorList | None = scratch
    mod_grad: _TensorList = g
    if e is not None:
        if c != 0.0:
            if tmp is None:
                tmp = torch._foreach_lerp(g, e, -c)
            else:
                torch._foreach_copy_(tmp, g)
                torch._foreach_lerp_(tmp, e, -c)
            mod_grad = tmp
        torch._foreach_lerp_(e, g, 1.0 - beta1)

    torch._foreach_lerp_(m, mod_grad, 1.0 - beta2)
    torch._foreach_mul_(v, scalar(beta3))
    torch._foreach_addcmul_(v, mod_grad, mod_grad, 1.0 - beta3)
    del mod_grad

    if tmp is None:
        tmp = torch._foreach_sqrt(v)
    else:
        torch._foreach_copy_(tmp, v)
        torch._foreach_sqrt_(tmp)
    if eps_k is not None:
        torch._foreach_add_(tmp, eps_k.unbind())
    else:
        torch._foreach_add_(tmp, scalar(eps))
    # m / denom in place: (denom / m)^-1; m = 0 gives inf, then 0, as it should.
    torch._foreach_div_(tmp, m)
    torch._foreach_reciprocal_(tmp)
    direction = tmp
    if weight_decay != 0.0:
        if wd_k is not None:
            torch._foreach_addcmul_(direction, p, wd_k.unbind())
        else:
            torch._foreach_add_(direction, p, alpha=weight_decay)

    param_norm = dir_norm = None
    if trust_ratio:
        norm_dtype = _norm_dtype(dtype)
        param_norm = torch.stack(torch._foreach_norm(p, 2, dtype=norm_dtype))
        dir_norm = torch.stack(torch._foreach_norm(direction, 2, dtype=norm_dtype))
    scale, value = _with_lr(_step_scale(param_norm, dir_norm, fallback), lr, (len(p),), p[0])
    if scale is None:
        torch._foreach_add_(p, direction, alpha=value)
    else:
        torch._foreach_addcmul_(p, direction, scale.unbind(), value=value)
