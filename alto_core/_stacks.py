"""Stacked optimizer state for many small CPU parameters of the same shape.

On CPU a ``torch._foreach_*`` op is a C++ loop that dispatches one kernel per
tensor (about a microsecond each), so with hundreds of small tensors (biases,
norms, small layers) a Lamb step costs some twenty dispatches per tensor,
whatever the arithmetic. Parameters of one group that share dtype and shape
therefore get stacked state: each state buffer is one (k, *shape) tensor and
``optimizer.state[p][key]`` is its row, a view. The kernel
(:func:`alto_core.functional.lamb_stacked`) then runs each elementwise op once
per stack.

Nothing outside the optimizer sees a difference: ``state_dict()`` holds the
per-parameter views, and whenever the state no longer holds exactly this
stack's views (after ``load_state_dict``, or when the set of parameters with
gradients changes) the stack is rebuilt by copying whatever the state holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from alto_core._foreach import CPU_CHUNK_NUMEL, SCRATCH_MIN_NUMEL

#: A shape with fewer parameters than this takes the per-tensor foreach path. One
#: tensor gains nothing from a stack; two already step faster stacked (here: two
#: 4096-element tensors 105 us stacked against 115 us, four 124 against 151).
#: Stacks are for tensors under SCRATCH_MIN_NUMEL elements only: there the cost
#: is dispatches, and building a stack (a second copy of the state while it is
#: made) stays cheap.
MIN_STACK = 2


@dataclass
class Stack:
    """The stacked state of ``params`` (one group, dtype and shape)."""

    params: list[Tensor]
    buffers: dict[str, Tensor]
    views: dict[str, tuple[Tensor, ...]]

    def holds(self, params: Sequence[Tensor], state: Mapping[Tensor, dict]) -> bool:
        """Whether these are its parameters and their state is still its views."""
        if len(params) != len(self.params):
            return False
        if any(p is not q for p, q in zip(params, self.params, strict=True)):
            return False
        return all(
            state[p][key] is view
            for key, views in self.views.items()
            for p, view in zip(params, views, strict=True)
        )


class Stacks:
    """The stacks of one optimizer, with one reusable workspace per dtype."""

    def __init__(self) -> None:
        self._stacks: dict[tuple[int, torch.dtype, torch.Size], Stack] = {}
        self._workspaces: dict[torch.dtype, Tensor] = {}

    def take(
        self,
        group: int,
        params: list[Tensor],
        state: Mapping[Tensor, dict],
        keys: Sequence[str],
    ) -> tuple[list[Stack], list[Tensor]]:
        """Split one step's parameters of group number ``group`` into stacks and the rest.

        ``state[p]`` must already hold every key in ``keys`` for each parameter.
        """
        by_shape: dict[tuple[torch.dtype, torch.Size], list[Tensor]] = {}
        rest: list[Tensor] = []
        for p in params:
            if p.device.type == "cpu" and 0 < p.numel() < SCRATCH_MIN_NUMEL:
                by_shape.setdefault((p.dtype, p.shape), []).append(p)
            else:
                rest.append(p)
        stacks = []
        for (dtype, shape), members in by_shape.items():
            if len(members) < MIN_STACK:
                rest.extend(members)
                continue
            key = (group, dtype, shape)
            stack = self._stacks.get(key)
            if stack is None or not stack.holds(members, state):
                if stack is not None:
                    _release(stack, members, state)
                stack = _build(members, state, keys)
                self._stacks[key] = stack
            stacks.append(stack)
        return stacks, rest

    def workspace(self, stack: Stack) -> Tensor:
        """Scratch memory for :func:`alto_core.functional.lamb_stacked` on ``stack``."""
        first = stack.params[0]
        numel = 2 * min(len(stack.params) * first.numel(), CPU_CHUNK_NUMEL)
        buffer = self._workspaces.get(first.dtype)
        if buffer is None or buffer.numel() < numel:
            buffer = self._workspaces[first.dtype] = torch.empty(numel, dtype=first.dtype)
        return buffer


def _build(params: list[Tensor], state: Mapping[Tensor, dict], keys: Sequence[str]) -> Stack:
    buffers = {key: torch.stack([state[p][key] for p in params]) for key in keys}
    views = {key: buffer.unbind(0) for key, buffer in buffers.items()}
    for key, rows in views.items():
        for p, row in zip(params, rows, strict=True):
            state[p][key] = row
    return Stack(params=list(params), buffers=buffers, views=views)


def _release(stack: Stack, members: list[Tensor], state: Mapping[Tensor, dict]) -> None:
    """Give parameters that leave a stack state of their own, so the old stack can be freed."""
    staying = {id(p) for p in members}
    for i, p in enumerate(stack.params):
        if id(p) in staying or p not in state:
            continue
        for key, views in stack.views.items():
            if state[p].get(key) is views[i]:
                state[p][key] = views[i].clone()
