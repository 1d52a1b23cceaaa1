"""The optimizer adaptor E: explore (alpha < 0) or exploit (alpha > 0) with any torch optimizer."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, TypeVar, overload

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

_Loss = TypeVar("_Loss")


class E(Optimizer):
    r"""Adaptor E (Zhao et al., NeurIPS 2025): wraps any ``torch.optim.Optimizer``.

    Before the base optimizer steps, each gradient is replaced, in place, by::

        g~_k = g_k + alpha * a_k,   a_k = beta * a_{k-1} + (1 - beta) * (g_k - g_{k-1})

    computed through the exact one-buffer identity
    g~_k = g_k + c * (g_k - e_{k-1}) with e the EMA of gradients and
    c = alpha * (1 - beta), so E keeps one parameter-sized tensor.
    The stability rule |alpha * (1 - beta)| < 1 is enforced.

    E *is* an optimizer, set up by ``torch.optim.Optimizer.__init__`` (its hooks
    and profiling are torch's), and delegates rather than copies: ``param_groups``
    and ``state`` are the base optimizer's own objects (also after a
    ``load_state_dict``, E's or the base's, which replaces them), E's buffer is
    stored in the base state under ``"e_grad_ema"`` so it is saved and restored
    with it, and
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
        self._foreach = foreach
        # Optimizer.__init__ sets up what every torch optimizer has (hooks, the step's
        # profiler wrapper, defaults). It adds the groups it is given, the base's, with
        # add_param_group, which gives them E's keys; then E takes the base's list and state.
        defaults = {**base_optimizer.defaults, ALPHA_KEY: float(alpha), BETA_KEY: float(beta)}
        super().__init__(base_optimizer.param_groups, defaults)
        self._follow_base()

    def _follow_base(self) -> None:
        """Share the base's groups and state, now and after every ``load_state_dict``
        (E's or the base's own), which replaces them: a post-hook on the base points E
        at the new ones and gives loaded groups E's keys."""
        adaptor = weakref.ref(self)  # the base's hook must not keep E alive

        def share(base: Optimizer) -> None:
            e = adaptor()
            if e is not None:
                e.param_groups, e.state = base.param_groups, base.state
                for group in e.param_groups:
                    e._adopt_group(group)

        share(self.base_optimizer)
        self.base_optimizer.register_load_state_dict_post_hook(share, prepend=True)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group to the base optimizer, which checks it, and give it E's keys.

        A group the base already holds (E's ``__init__`` hands over the base's) only
        gets E's keys."""
        base = self.base_optimizer
        if not any(group is param_group for group in base.param_groups):
            base.add_param_group(param_group)
            param_group = base.param_groups[-1]
        self._adopt_group(param_group)

    def _adopt_group(self, group: dict[str, Any]) -> None:
        for key in (ALPHA_KEY, BETA_KEY):
            group.setdefault(key, self.defaults[key])
        _checks.check_stability(group[ALPHA_KEY], group[BETA_KEY])

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
        self.base_optimizer.load_state_dict(state_dict)  # _follow_base's hook runs here
        for post_hook in self._optimizer_load_state_dict_post_hooks.values():
            post_hook(self)

    def __getstate__(self) -> dict[str, Any]:
        return {
            **super().__getstate__(),
            "base_optimizer": self.base_optimizer,
            "_foreach": self._foreach,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._follow_base()  # a copied optimizer has no hooks

    def __repr__(self) -> str:
        alpha, beta = self.defaults[ALPHA_KEY], self.defaults[BETA_KEY]
        return f"E(alpha={alpha}, beta={beta}, base={self.base_optimizer!r})"

    # --- the step -----------------------------------------------------------
    @overload
    def step(self, closure: None = None) -> None: ...
    @overload
    def step(self, closure: Callable[[], _Loss]) -> _Loss: ...
    def step(self, closure: Callable[[], _Loss] | None = None) -> _Loss | None:
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

            def adapted_closure() -> _Loss:
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
        args = (base, *args)
        kwargs: dict[str, Any] = {}
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
        # around that wrapper, so it notes it the same way (an attribute that
        # torch.optim.Optimizer does not declare).
        if hasattr(base.step, "_wrapped_by_lr_sched"):
            vars(base)["_opt_called"] = True
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
