"""Every invalid optimizer setting raises a ValueError that names the value."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from alto_core import ALTO, E, Lamb, create_optimizer


def _params():
    return [nn.Parameter(torch.ones(2))]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": -1e-3}, "Invalid learning rate: -0.001"),
        ({"lr": math.nan}, "Invalid learning rate: nan"),
        ({"eps": 0.0}, "Invalid eps: 0.0"),
        ({"eps": -1e-6}, "Invalid eps: -1e-06"),
        ({"weight_decay": -0.1}, "Invalid weight_decay: -0.1"),
        ({"betas": (1.0, 0.9, 0.99)}, r"Invalid beta1 \(adaptor EMA\): 1.0"),
        ({"betas": (0.99, -0.1, 0.99)}, "Invalid beta2: -0.1"),
        ({"betas": (0.99, 0.9, 1.5)}, "Invalid beta3: 1.5"),
        ({"betas": (0.9, 0.99)}, r"Invalid betas: \(0.9, 0.99\)"),
        (
            {"betas": (0.1, 0.9, 0.99), "alpha": -5.0},
            r"alpha=-5.0, beta1=0.1 give \|alpha \* \(1 - beta1\)\| = 4.5",
        ),
        ({"alpha": 100.0}, r"alpha=100.0, beta1=0.99 give \|alpha \* \(1 - beta1\)\| = 1"),
        ({"alpha": "big"}, "Invalid alpha: 'big'"),
        ({"trust_ratio": "sometimes"}, "Invalid trust_ratio: 'sometimes'"),
        ({"bias_correction": "yes"}, "Invalid bias_correction: 'yes'"),
        ({"foreach": "fast"}, "Invalid foreach: 'fast'"),
    ],
)
def test_alto_rejects(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ALTO(_params(), **kwargs)


def test_reference_defaults_are_refused():
    """The authors' class defaults (beta1=0.1 with alpha=-5) break the rule: first step uphill."""
    with pytest.raises(ValueError, match="must be < 1"):
        ALTO(_params(), betas=(0.1, 0.9, 0.99), alpha=-5.0)


def test_group_overrides_are_validated():
    with pytest.raises(ValueError, match="Invalid learning rate: -1"):
        ALTO([{"params": _params(), "lr": -1}])
    opt = ALTO(_params())
    with pytest.raises(ValueError, match=r"alpha=-500, beta1=0.99"):
        opt.add_param_group({"params": _params(), "alpha": -500})


def test_lamb_rejects():
    with pytest.raises(ValueError, match="Invalid beta2: 1.0"):
        Lamb(_params(), betas=(1.0, 0.99))
    with pytest.raises(ValueError, match="Invalid eps: 0"):
        Lamb(_params(), eps=0)


def test_e_rejects():
    base = torch.optim.SGD(_params(), lr=0.1)
    with pytest.raises(ValueError, match=r"alpha=-200.0, beta1=0.99"):
        E(base, alpha=-200.0, beta=0.99)
    with pytest.raises(ValueError, match=r"Invalid beta1 \(adaptor EMA\): 1.0"):
        E(base, alpha=-5.0, beta=1.0)
    with pytest.raises(ValueError, match=r"alpha=-3.0, beta1=0.5"):
        E(torch.optim.SGD([{"params": _params(), "e_alpha": -3.0, "e_beta": 0.5}], lr=0.1))


def test_registry_rejects_unknown_names_and_hyperparameters():
    with pytest.raises(ValueError, match=r"Unknown optimizer: 'altoo' \(known: alto, "):
        create_optimizer("altoo", _params())
    with pytest.raises(ValueError, match=r"'lamb' does not take 'alpha'"):
        create_optimizer("lamb", _params(), alpha=-5.0)
    with pytest.raises(ValueError, match=r"alpha=-5.0, beta1=0.5"):
        create_optimizer("e-sgd", _params(), lr=0.1, alpha=-5.0, beta1=0.5)
