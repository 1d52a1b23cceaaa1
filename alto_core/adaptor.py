"""The optimizer adaptor E: explore (alpha < 0) or exploit (alpha > 0) with any torch optimizer."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from alto_core import _checks
from alto_core.functional import adapt_gradients

__all__ = ["E"]

#: Key of E's buffer inside the base optimizer's per-parameter state.
EMA_KEY = "e_grad_ema"
#: Per-group keys holding E's hyperparameters (prefixed: RMSprop has its own "alpha").
ALPHA_KEY = "e_alpha"
BETA_KEY = "e_beta"


class E(Optimizer):
    r"""Adaptor E (Zhao et al., NeurIPS 2025): wraps any ``torch.optim.Optimizer``.

    Before the base optimizer steps, each gradient is replaced, in place, by::

        g~_k = g_k + alpha * a_k,   a_k = beta * a_{k-1} + (1 - beta) * (g_k - g_{k-1})

    computed through the exact one-buffer identity
    g~_k = g_k + c * (g_k - e_{k-1}) with e the EMA of gradients and
    c = alpha * (1 - beta), so E keeps one parameter-sized tensor.
    The stability rule |alpha * (1 - beta)| < 1 is enforced.

    E *is* an optimizer and delegates rather than copies: ``param_groups`` and
    ``state`` are the base optimizer's own objects (also after
    ``load_state_dict``, which replaces them), E's buffer is stored in the base
    state under ``"e_grad_ema"`` so it is saved and restored with it, and
    ``alpha``/``beta`` are per-group keys ``"e_alpha"``/``"e_beta"`` that a
    group may override. With alpha = 0 the base optimizer's update is
    reproduced exactly.

    Args:
        base_optimizer: the optimizer to adapt (SGD, Adam, AdamW, Lamb, ...).
        alpha: adaptor strength; < 0 explores, > 0 exploits.
        beta: EMA coefficient of the adaptor (the paper's beta1), in [0, 1).
        foreach: use ``torch._foreach_*`` kernels (None: when possible).
    """

    def __init__(
        self,
        base_optimizer: Optimizer,
        alpha: float = -5.0,
        beta: float = 0.99,
        *,
        foreach: bool | None = None,
    ) -> None:
        if not isinstance(base_optimizer, Optimizer):
            raise TypeError(f"E wraps a torch.optim.Optimizer, got {type(base_optimizer).__name__}")
        if isinstance(base_optimizer, E):
            raise TypeError("E cannot wrap another E")
        if foreach not in (None, True, False):
            raise ValueError(f"Invalid foreach: {foreach!r} (expected None, True or False)")
        _checks.check_stability(alpha, beta)
        self.base_optimizer = base_optimizer
        self._e_defaults = {ALPHA_KEY: float(alpha), BETA_KEY: float(beta)}
        self._foreach = foreach
        self._init_hooks()
        for group in self.param_groups:
            self._adopt_group(group)

    # Optimizer.__init__ is not called on purpose: it would build param groups
    # of its own. These are the attributes it would have set.
    def _init_hooks(self) -> None:
        self._optimizer_step_pre_hooks = OrderedDict()
        self._optimizer_step_post_hooks = OrderedDict()
        self._optimizer_state_dict_pre_hooks = OrderedDict()
        self._optimizer_state_dict_post_hooks = OrderedDict()
        self._optimizer_load_state_dict_pre_hooks = OrderedDict()
        self._optimizer_load_state_dict_post_hooks = OrderedDict()
        self._patch_step_function()

    def _adopt_group(self, group: dict[str, Any]) -> None:
        for key, value in self._e_defaults.items():
            group.setdefault(key, value)
        _checks.check_stability(group[ALPHA_KEY], group[BETA_KEY])

    # --- delegation: always the base optimizer's current objects -------------
    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return self.base_optimizer.param_groups

    @param_groups.setter
    def param_groups(self, value: list[dict[str, Any]]) -> None:
        self.base_optimizer.param_groups = value

    @property
    def state(self) -> Any:  # type: ignore[override]
        return self.base_optimizer.state

    @state.setter
    def state(self, value: Any) -> None:
        self.base_optimizer.state = value

    @property
    def defaults(self) -> dict[str, Any]:  # type: ignore[override]
        return {**self.base_optimizer.defaults, **self._e_defaults}

    @defaults.setter
    def defaults(self, value: dict[str, Any]) -> None:
        self.base_optimizer.defaults = value

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        self.base_optimizer.add_param_group(param_group)
        self._adopt_group(self.param_groups[-1])

    # state_dict and load_state_dict are the base optimizer's, with E's own hooks
    # around them (torch.optim.Optimizer runs the hooks inside its implementation,
    # which E does not use): pre-hooks may edit the dict to be loaded, post-hooks
    # may replace the dict returned.
    def state_dict(self) -> dict[str, Any]:
        for pre_hook in self._optimizer_state_dict_pre_hooks.values():
            pre_hook(self)
        state_dict = self.base_optimizer.state_dict()
        for post_hook in self._optimizer_state_dict_post_hooks.values():
            result = post_hook(self, state_dict)
            if result is not None:
                state_dict = result
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = state_dict.copy()
        for pre_hook in self._optimizer_load_state_dict_pre_hooks.values():
            result = pre_hook(self, state_dict)
            if result is not None:
                state_dict = result
        self.base_optimizer.load_state_dict(state_dict)
        for group in self.param_groups:
            self._adopt_group(group)
        for post_hook in self._optimizer_load_state_dict_post_hooks.values():
            post_hook(self)

    def __getstate__(self) -> dict[str, Any]:
        return {
            "base_optimizer": self.base_optimizer,
            "_e_defaults": self._e_defaults,
            "_foreach": self._foreach,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_hooks()

    def __repr__(self) -> str:
        alpha, beta = self._e_defaults[ALPHA_KEY], self._e_defaults[BETA_KEY]
        return f"E(alpha={alpha}, beta={beta}, base={self.base_optimizer!r})"

    # --- the step -----------------------------------------------------------
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """Adapt the gradients in place, then step the base optimizer; returns its result.

        With a closure, the base optimizer is given a closure that evaluates
        ``closure`` and then adapts the gradients it left, so a base that evaluates
        the loss several times per step (LBFGS's line search) sees adapted
        gradients every time. The EMA advances once per step, with the first
        evaluation's gradient (the gradient at the step's starting point); later
        evaluations of the same step are adapted against that advanced EMA.
        """
        # Buffers of first-time parameters join the state only after the base
        # step: optimizers such as Adam initialise a parameter's state when it
        # is empty, and an early E entry would make them skip that.
        new_buffers: dict[Tensor, Tensor] = {}
        if closure is None:
            self._adapt(new_buffers, advance=True)
            result = self._step_base(())
        else:
            evaluations = 0

            def adapted_closure() -> Tensor:
                nonlocal evaluations
                loss = closure()
                self._adapt(new_buffers, advance=evaluations == 0)
                evaluations += 1
                return loss

            result = self._step_base((adapted_closure,))
        for param, ema in new_buffers.items():
            self.state[param][EMA_KEY] = ema
        return result

    def _step_base(self, args: tuple[Any, ...]) -> Any:
        """The base optimizer's ``step(*args)`` with its own step hooks, but not the
        global ones: torch runs those around every ``Optimizer.step``, and they
        already ran around this E.step (a global step counter must count one step)."""
        base = self.base_optimizer
        step = type(base).step
        step = getattr(step, "__wrapped__", step)  # under torch's hook wrapper
        args, kwargs = (base, *args), {}
        for pre_hook in base._optimizer_step_pre_hooks.values():
            result = pre_hook(base, args, kwargs)
            if result is not None:
                args, kwargs = result
        out = step(*args, **kwargs)
        base._optimizer_step_code()
        for post_hook in base._optimizer_step_post_hooks.values():
            post_hook(base, args, kwargs)
        # An LR scheduler built on the base wraps the base's step to note that it ran
        # (else it warns of a scheduler step before the optimizer's); this call goes
        # around that wrapper, so it notes it the same way.
        if hasattr(base.step, "_wrapped_by_lr_sched"):
            base._opt_called = True
        return out

    @torch.no_grad()
    def _adapt(self, new_buffers: dict[Tensor, Tensor], *, advance: bool) -> None:
        """Adapt every gradient in place; EMA buffers made for first-time parameters
        are put in ``new_buffers`` (and found there by later evaluations of the step)."""
        for group in self.param_groups:
            grads: list[Tensor] = []
            emas: list[Tensor] = []
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("E does not support sparse gradients")
                ema = self.state[p].get(EMA_KEY) if p in self.state else None
                if ema is None:
                    ema = new_buffers.get(p)
                if ema is None:
                    ema = torch.zeros_like(p.grad, memory_format=torch.preserve_format)
                    new_buffers[p] = ema
                grads.append(p.grad)
                emas.append(ema)
            foreach = self._foreach
            if foreach is None:
                foreach = all(type(g) is Tensor for g in grads)
            adapt_gradients(
                grads,
                emas,
                alpha=group[ALPHA_KEY],
                beta=group[BETA_KEY],
                foreach=foreach,
                advance=advance,
            )
