"""The optimizer registry, weight-decay groups and the paper's defaults."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from alto_core import (
    ALTO,
    OPTIMIZERS,
    E,
    Lamb,
    create_optimizer,
    param_groups_weight_decay,
    recommended_defaults,
)

REQUIRED = ["alto", "alto-vanilla", "lamb", "adamw", "sgd", "e-adamw", "e-adam", "e-sgd"]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 4, 3)
        self.bn = nn.BatchNorm1d(4)
        self.fc = nn.Linear(4 * 6, 8)
        self.ln = nn.LayerNorm(8)
        self.head = nn.Linear(8, 3, bias=False)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x))).flatten(1)
        return self.head(self.ln(torch.tanh(self.fc(x))))


def test_weight_decay_groups_exempt_bias_and_norm_parameters():
    net = Net()
    decay, exempt = param_groups_weight_decay(net, 0.05)
    assert decay["weight_decay"] == 0.05 and exempt["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {
        id(net.conv.weight),
        id(net.fc.weight),
        id(net.head.weight),
    }
    assert {id(p) for p in exempt["params"]} == {
        id(net.conv.bias),
        id(net.bn.weight),
        id(net.bn.bias),
        id(net.fc.bias),
        id(net.ln.weight),
        id(net.ln.bias),
    }


def test_frozen_parameters_and_empty_groups_are_left_out():
    net = nn.Linear(3, 3, bias=False)
    net.weight.requires_grad_(False)
    assert param_groups_weight_decay(net, 0.1) == []


@pytest.mark.parametrize("name", REQUIRED + ["adam", "e-lamb"])
def test_every_registered_optimizer_trains(name):
    assert name in OPTIMIZERS
    torch.manual_seed(0)
    net = Net()
    lr = 0.05 if "sgd" in name else 1e-2
    opt = create_optimizer(name, net, lr=lr)
    x, y = torch.randn(64, 1, 8), torch.randint(0, 3, (64,))
    losses = []
    for _ in range(30):
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    # Given a model, bias and norm parameters get no weight decay.
    assert [g["weight_decay"] for g in opt.param_groups][1] == 0.0


def test_registry_maps_the_flat_vocabulary():
    params = [nn.Parameter(torch.ones(2))]
    alto = create_optimizer("alto", params, alpha=-3.0, beta1=0.9, beta2=0.8, beta3=0.95)
    assert isinstance(alto, ALTO)
    assert alto.defaults["betas"] == (0.9, 0.8, 0.95) and alto.defaults["alpha"] == -3.0
    vanilla = create_optimizer("alto-vanilla", params)
    assert vanilla.defaults["bias_correction"] is False
    lamb = create_optimizer("lamb", params, beta2=0.8)
    assert isinstance(lamb, Lamb) and lamb.defaults["betas"] == (0.8, 0.99)
    eadamw = create_optimizer("e-adamw", params, alpha=0.5, beta1=0.01, beta3=0.98)
    assert isinstance(eadamw, E) and isinstance(eadamw.base_optimizer, torch.optim.AdamW)
    group = eadamw.param_groups[0]
    assert (group["e_alpha"], group["e_beta"], group["betas"]) == (0.5, 0.01, (0.9, 0.98))
    assert OPTIMIZERS["e-sgd"].adaptor and not OPTIMIZERS["lamb"].adaptor


@pytest.mark.parametrize(
    ("batch", "alpha", "beta1", "regime"),
    [
        (1, 0.5, 0.01, "small-batch"),
        (128, 0.5, 0.01, "small-batch"),
        (1023, 0.5, 0.01, "small-batch"),
        (1024, -5.0, 0.99, "large-batch"),
        (16384, -5.0, 0.99, "large-batch"),
    ],
)
def test_recommended_defaults(batch, alpha, beta1, regime):
    d = recommended_defaults(batch)
    assert (d.alpha, d.beta1, d.regime) == (alpha, beta1, regime)
    assert (d.beta2, d.beta3, d.eps, d.weight_decay) == (0.9, 0.99, 1e-6, 1e-4)
    # The defaults are a valid ALTO setting.
    create_optimizer("alto", [nn.Parameter(torch.ones(1))], **d.as_hyper())


@pytest.mark.parametrize("bad", [0, -8, 2.5, True, "128"])
def test_recommended_defaults_rejects(bad):
    with pytest.raises(ValueError, match="Invalid batch_size"):
        recommended_defaults(bad)
