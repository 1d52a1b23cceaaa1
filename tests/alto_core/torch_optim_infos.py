"""OptimizerInfo entries for ALTO, Lamb and E(AdamW), in the shape of upstream's ``optim_db``.

Used by ``test_torch_generic.py``, which ports PyTorch's generic optimizer tests
(``TestOptimRenewed``). The structures (``OptimizerInfo``, ``OptimizerInput``,
``ErrorOptimizerInput``, ``TensorTracker``) and the error inputs every optimizer
must reject come from the installed ``torch.testing._internal.common_optimizers``,
so they follow the torch version the project runs on.
"""

from __future__ import annotations

import inspect
import math
from unittest import mock

import torch
from torch.nn import Parameter
from torch.optim.lr_scheduler import ExponentialLR, LinearLR, ReduceLROnPlateau, StepLR
from torch.testing._internal import common_optimizers, common_utils
from torch.testing._internal.common_optimizers import (
    ErrorOptimizerInput,
    OptimizerErrorEnum,
    OptimizerInfo,
    OptimizerInput,
    TensorTracker,
    _get_optim_inputs_including_global_cliquey_kwargs,
    get_error_inputs_for_all_optims,
    optim_error_inputs_func_adamw,
)

from alto_core import ALTO, E, Lamb

__all__ = [
    "DEVICE",
    "ELBFGS",
    "OPTIM_DB",
    "TC",
    "EAdamW",
    "OptimizerErrorEnum",
    "OptimizerInfo",
    "OptimizerInput",
    "TensorTracker",
    "all_optim_inputs",
    "default_of",
]

# Importing common_utils calls torch.backends.disable_global_flags(), after which a
# plain `torch.backends.cudnn.benchmark = True` raises. Other test modules of the
# same session (and the code they test) must not inherit that; nothing in this
# project disables the flags itself, so "mutable" is the state to go back to.
# torch.backends is a wrapper module, so the flag lives in its functions' globals.
torch.backends.flags_frozen.__globals__["__allow_nonbracketed_mutation_flag"] = True

DEVICE = "cpu"

#: Upstream's TestCase.assertEqual semantics (nested containers, strings, dtype-aware
#: tolerances), which torch.testing.assert_close lacks for state dicts holding strings.
TC = common_utils.TestCase()


class EAdamW(E):
    """E over AdamW, with a constructor shaped like a torch optimizer class."""

    def __init__(
        self,
        params,
        lr=1e-3,
        alpha=-5.0,
        beta=0.99,
        weight_decay=1e-2,
        foreach=None,
        **adamw_kwargs,
    ):
        base = torch.optim.AdamW(
            params, lr=lr, weight_decay=weight_decay, foreach=foreach, **adamw_kwargs
        )
        E.__init__(self, base, alpha=alpha, beta=beta, foreach=foreach)


class ELBFGS(E):
    """E over LBFGS, whose step needs the closure (it re-evaluates the loss)."""

    def __init__(self, params, lr=1.0, alpha=-5.0, beta=0.99, foreach=None, **lbfgs_kwargs):
        base = torch.optim.LBFGS(params, lr=lr, **lbfgs_kwargs)
        E.__init__(self, base, alpha=alpha, beta=beta, foreach=foreach)


def all_optim_inputs(optim_info, dtype=torch.float32, skip=("differentiable",)):
    """Upstream's helper: every setting, once with each supported impl flag off and on.

    The helper turns foreach on only on devices where torch has foreach kernels
    (cuda, xpu, privateuse1), so on the CPU it would never set foreach=True. ALTO
    and Lamb have a CPU foreach path of their own (stacked state,
    alto_core/_stacks.py) and AdamW's runs there too, so the CPU counts as such a
    device here.
    """
    with mock.patch.object(
        common_optimizers, "_get_foreach_kernels_supported_devices", lambda: [DEVICE]
    ):
        return _get_optim_inputs_including_global_cliquey_kwargs(
            DEVICE, dtype, optim_info, skip=skip
        )


def default_of(optim_cls, name):
    """The constructor's default for ``name``: tests that depend on e.g. the weight
    decay actually in force must not assume upstream's usual default of 0."""
    return inspect.signature(optim_cls.__init__).parameters[name].default


