"""cifar10-resnet20: ResNet-20 on CIFAR-10 from the standard python pickle batches.

Reads ``<data_dir>/cifar-10-batches-py/data_batch_{1..5}`` and ``test_batch`` (the
layout of the official cifar-10-python.tar.gz). Meant for GPU nodes. Augmentation
(random crop with 4-pixel padding, horizontal flip) is written in plain torch.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from workers.tasks.base import ArrayData, ClassificationTask

MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)


class _BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet20(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()
        )
        layers, c_in = [], 16
        for c_out, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(3):
                layers.append(_BasicBlock(c_in, c_out, stride if i == 0 else 1))
                c_in = c_out
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layers(self.stem(x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(
            f"cifar10-resnet20 needs {path} (the python version of CIFAR-10: extract "
            f"cifar-10-python.tar.gz into {path.parent.parent})"
        )
    with path.open("rb") as f:
        batch = pickle.load(f, encoding="bytes")
    return np.asarray(batch[b"data"], dtype=np.uint8), np.asarray(batch[b"labels"])


class Cifar10ResNet20(ClassificationTask):
    name = "cifar10-resnet20"
    description = "CIFAR-10 (python pickle batches in <data_dir>/cifar-10-batches-py), ResNet-20"
    max_batch_size = 16384
    default_epochs = 30
    lr_range = (1e-4, 0.1)
    default_lr = 5e-3
    eval_chunk = 2048

    def __init__(self, subdir: str = "cifar-10-batches-py") -> None:
        self.subdir = subdir

    def load(self, data_dir: Path) -> ArrayData:
        base = Path(data_dir) / self.subdir
        train = [_read_batch(base / f"data_batch_{i}") for i in range(1, 6)]
        x_val, y_val = _read_batch(base / "test_batch")

        def images(raw: np.ndarray) -> Tensor:
            x = torch.from_numpy(raw).float().view(-1, 3, 32, 32) / 255.0
            return (x - MEAN) / STD

        x_train = images(np.concatenate([x for x, _ in train]))
        y_train = torch.from_numpy(np.concatenate([y for _, y in train])).long()
        return ArrayData(
            x_train,
            y_train,
            images(x_val),
            torch.from_numpy(y_val).long(),
            note=f"{len(y_train)} train / {len(y_val)} test images from {base}",
        )

    def augment(self, x: Tensor, generator: torch.Generator) -> Tensor:
        n, device = x.shape[0], x.device
        padded = F.pad(x, (4, 4, 4, 4), mode="reflect")
        dx = torch.randint(0, 9, (n,), generator=generator).to(device)
        dy = torch.randint(0, 9, (n,), generator=generator).to(device)
        flip = (torch.rand(n, generator=generator) < 0.5).to(device)
        span = torch.arange(32, device=device)
        rows = (dy[:, None] + span)[:, None, :, None]
        cols = (dx[:, None] + span)[:, None, None, :]
        cols = torch.where(flip[:, None, None, None], cols.flip(-1), cols)  # mirror = reversed cols
        batch = torch.arange(n, device=device)[:, None, None, None]
        channel = torch.arange(3, device=device)[None, :, None, None]
        return padded[batch, channel, rows, cols]

    def build_model(self) -> nn.Module:
        return ResNet20()
