"""Functional kernels for the adaptor E and the Lamb family (ALTO, ALTO vanilla, Lamb).

Shaped like ``torch/optim/adam.py``: each public function dispatches to a
single-tensor implementation (a Python loop over parameters) or a
``torch._foreach_*`` implementation grouped by device and dtype;
:func:`lamb_stacked` is the Lamb step for parameters whose state is stacked
(``alto_core/_stacks.py``). Hyperparameters
arrive as Python numbers and step counters as tensors on each parameter's
device, so nothing here reads a tensor back to the host: no ``.item()`` and no
Python ``if`` on a tensor value.

The adaptor uses the one-buffer identity (PAPER.md section 1). With e the EMA of
past gradients and c = alpha * (1 - beta1)::

    g~_k = g_k + c * (g_k - e_{k-1})        (= g_k + alpha * a_k, exactly)
    e_k  = beta1 * e_{k-1} + (1 - beta1) * g_k

so E keeps one parameter-sized tensor where the two-buffer recursion
(previous gradient and a) keeps two.

The ``torch._foreach_*`` Lamb kernel lives in ``alto_core/_foreach.py`` and the
pieces the Lamb kernels share in ``alto_core/_kernel_parts.py`` (this file would
otherwise pass the project's size limit).
"""

from __future__ import annotations

import torch
from torch import Tensor

from alto_core._foreach import CPU_CHUNK_NUMEL, _group_by_device_and_dtype, _multi_tensor_lamb
from alto_core._kernel_parts import (
    _bias_terms,
    _norm_dtype,
    _scalar_dtype,
    _step_scale,
    _with_lr,
    _workspace,
)

__all__ = ["adapt_gradients", "lamb", "lamb_stacked"]


# --------------------------------------------------------------------------- E


def adapt_gradients(
    grads: list[Tensor],
    emas: list[Tensor],
    *,
    alpha: float,
    beta: float,
    foreach: bool,
    advance: bool = True,
) -> None:
    """Turn each gradient into E's modified gradient, in place, and advance the EMA
    (unless ``advance`` is False: a second evaluation within one step).

    In place means the tensors in ``grads`` keep their storage (DDP bucket views
    and anything else holding ``p.grad`` keep seeing the live gradient).
    """
    if not grads:
        return
    c = alpha * (1.0 - beta)
    if foreach:
        for g, e in _group_by_device_and_dtype([grads, emas]).values():
            diff = torch._foreach_sub(g, e) if c != 0.0 else None
            if advance:
                torch._foreach_lerp_(e, g, 1.0 - beta)
            if diff is not None:
                torch._foreach_add_(g, diff, alpha=c)
        return
    for grad, ema in zip(grads, emas, strict=True):
        delta = grad - ema if c != 0.0 else None
        if advance:
            ema.lerp_(grad, 1.0 - beta)
        if delta is not None:
            grad.add_(delta, alpha=c)


# ------------------------------------------------------------------- Lamb family