# ----------------------------------------------------------------- valid settings


def _lamb_family_inputs(own):
    """The settings ALTO and Lamb share, with ``own`` (their specific ones) in the middle."""
    return [
        OptimizerInput(params=None, kwargs={}, desc="default"),
        OptimizerInput(params=None, kwargs={"lr": 1e-2}, desc="nondefault_lr"),
        OptimizerInput(params=None, kwargs={"weight_decay": 0.0}, desc="zero_weight_decay"),
        OptimizerInput(params=None, kwargs={"weight_decay": 0.1}, desc="weight_decay"),
        *own,
        # Weight decay 0 under "decayed" is the reference code's plain Adam step.
        OptimizerInput(
            params=None,
            kwargs={"trust_ratio": "decayed", "weight_decay": 0.0},
            desc="trust_decayed",
        ),
        OptimizerInput(
            params=None,
            kwargs={"trust_ratio": "none", "weight_decay": 0.1},
            desc="trust_none",
        ),
        # Upstream runs a CPU tensor lr for every optimizer that supports one
        # (SGD, Adagrad, NAdam, RAdam, ...): schedulers may keep lr in a tensor.
        OptimizerInput(params=None, kwargs={"lr": torch.tensor(1e-3)}, desc="tensor_lr"),
    ]


def optim_inputs_func_alto(device, dtype=None):
    return _lamb_family_inputs(
        [
            # The paper's small-batch setting: alpha > 0 exploits.
            OptimizerInput(
                params=None, kwargs={"alpha": 0.5, "betas": (0.01, 0.9, 0.99)}, desc="exploit"
            ),
            OptimizerInput(params=None, kwargs={"alpha": 0.0}, desc="no_adaptor"),
            OptimizerInput(params=None, kwargs={"bias_correction": False}, desc="vanilla"),
        ]
    )


def optim_inputs_func_lamb(device, dtype=None):
    return _lamb_family_inputs(
        [
            OptimizerInput(params=None, kwargs={"betas": (0.8, 0.95)}, desc="betas"),
            OptimizerInput(
                params=None, kwargs={"bias_correction": False}, desc="no_bias_correction"
            ),
        ]
    )


def optim_inputs_func_eadamw(device, dtype=None):
    # No tensor lr on CPU: upstream's AdamW inputs leave it out too, because AdamW
    # rejects a tensor lr with foreach=True unless capturable (test_tensor_lr
    # still runs one and accepts that refusal).
    return [
        OptimizerInput(params=None, kwargs={}, desc="default"),
        OptimizerInput(params=None, kwargs={"lr": 1e-2}, desc="nondefault_lr"),
        OptimizerInput(params=None, kwargs={"weight_decay": 0.0}, desc="zero_weight_decay"),
        OptimizerInput(params=None, kwargs={"weight_decay": 0.1}, desc="weight_decay"),
        OptimizerInput(params=None, kwargs={"alpha": 0.5, "beta": 0.01}, desc="exploit"),
        OptimizerInput(params=None, kwargs={"alpha": 0.0, "weight_decay": 0.0}, desc="no_adaptor"),
        OptimizerInput(params=None, kwargs={"weight_decay": 0.1, "amsgrad": True}, desc="amsgrad"),
    ]


# --------------------------------------------------------------- invalid settings


def _param(dtype, *, grad=None):
    p = Parameter(torch.randn(2, 2, dtype=dtype))
    p.grad = grad(p) if grad is not None else None
    return p


def _construction_error(desc, kwargs, regex, *, params=None, error_type=ValueError):
    return ErrorOptimizerInput(
        OptimizerInput(params=params, kwargs=kwargs, desc=desc),
        error_type=error_type,
        error_regex=regex,
    )


