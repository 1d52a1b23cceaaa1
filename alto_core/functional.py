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
"""

from __future__ import annotations

import functools
from typing import cast

import torch
from torch import Tensor
from torch.optim import Optimizer

__all__ = ["adapt_gradients", "lamb", "lamb_stacked"]


def _scalar_dtype(dtype: torch.dtype) -> torch.dtype:
    # Bias corrections of float64 parameters are computed in float64 so the
    # float64 transcription of the paper can be matched to ~1e-12.
    return torch.float64 if dtype == torch.float64 else torch.float32


def _norm_dtype(dtype: torch.dtype) -> torch.dtype | None:
    # Trust-ratio norms of half-precision tensors accumulate in float32.
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else None


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