def lamb(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[Tensor],
    emas: list[Tensor] | None,
    *,
    lr: float | Tensor,
    alpha: float,
    beta1: float,
    beta2: float,
    beta3: float,
    eps: float,
    weight_decay: float,
    bias_correction: bool,
    trust_ratio: bool,
    foreach: bool,
) -> None:
    """One step of Lamb, with the adaptor E on the gradient when ``emas`` is given.

    Per parameter tensor theta (PAPER.md, Algorithm 2)::

        g~    = g + alpha * a                         (via the one-buffer identity)
        m     = beta2 * m + (1 - beta2) * g~
        v     = beta3 * v + (1 - beta3) * g~^2
        r     = m^ / (sqrt(v^) + eps) + weight_decay * theta
        trust = ||theta|| / ||r||  if both norms > 0 else 1      (if trust_ratio)
        theta = theta - lr * trust * r

    with m^ = m / (1 - beta2^k), v^ = v / (1 - beta3^k) when ``bias_correction``
    (ALTO) and m^ = m, v^ = v otherwise (ALTO vanilla).

    Implementation note: with s = sqrt(1 - beta3^k) / (1 - beta2^k) the
    bias-corrected direction is r = s * r' where
    r' = m / (sqrt(v) + eps * sqrt(1 - beta3^k)) + (weight_decay / s) * theta,
    and the trust-ratio step lr * (||theta|| / ||r||) * r equals
    lr * (||theta|| / ||r'||) * r'. Working with r' saves two passes over memory.
    """
    if not params:
        return
    impl = _multi_tensor_lamb if foreach else _single_tensor_lamb
    impl(
        params,
        grads,
        exp_avgs,
        exp_avg_sqs,
        steps,
        emas,
        lr=lr,
        c=alpha * (1.0 - beta1),
        beta1=beta1,
        beta2=beta2,
        beta3=beta3,
        eps=eps,
        weight_decay=weight_decay,
        bias_correction=bias_correction,
        trust_ratio=trust_ratio,
    )


def _bias_terms_each(
    params: list[Tensor], steps: list[Tensor], **hyper: float
) -> list[tuple[Tensor, Tensor, Tensor]]:
    """:func:`_bias_terms` of each tensor, computed as vectors once per device and
    precision: a dozen 0-d ops per tensor cost more than the rest of its step."""
    members: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    for i, p in enumerate(params):
        members.setdefault((p.device, _scalar_dtype(p.dtype)), []).append(i)
    terms: dict[int, tuple[Tensor, Tensor, Tensor]] = {}
    for (_, dtype), index in members.items():
        vectors = _bias_terms(torch.stack([steps[i] for i in index]).to(dtype), **hyper)
        terms.update(zip(index, zip(*(v.unbind() for v in vectors), strict=True), strict=True))
    return [terms[i] for i in range(len(params))]