def _step_errors(name, device, dtype):
    """Complex parameters and sparse gradients are refused at step, by both kernels."""
    errors = []
    for foreach in (False, True):
        complex_param = Parameter(torch.randn(2, 2, dtype=torch.complex64))
        complex_param.grad = torch.randn_like(complex_param)
        sparse = _param(dtype, grad=lambda p: torch.randn_like(p).to_sparse())
        for desc, param, regex in (
            ("complex_params", complex_param, f"{name} does not support complex parameters"),
            ("sparse_grads", sparse, f"{name} does not support sparse gradients"),
        ):
            errors.append(
                ErrorOptimizerInput(
                    OptimizerInput(
                        params=[param],
                        kwargs={"foreach": foreach},
                        desc=f"{desc}_{'foreach' if foreach else 'forloop'}",
                    ),
                    error_on=OptimizerErrorEnum.STEP_ERROR,
                    error_type=RuntimeError,
                    error_regex=regex,
                )
            )
    return errors


def _lamb_family_errors(dtype):
    def params():
        return [_param(dtype)]

    return [
        _construction_error("negative_lr", {"lr": -1e-2}, r"Invalid learning rate: -0\.01"),
        _construction_error("nan_lr", {"lr": math.nan}, "Invalid learning rate: nan"),
        _construction_error("zero_eps", {"eps": 0.0}, r"Invalid eps: 0\.0"),
        _construction_error("negative_eps", {"eps": -1e-8}, "Invalid eps: -1e-08"),
        _construction_error(
            "negative_weight_decay", {"weight_decay": -1}, "Invalid weight_decay: -1"
        ),
        _construction_error(
            "inf_weight_decay", {"weight_decay": math.inf}, "Invalid weight_decay: inf"
        ),
        _construction_error(
            "trust_ratio", {"trust_ratio": "layer"}, "Invalid trust_ratio: 'layer'"
        ),
        _construction_error(
            "bias_correction", {"bias_correction": "yes"}, "Invalid bias_correction: 'yes'"
        ),
        _construction_error("foreach", {"foreach": "yes"}, "Invalid foreach: 'yes'"),
        # A group's own settings get the same checks as the constructor's.
        _construction_error(
            "group_weight_decay",
            {},
            "Invalid weight_decay: -0.5",
            params=[{"params": params()}, {"params": params(), "weight_decay": -0.5}],
        ),
    ]


def optim_error_inputs_func_alto(device, dtype):
    errors = get_error_inputs_for_all_optims(device, dtype)
    if device != "cpu":
        return errors
    errors += _lamb_family_errors(dtype)
    errors += [
        _construction_error("beta1", {"betas": (1.0, 0.9, 0.99)}, r"Invalid beta1.*: 1\.0"),
        _construction_error("beta2", {"betas": (0.99, 1.0, 0.99)}, r"Invalid beta2: 1\.0"),
        _construction_error("beta3", {"betas": (0.99, 0.9, -0.1)}, r"Invalid beta3: -0\.1"),
        _construction_error("two_betas", {"betas": (0.9, 0.99)}, r"Invalid betas: \(0\.9, 0\.99\)"),
        _construction_error("nan_alpha", {"alpha": math.nan}, "Invalid alpha: nan"),
        # |alpha * (1 - beta1)| must stay below 1 (PAPER.md; the reference code's
        # alpha=-5, beta1=0.1 breaks it).
        _construction_error(
            "unstable_explore",
            {"alpha": -5.0, "betas": (0.1, 0.9, 0.99)},
            "Unstable adaptor setting: alpha=-5.0, beta1=0.1",
        ),
        _construction_error(
            "unstable_exploit",
            {"alpha": 1.5, "betas": (0.01, 0.9, 0.99)},
            "Unstable adaptor setting: alpha=1.5, beta1=0.01",
        ),
        _construction_error(
            "unstable_boundary", {"alpha": -100.0}, "Unstable adaptor setting: alpha=-100.0"
        ),
        _construction_error(
            "group_unstable",
            {},
            "Unstable adaptor setting: alpha=-200.0",
            params=[{"params": [_param(dtype)], "alpha": -200.0}],
        ),
    ]
    return errors + _step_errors("ALTO", device, dtype)


def optim_error_inputs_func_lamb(device, dtype):
    errors = get_error_inputs_for_all_optims(device, dtype)
    if device != "cpu":
        return errors
    errors += _lamb_family_errors(dtype)
    errors += [
        _construction_error("beta2", {"betas": (1.0, 0.99)}, r"Invalid beta2: 1\.0"),
        _construction_error("beta3", {"betas": (0.9, 1.5)}, r"Invalid beta3: 1\.5"),
        # ALTO's three betas must not be silently taken for Lamb's two.
        _construction_error(
            "three_betas", {"betas": (0.99, 0.9, 0.99)}, r"Invalid betas: \(0\.99, 0\.9, 0\.99\)"
        ),
    ]
    return errors + _step_errors("Lamb", device, dtype)


