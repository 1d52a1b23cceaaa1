"""Hyperparameter validation shared by the optimizers.

Every message names the hyperparameter and shows the offending value, so a
typo in a sweep file or a search space is found from the error alone.
"""

from __future__ import annotations

import math
from typing import Any

import torch

TRUST_RATIO_MODES = ("all", "decayed", "none")


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_real(name: str, value: Any) -> float:
    if not _is_real(value) or not math.isfinite(value):
        raise ValueError(f"Invalid {name}: {value!r} (expected a finite number)")
    return float(value)


def check_lr(value: Any) -> float:
    """A number, or a one-element floating tensor (its value is read here, never in
    ``step()``), which torch's optimizers also take: a scheduler may change it in place."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or not value.is_floating_point():
            raise ValueError(
                f"Invalid learning rate: {value!r} (a Tensor lr must be 1-element and "
                "floating-point)"
            )
        number = float(value)
        if not math.isfinite(number) or number < 0.0:
            raise ValueError(f"Invalid learning rate: {value!r} (must be finite and >= 0)")
        return number
    if check_real("learning rate", value) < 0.0:
        raise ValueError(f"Invalid learning rate: {value!r} (must be >= 0)")
    return float(value)


def check_eps(value: Any) -> float:
    if check_real("eps", value) <= 0.0:
        raise ValueError(f"Invalid eps: {value!r} (must be > 0)")
    return float(value)


def check_weight_decay(value: Any) -> float:
    if check_real("weight_decay", value) < 0.0:
        raise ValueError(f"Invalid weight_decay: {value!r} (must be >= 0)")
    return float(value)


def check_beta(name: str, value: Any) -> float:
    if not 0.0 <= check_real(name, value) < 1.0:
        raise ValueError(f"Invalid {name}: {value!r} (must be in [0, 1))")
    return float(value)


def check_stability(alpha: Any, beta1: Any) -> float:
    """Return c = alpha * (1 - beta1) after checking the paper's rule |c| < 1.

    With |c| >= 1 the weight (1 + c) on the current gradient is no longer
    positive (or the EMA term dominates it), so the first step can go uphill:
    the reference code's defaults alpha=-5, beta1=0.1 give c = -4.5.
    """
    a = check_real("alpha", alpha)
    b = check_beta("beta1 (adaptor EMA)", beta1)
    c = a * (1.0 - b)
    if not abs(c) < 1.0:
        raise ValueError(
            f"Unstable adaptor setting: alpha={alpha!r}, beta1={beta1!r} give "
            f"|alpha * (1 - beta1)| = {abs(c):.6g}, which must be < 1 "
            f"(|alpha| < 1 / (1 - beta1) = {1.0 / (1.0 - b):.6g})"
        )
    return c


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"Invalid {name}: {value!r} (expected one of {', '.join(choices)})")
    return value


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"Invalid {name}: {value!r} (expected True or False)")
    return value
