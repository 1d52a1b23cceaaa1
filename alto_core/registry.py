"""Optimizers by name, weight-decay grouping and the paper's default settings.

``create_optimizer`` speaks one flat vocabulary of hyperparameters for every
optimizer, in the paper's notation:

=================  ==========================================================
``lr``             learning rate
``weight_decay``   decoupled (AdamW, Lamb, ALTO) or L2 (Adam, SGD)
``eps``            Adam/Lamb epsilon
``alpha``          adaptor strength (ALTO and ``e-*`` only)
``beta1``          adaptor EMA coefficient (ALTO and ``e-*`` only)
``beta2, beta3``   first/second-moment coefficients (Adam's usual beta1/beta2)
``momentum``       SGD momentum; ``nesterov`` SGD Nesterov flag
``bias_correction``, ``trust_ratio``   Lamb-family flags
``foreach``        kernel choice
=================  ==========================================================

An unknown name or a hyperparameter the optimizer does not take raises a
ValueError naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

from alto_core.adaptor import E
from alto_core.lamb import ALTO, Lamb

__all__ = [
    "OPTIMIZERS",
    "OptimizerSpec",
    "PaperDefaults",
    "create_optimizer",
    "param_groups_weight_decay",
    "recommended_defaults",
]

LARGE_BATCH = 1024
"""The paper's regime boundary ("batch >= 1K"), in samples."""

_NORM_MODULES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.RMSNorm,
    nn.LocalResponseNorm,
)


@dataclass(frozen=True)
class PaperDefaults:
    """The paper's ALTO setting for a batch size (PAPER.md section 2)."""

    alpha: float
    beta1: float
    beta2: float
    beta3: float
    eps: float
    weight_decay: float
    regime: str

    def as_hyper(self) -> dict[str, float]:
        """The settings as ``create_optimizer`` keyword arguments."""
        values = asdict(self)
        values.pop("regime")
        return values


