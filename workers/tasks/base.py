"""The task interface: a model, its data and its metric, for any batch size and device."""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

Batch = tuple[Tensor, ...]


class Task(ABC):
    """What a tuning job trains. Subclasses set the class attributes and the methods.

    ``load`` returns the task's data (tensors on the CPU); the trainable caches it per
    process, so a reused Ray actor loads it once. Everything else is called per trial.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    metric: ClassVar[str]
    direction: ClassVar[str]  # "max" or "min"
    max_batch_size: ClassVar[int]
    default_epochs: ClassVar[int]
    lr_range: ClassVar[tuple[float, float]]
    default_lr: ClassVar[float]

    @abstractmethod
    def load(self, data_dir: Path) -> Any:
        """The task's data; raise FileNotFoundError naming the path when it is missing."""

    @abstractmethod
    def build_model(self) -> nn.Module:
        """A freshly initialised model (seed the global RNG first for a reproducible init)."""

    @abstractmethod
    def train_batches(
        self, data: Any, batch_size: int, generator: torch.Generator, device: torch.device
    ) -> Iterator[Batch]:
        """One epoch of training batches, already on ``device``."""

    @abstractmethod
    def steps_per_epoch(self, data: Any, batch_size: int) -> int:
        """How many batches ``train_batches`` yields (for the learning-rate schedule)."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        """The training loss of a batch."""

    @abstractmethod
    def evaluate(self, model: nn.Module, data: Any, device: torch.device) -> float:
        """The validation metric (model in eval mode, no gradients)."""

    @abstractmethod
    def eval_batch(self, data: Any, device: torch.device) -> Batch:
        """A fixed batch for flatness measurements (the same for every trial)."""

    @property
    def worst_value(self) -> float:
        """A finite objective for a diverged trial, so the search can learn from it."""
        return 0.0 if self.direction == "max" else 1e9

    def data_note(self, data: Any) -> str:
        """What the data is (shown in the catalogue), e.g. sizes and a hash."""
        return ""

    def catalogue_entry(self) -> dict[str, Any]:
        low, high = self.lr_range
        return {
            "name": self.name,
            "description": self.description,
            "metric": self.metric,
            "direction": self.direction,
            "max_batch_size": self.max_batch_size,
            "default_epochs": self.default_epochs,
            "lr_low": low,
            "lr_high": high,
            "default_lr": self.default_lr,
        }


@dataclass
class ArrayData:
    """Classification data as tensors: features and integer labels."""

    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class ClassificationTask(Task):
    """In-memory classification: shuffled mini-batches, cross-entropy, accuracy."""

    metric = "accuracy"
    direction = "max"
    eval_chunk = 4096
    hessian_samples = 512

    def train_batches(
        self, data: ArrayData, batch_size: int, generator: torch.Generator, device: torch.device
    ) -> Iterator[Batch]:
        n = data.x_train.shape[0]
        order = torch.randperm(n, generator=generator)
        # Drop the last partial batch: every step sees exactly batch_size samples.
        for start in range(0, n - batch_size + 1, batch_size):
            idx = order[start : start + batch_size]
            yield (
                self.augment(data.x_train[idx].to(device), generator),
                data.y_train[idx].to(device),
            )

    def steps_per_epoch(self, data: ArrayData, batch_size: int) -> int:
        return max(1, data.x_train.shape[0] // batch_size)

    def augment(self, x: Tensor, generator: torch.Generator) -> Tensor:
        return x

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        x, y = batch
        return nn.functional.cross_entropy(model(x), y)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: ArrayData, device: torch.device) -> float:
        correct = 0
        for start in range(0, data.x_val.shape[0], self.eval_chunk):
            x = data.x_val[start : start + self.eval_chunk].to(device)
            y = data.y_val[start : start + self.eval_chunk].to(device)
            correct += int((model(x).argmax(dim=-1) == y).sum())
        return correct / data.x_val.shape[0]

    def eval_batch(self, data: ArrayData, device: torch.device) -> Batch:
        n = min(self.hessian_samples, data.x_val.shape[0])
        return data.x_val[:n].to(device), data.y_val[:n].to(device)

    def data_note(self, data: ArrayData) -> str:
        return data.note or f"{data.x_train.shape[0]} train / {data.x_val.shape[0]} validation"


def cached_tensors(path: Path, make: Callable[[], dict[str, Tensor]]) -> dict[str, Tensor]:
    """Tensors from ``path``, made once by ``make`` and written atomically, so concurrent
    trials never read a half-written file."""
    if not path.exists():
        payload = make()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save(payload, tmp)
        tmp.replace(path)
    return torch.load(path, weights_only=True)


def perplexity(mean_loss: float) -> float:
    return math.exp(mean_loss) if mean_loss < 700 else math.inf