def _single_tensor_lamb(
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
    scratch: dict[tuple[torch.device, torch.dtype], Tensor] = {}
    for p in params:
        key = (p.device, p.dtype)
        if key not in scratch or scratch[key].numel() < p.numel():
            scratch[key] = _workspace(p.numel(), p)

    for step in steps:
        step.add_(1)
    bias = None
    if bias_correction:
        bias = _bias_terms_each(
            params, steps, beta2=beta2, beta3=beta3, eps=eps, weight_decay=weight_decay
        )

    for i, param in enumerate(params):
        grad, exp_avg, exp_avg_sq = grads[i], exp_avgs[i], exp_avg_sqs[i]
        tmp = scratch[(param.device, param.dtype)][: param.numel()].view(param.shape)

        mod_grad = grad
        if emas is not None:
            if c != 0.0:
                mod_grad = torch.lerp(grad, emas[i], -c, out=tmp)
            emas[i].lerp_(grad, 1.0 - beta1)

        exp_avg.lerp_(mod_grad, 1.0 - beta2)
        exp_avg_sq.mul_(beta3).addcmul_(mod_grad, mod_grad, value=1.0 - beta3)

        denom = torch.sqrt(exp_avg_sq, out=tmp)
        fallback = None
        if bias is not None:
            eps_k, wd_k, fallback = bias[i]
            denom.add_(eps_k)
        else:
            denom.add_(eps)
        direction = torch.div(exp_avg, denom, out=tmp)
        if weight_decay != 0.0:
            if bias_correction:
                direction.addcmul_(param, wd_k)
            else:
                direction.add_(param, alpha=weight_decay)

        param_norm = dir_norm = None
        if trust_ratio:
            norm_dtype = _norm_dtype(param.dtype)
            param_norm = torch.linalg.vector_norm(param, dtype=norm_dtype)
            dir_norm = torch.linalg.vector_norm(direction, dtype=norm_dtype)
        scale, value = _with_lr(_step_scale(param_norm, dir_norm, fallback), lr, (), param)
        if scale is None:
            param.add_(direction, alpha=value)
        else:
            param.addcmul_(direction, scale, value=value)


def lamb_stacked(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    step: Tensor,
    ema: Tensor | None,
    workspace: Tensor,
    *,
    lr: float | Tensor,
    alpha: float,
    beta1: float,
    beta2: float,
    beta3: float,
    eps: float,
    weight_decay: float,
    bias_correction: bool,
    trust_ratio: bool,
) -> None:
    """:func:`lamb` for k parameters of one shape whose state is stacked.

    ``exp_avg``, ``exp_avg_sq`` and ``ema`` are (k, *shape) tensors whose row i
    belongs to ``params[i]``, and ``step`` is the (k,) vector of their step
    counts. Each elementwise operation then runs once over all k rows instead
    of once per tensor, and the trust-ratio norms are row reductions: on CPU,
    where a foreach op dispatches a kernel per tensor, this is several times
    faster for small tensors (numel < SCRATCH_MIN_NUMEL). Gradients and
    parameters are gathered into ``workspace`` in chunks of at most
    CPU_CHUNK_NUMEL elements, so it needs 2 * min(k * numel, CPU_CHUNK_NUMEL)
    elements.
    """
    k, numel = len(params), params[0].numel()
    dtype = params[0].dtype
    c = alpha * (1.0 - beta1)
    step.add_(1)
    eps_k = wd_k = fallback = None
    if bias_correction:
        eps_k, wd_k, fallback = _bias_terms(
            step.to(_scalar_dtype(dtype)),
            beta2=beta2,
            beta3=beta3,
            eps=eps,
            weight_decay=weight_decay,
        )
    norm_dtype = _norm_dtype(dtype)
    rows = max(1, min(k, CPU_CHUNK_NUMEL // numel))
    for start in range(0, k, rows):
        stop = min(k, start + rows)
        chunk = params[start:stop]
        shape = (stop - start, *params[0].shape)
        column = (stop - start,) + (1,) * params[0].dim()
        size = (stop - start) * numel
        a = workspace[:size].view(shape)
        b = workspace[size : 2 * size].view(shape)
        m, v = exp_avg[start:stop], exp_avg_sq[start:stop]

        grad = torch.stack(grads[start:stop], out=a)
        mod_grad = grad
        if ema is not None:
            e = ema[start:stop]
            if c != 0.0:
                mod_grad = torch.lerp(grad, e, -c, out=b)
            e.lerp_(grad, 1.0 - beta1)
        m.lerp_(mod_grad, 1.0 - beta2)
        v.mul_(beta3).addcmul_(mod_grad, mod_grad, value=1.0 - beta3)

        direction = torch.sqrt(v, out=b)
        direction.add_(eps if eps_k is None else eps_k[start:stop].view(column))
        torch.div(m, direction, out=direction)
        param_norm = dir_norm = None
        if weight_decay != 0.0 or trust_ratio:
            theta = torch.stack(chunk, out=a)  # the gradients in ``a`` are no longer needed
            if weight_decay != 0.0:
                if wd_k is None:
                    direction.add_(theta, alpha=weight_decay)
                else:
                    direction.addcmul_(theta, wd_k[start:stop].view(column))
            if trust_ratio:
                param_norm = torch.linalg.vector_norm(
                    theta.view(-1, numel), dim=1, dtype=norm_dtype
                )
                dir_norm = torch.linalg.vector_norm(
                    direction.view(-1, numel), dim=1, dtype=norm_dtype
                )
        scale, value = _with_lr(
            _step_scale(param_norm, dir_norm, None if fallback is None else fallback[start:stop]),
            lr,
            (stop - start,),
            direction,
        )
        if scale is not None:
            direction.mul_(scale.view(column))
        torch._foreach_add_(chunk, direction.unbind(0), alpha=value)
