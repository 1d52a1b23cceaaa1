"""ALTO (the adaptor E applied to Lamb) and plain Lamb, the baseline it is measured against.

Both share one kernel, :func:`alto_core.functional.lamb`; variants are flags:

- ``bias_correction=False`` is "ALTO vanilla" (the paper's Algorithm 1),
- ``trust_ratio`` chooses which groups get the layer-wise trust ratio:
  ``"all"`` (default), ``"decayed"`` (only groups with weight decay, what the
  authors' reference code does) or ``"none"``.

The default is ``"all"`` because the paper's Algorithm 2 applies the trust ratio
to every layer and its ablation (CIFAR-10, batch 16384) shows that removing it
costs 1.3 to 2.6 points; the reference code silently gives bias and
normalisation groups (weight decay 0) a plain Adam step instead.

Gradient clipping is not done here: clip in the training loop if you want it.

On CPU the foreach path stacks the state of small same-shaped parameters
(``alto_core/_stacks.py``), which makes a step on many small tensors several
times cheaper; the state still reads per parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast, overload

import torch
from torch import Tensor
from torch.optim import Optimizer

from alto_core import _checks
from alto_core._stacks import Stacks
from alto_core.functional import lamb as lamb_kernel
from alto_core.functional import lamb_stacked

__all__ = ["ALTO", "Lamb"]

ParamsT = Iterable[Tensor] | Iterable[dict[str, Any]]
_Loss = TypeVar("_Loss")


def _default_foreach(params: list[Tensor]) -> bool:
    # The foreach path also batches the per-tensor scalar work (step counts,
    # norms, trust ratios) into vectors, which pays off on CPU as well, so it is
    # the default wherever torch has foreach kernels for the tensors.
    return all(type(p) in (Tensor, torch.nn.Parameter) for p in params)


def _counter_dtype() -> torch.dtype:
    # As torch's optimizers: float64 under a float64 default dtype, else float32
    # (exact up to 2**24 steps).
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _step_counter(step: Any, param: Tensor) -> Tensor:
    """A loaded step count as this optimizer keeps it: a 0-d tensor on the parameter's
    device. Older or converted checkpoints hold a Python number, and torch's
    load_state_dict leaves a tensor count on the device it was saved from."""
    if isinstance(step, Tensor):
        return step.to(device=param.device).reshape(())
    return torch.tensor(float(step), dtype=_counter_dtype(), device=param.device)


class _LambFamily(Optimizer):
    """Shared body of :class:`ALTO` and :class:`Lamb` (not part of the public API)."""

    _adaptor: bool

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        self._validate(defaults)
        self._stacks = Stacks()
        super().__init__(params, defaults)

    def _validate(self, group: dict[str, Any]) -> None:
        raise NotImplementedError

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        # Validate the merged group, so per-group overrides get the same checks.
        self._validate(self.param_groups[-1])

    def _moment_betas(self, group: dict[str, Any]) -> tuple[float, float, float]:
        raise NotImplementedError

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Also the end of load_state_dict, which hands over the loaded state here.
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("foreach", None)
            for p in group["params"]:
                p_state = self.state.get(p)
                if p_state and "step" in p_state:
                    p_state["step"] = _step_counter(p_state["step"], p)
        self._stacks = Stacks()

    def _state_keys(self) -> tuple[str, ...]:
        keys = ("step", "exp_avg", "exp_avg_sq")
        return (*keys, "grad_ema") if self._adaptor else keys

    def _init_group(self, group: dict[str, Any]) -> list[Tensor]:
        """The group's parameters that have gradients, each with its state initialised."""
        params = []
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
            if torch.is_complex(p):
                raise RuntimeError(f"{type(self).__name__} does not support complex parameters")
            state = self.state[p]
            if len(state) == 0:
                # The step counter lives on the parameter's device so bias
                # corrections never need the host.
                state["step"] = torch.zeros((), dtype=_counter_dtype(), device=p.device)
                for key in self._state_keys()[1:]:
                    state[key] = torch.zeros_like(p, memory_format=torch.preserve_format)
            params.append(p)
        return params

    @overload
    def step(self, closure: None = None) -> None: ...
    @overload
    def step(self, closure: Callable[[], _Loss]) -> _Loss: ...
    @torch.no_grad()
    def step(self, closure: Callable[[], _Loss] | None = None) -> _Loss | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for index, group in enumerate(self.param_groups):
            params = self._init_group(group)
            if not params:
                continue
            foreach = group["foreach"]
            if foreach is None:
                foreach = _default_foreach(params)
            beta1, beta2, beta3 = self._moment_betas(group)
            mode = group["trust_ratio"]
            hyper = dict(
                lr=group["lr"],
                alpha=group.get("alpha", 0.0),
                beta1=beta1,
                beta2=beta2,
                beta3=beta3,
                eps=group["eps"],
                weight_decay=group["weight_decay"],
                bias_correction=group["bias_correction"],
                trust_ratio=mode == "all" or (mode == "decayed" and group["weight_decay"] != 0),
            )
            if foreach:
                stacks, params = self._stacks.take(index, params, self.state, self._state_keys())
                for stack in stacks:
                    buffers = stack.buffers
                    lamb_stacked(
                        stack.params,
                        _grads(stack.params),
                        buffers["exp_avg"],
                        buffers["exp_avg_sq"],
                        buffers["step"],
                        buffers.get("grad_ema"),
                        self._stacks.workspace(stack),
                        **hyper,
                    )
            states = [self.state[p] for p in params]
            lamb_kernel(
                params,
                _grads(params),
                [s["exp_avg"] for s in states],
                [s["exp_avg_sq"] for s in states],
                [s["step"] for s in states],
                [s["grad_ema"] for s in states] if self._adaptor else None,
                foreach=foreach,
                **hyper,
            )
        return loss