def recommended_defaults(batch_size: int) -> PaperDefaults:
    """alpha=0.5, beta1=0.01 below a batch of 1K (1024); alpha=-5, beta1=0.99 from 1K."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"Invalid batch_size: {batch_size!r} (expected a positive integer)")
    common = dict(beta2=0.9, beta3=0.99, eps=1e-6, weight_decay=1e-4)
    if batch_size < LARGE_BATCH:
        return PaperDefaults(alpha=0.5, beta1=0.01, regime="small-batch", **common)
    return PaperDefaults(alpha=-5.0, beta1=0.99, regime="large-batch", **common)


def param_groups_weight_decay(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: decayed weights, and biases plus normalisation parameters with decay 0.

    The paper (and Lamb practice) exempts bias, LayerNorm and BatchNorm
    parameters from weight decay. Empty groups are left out.
    """
    no_decay: set[int] = set()
    for module in model.modules():
        if isinstance(module, _NORM_MODULES):
            no_decay.update(id(p) for p in module.parameters(recurse=False))
        for name, param in module.named_parameters(recurse=False):
            if name == "bias" or name.endswith("_bias"):
                no_decay.add(id(param))
    decay: list[nn.Parameter] = []
    exempt: list[nn.Parameter] = []
    for param in model.parameters():
        if param.requires_grad:
            (exempt if id(param) in no_decay else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": exempt, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


@dataclass(frozen=True)
class OptimizerSpec:
    """A registry entry: what the name builds and which hyperparameters it takes."""

    name: str
    description: str
    adaptor: bool
    hyperparameters: tuple[str, ...]
    default_weight_decay: float
    build: Callable[[Any, dict[str, Any]], Optimizer]


_LAMB_FLAGS = ("bias_correction", "trust_ratio", "foreach")
_ADAM_HYPER = ("lr", "beta2", "beta3", "eps", "weight_decay", "foreach")
_SGD_HYPER = ("lr", "momentum", "nesterov", "weight_decay", "foreach")
_E_HYPER = ("alpha", "beta1")


def _alto(params: Any, hyper: dict[str, Any]) -> Optimizer:
    betas = (hyper.pop("beta1", 0.99), hyper.pop("beta2", 0.9), hyper.pop("beta3", 0.99))
    return ALTO(params, betas=betas, **hyper)


def _alto_vanilla(params: Any, hyper: dict[str, Any]) -> Optimizer:
    return _alto(params, {**hyper, "bias_correction": False})


def _lamb(params: Any, hyper: dict[str, Any]) -> Optimizer:
    return Lamb(params, betas=(hyper.pop("beta2", 0.9), hyper.pop("beta3", 0.99)), **hyper)


def _adam_like(cls: type[torch.optim.Adam]) -> Callable[..., Optimizer]:
    def build(params: Any, hyper: dict[str, Any]) -> Optimizer:
        betas = (hyper.pop("beta2", 0.9), hyper.pop("beta3", 0.999))
        return cls(params, betas=betas, **hyper)

    return build


def _sgd(params: Any, hyper: dict[str, Any]) -> Optimizer:
    return torch.optim.SGD(params, **hyper)


def _with_adaptor(base: Callable[[Any, dict[str, Any]], Optimizer]) -> Callable[..., Optimizer]:
    def build(params: Any, hyper: dict[str, Any]) -> Optimizer:
        alpha = hyper.pop("alpha", -5.0)
        beta = hyper.pop("beta1", 0.99)
        foreach = hyper.get("foreach")
        return E(base(params, hyper), alpha=alpha, beta=beta, foreach=foreach)

    return build


def _spec(
    name: str, description: str, hyper: tuple[str, ...], weight_decay: float, build: Callable
) -> OptimizerSpec:
    return OptimizerSpec(name, description, "alpha" in hyper, hyper, weight_decay, build)


OPTIMIZERS: dict[str, OptimizerSpec] = {
    spec.name: spec
    for spec in (
        _spec(
            "alto",
            "ALTO: E applied to Lamb, bias-corrected (the paper's Algorithm 2)",
            ("lr", "alpha", "beta1", "beta2", "beta3", "eps", "weight_decay", *_LAMB_FLAGS),
            1e-4,
            _alto,
        ),
        _spec(
            "alto-vanilla",
            "ALTO without bias correction (the paper's Algorithm 1)",
            (
                "lr",
                "alpha",
                "beta1",
                "beta2",
                "beta3",
                "eps",
                "weight_decay",
                "trust_ratio",
                "foreach",
            ),
            1e-4,
            _alto_vanilla,
        ),
        _spec(
            "lamb",
            "Lamb, the large-batch baseline",
            ("lr", "beta2", "beta3", "eps", "weight_decay", *_LAMB_FLAGS),
            1e-4,
            _lamb,
        ),
        _spec("adamw", "torch AdamW", _ADAM_HYPER, 1e-2, _adam_like(torch.optim.AdamW)),
        _spec(
            "adam", "torch Adam (L2 weight decay)", _ADAM_HYPER, 0.0, _adam_like(torch.optim.Adam)
        ),
        _spec("sgd", "torch SGD (momentum, Nesterov)", _SGD_HYPER, 0.0, _sgd),
        _spec(
            "e-lamb",
            "E wrapping Lamb (the same update as ALTO, through the generic wrapper)",
            ("lr", "beta2", "beta3", "eps", "weight_decay", *_LAMB_FLAGS, *_E_HYPER),
            1e-4,
            _with_adaptor(_lamb),
        ),
        _spec(
            "e-adamw",
            "E wrapping torch AdamW",
            (*_ADAM_HYPER, *_E_HYPER),
            1e-2,
            _with_adaptor(_adam_like(torch.optim.AdamW)),
        ),
        _spec(
            "e-adam",
            "E wrapping torch Adam (the paper's EAdam)",
            (*_ADAM_HYPER, *_E_HYPER),
            0.0,
            _with_adaptor(_adam_like(torch.optim.Adam)),
        ),
        _spec(
            "e-sgd",
            "E wrapping torch SGD (the paper's ESGD with momentum)",
            (*_SGD_HYPER, *_E_HYPER),
            0.0,
            _with_adaptor(_sgd),
        ),
    )
}


def create_optimizer(
    name: str,
    model_or_params: nn.Module | Iterable[Any],
    **hyper: Any,
) -> Optimizer:
    """Build a registered optimizer.

    Given an ``nn.Module``, biases and normalisation parameters are put in a
    group without weight decay (:func:`param_groups_weight_decay`); given
    parameters or groups, they are used as they are.
    """
    spec = OPTIMIZERS.get(name)
    if spec is None:
        raise ValueError(f"Unknown optimizer: {name!r} (known: {', '.join(OPTIMIZERS)})")
    unknown = sorted(set(hyper) - set(spec.hyperparameters))
    if unknown:
        raise ValueError(
            f"Optimizer {name!r} does not take {', '.join(map(repr, unknown))} "
            f"(it takes: {', '.join(spec.hyperparameters)})"
        )
    hyper = {"weight_decay": spec.default_weight_decay, **hyper}
    params: Any = model_or_params
    if isinstance(model_or_params, nn.Module):
        params = param_groups_weight_decay(model_or_params, hyper["weight_decay"])
    return spec.build(params, hyper)