def optim_error_inputs_func_eadamw(device, dtype):
    # AdamW's own error inputs still apply: E passes everything else to AdamW.
    errors = optim_error_inputs_func_adamw(device, dtype)
    if device != "cpu":
        return errors

    # E builds its base optimizer before checking its own settings, so these give
    # real parameters where upstream's inputs (checked first thing) give None.
    def params():
        return [_param(dtype)]

    errors += [
        _construction_error(
            "unstable_explore",
            {"alpha": -5.0, "beta": 0.1},
            "Unstable adaptor setting: alpha=-5.0, beta1=0.1",
            params=params(),
        ),
        _construction_error(
            "unstable_exploit",
            {"alpha": 1.5, "beta": 0.01},
            "Unstable adaptor setting: alpha=1.5, beta1=0.01",
            params=params(),
        ),
        _construction_error("beta_one", {"beta": 1.0}, r"Invalid beta1.*: 1\.0", params=params()),
        _construction_error(
            "nan_alpha", {"alpha": math.nan}, "Invalid alpha: nan", params=params()
        ),
        _construction_error(
            "foreach", {"foreach": "yes"}, "Invalid foreach: 'yes'", params=params()
        ),
        _construction_error(
            "group_unstable",
            {},
            "Unstable adaptor setting: alpha=-200.0",
            params=[{"params": params(), "e_alpha": -200.0}],
        ),
    ]
    for foreach in (False, True):
        sparse = _param(dtype, grad=lambda p: torch.randn_like(p).to_sparse())
        errors.append(
            ErrorOptimizerInput(
                OptimizerInput(
                    params=[sparse],
                    kwargs={"foreach": foreach},
                    desc=f"sparse_grads_{'foreach' if foreach else 'forloop'}",
                ),
                error_on=OptimizerErrorEnum.STEP_ERROR,
                error_type=RuntimeError,
                error_regex="E does not support sparse gradients",
            )
        )
    return errors


# -------------------------------------------------------------------- the entries

_SCHEDULERS = (
    [lambda opt: ExponentialLR(opt, gamma=0.9)],
    [lambda opt: LinearLR(opt, start_factor=0.4, total_iters=4)],
    [
        lambda opt: StepLR(opt, gamma=0.9, step_size=10),
        lambda opt: ReduceLROnPlateau(opt),
    ],
)

OPTIM_DB = [
    OptimizerInfo(
        ALTO,
        optim_inputs_func=optim_inputs_func_alto,
        optim_error_inputs_func=optim_error_inputs_func_alto,
        scheduler_inputs=_SCHEDULERS,
        supported_impls=("foreach",),
        # Every other option was there from the first release.
        not_og_supported_flags=("foreach",),
        supports_complex=False,
        has_capturable_arg=False,
    ),
    OptimizerInfo(
        Lamb,
        optim_inputs_func=optim_inputs_func_lamb,
        optim_error_inputs_func=optim_error_inputs_func_lamb,
        scheduler_inputs=_SCHEDULERS,
        supported_impls=("foreach",),
        not_og_supported_flags=("foreach",),
        supports_complex=False,
        has_capturable_arg=False,
    ),
    OptimizerInfo(
        EAdamW,
        optim_inputs_func=optim_inputs_func_eadamw,
        optim_error_inputs_func=optim_error_inputs_func_eadamw,
        scheduler_inputs=_SCHEDULERS,
        supported_impls=("foreach",),
        # AdamW's own later flags: an old checkpoint of the base lacks them.
        not_og_supported_flags=("foreach", "differentiable", "fused", "maximize", "capturable"),
        # E's adaptor is linear in the gradient, so over a base that handles
        # complex parameters (AdamW steps their real view) it does too: upstream's
        # test_complex and test_complex_2d run and pass.
        supports_complex=True,
        has_capturable_arg=False,
    ),
]