def _grads(params: list[Tensor]) -> list[Tensor]:
    """The gradients of parameters that ``_init_group`` kept, which all have one."""
    return [cast(Tensor, p.grad) for p in params]


def _check_common(group: dict[str, Any]) -> None:
    _checks.check_lr(group["lr"])
    _checks.check_eps(group["eps"])
    _checks.check_weight_decay(group["weight_decay"])
    _checks.check_bool("bias_correction", group["bias_correction"])
    _checks.check_choice("trust_ratio", group["trust_ratio"], _checks.TRUST_RATIO_MODES)
    if group["foreach"] not in (None, True, False):
        raise ValueError(f"Invalid foreach: {group['foreach']!r} (expected None, True or False)")


def _unpack_betas(betas: Any, count: int) -> tuple[float, ...]:
    if not isinstance(betas, (tuple, list)) or len(betas) != count:
        raise ValueError(f"Invalid betas: {betas!r} (expected a tuple of {count} numbers)")
    return tuple(betas)


class ALTO(_LambFamily):
    r"""ALTO: the adaptor E applied to Lamb (Zhao et al., NeurIPS 2025, Algorithm 2).

    Per step k and parameter tensor theta, with c = alpha * (1 - beta1)::

        g~    = g + alpha * a,   a = beta1 * a + (1 - beta1) * (g - g_prev)
              = (1 + c) * g - c * e,   e = EMA_beta1(past g)      (one buffer)
        m     = beta2 * m + (1 - beta2) * g~
        v     = beta3 * v + (1 - beta3) * g~^2
        r     = m^ / (sqrt(v^) + eps) + weight_decay * theta
        theta = theta - lr * (||theta|| / ||r||) * r

    Args:
        params: parameters or parameter groups (groups may override any option).
        lr: learning rate (>= 0), a number or a one-element tensor.
        betas: (beta1, beta2, beta3) in the paper's order: beta1 is the
            adaptor's EMA coefficient, beta2 and beta3 are Adam's usual
            first- and second-moment coefficients.
        alpha: adaptor strength. Negative explores (large batch), positive
            exploits (small batch). Must satisfy |alpha * (1 - beta1)| < 1.
        eps: added to sqrt(v^) (> 0); the paper uses 1e-6.
        weight_decay: decoupled into r, as in Lamb.
        bias_correction: False gives "ALTO vanilla" (Algorithm 1).
        trust_ratio: "all" (default, the paper), "decayed" (the reference
            code: only groups with weight decay), or "none".
        foreach: use the ``torch._foreach_*`` path (None: when possible).

    State per parameter: ``grad_ema`` (e), ``exp_avg`` (m), ``exp_avg_sq`` (v)
    and a 0-d ``step`` tensor: 12 bytes per fp32 parameter where the reference
    implementation keeps 24. On the CPU foreach path, small parameters of one
    shape keep these as rows of stacked tensors (see ``alto_core/_stacks.py``).
    """

    _adaptor = True

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float, float] = (0.99, 0.9, 0.99),
        alpha: float = -5.0,
        eps: float = 1e-6,
        weight_decay: float = 1e-4,
        *,
        bias_correction: bool = True,
        trust_ratio: str = "all",
        foreach: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            bias_correction=bias_correction,
            trust_ratio=trust_ratio,
            foreach=foreach,
        )
        super().__init__(params, defaults)

    def _validate(self, group: dict[str, Any]) -> None:
        _check_common(group)
        beta1, beta2, beta3 = _unpack_betas(group["betas"], 3)
        _checks.check_beta("beta2", beta2)
        _checks.check_beta("beta3", beta3)
        _checks.check_stability(group["alpha"], beta1)

    def _moment_betas(self, group: dict[str, Any]) -> tuple[float, float, float]:
        return tuple(group["betas"])


class Lamb(_LambFamily):
    r"""Lamb (You et al., 2020), the large-batch baseline ALTO is compared with.

    The same kernel as :class:`ALTO` without the adaptor::

        m     = beta2 * m + (1 - beta2) * g
        v     = beta3 * v + (1 - beta3) * g^2
        r     = m^ / (sqrt(v^) + eps) + weight_decay * theta
        theta = theta - lr * (||theta|| / ||r||) * r

    ``betas`` are Adam's (beta2, beta3) in the paper's notation and default to
    ALTO's moment coefficients (0.9, 0.99), so a Lamb-vs-ALTO comparison differs
    only by the adaptor. State per parameter: ``exp_avg``, ``exp_avg_sq``, ``step``.
    """

    _adaptor = False

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.99),
        eps: float = 1e-6,
        weight_decay: float = 1e-4,
        *,
        bias_correction: bool = True,
        trust_ratio: str = "all",
        foreach: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            bias_correction=bias_correction,
            trust_ratio=trust_ratio,
            foreach=foreach,
        )
        super().__init__(params, defaults)

    def _validate(self, group: dict[str, Any]) -> None:
        _check_common(group)
        beta2, beta3 = _unpack_betas(group["betas"], 2)
        _checks.check_beta("beta2", beta2)
        _checks.check_beta("beta3", beta3)

    def _moment_betas(self, group: dict[str, Any]) -> tuple[float, float, float]:
        beta2, beta3 = group["betas"]
        return 0.0, beta2, beta3
