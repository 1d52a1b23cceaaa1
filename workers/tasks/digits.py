"""digits-mlp: scikit-learn's bundled 8x8 digits and an MLP. The fast smoke task."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from workers.tasks.base import ArrayData, ClassificationTask, cached_tensors


class DigitsMLP(ClassificationTask):
    name = "digits-mlp"
    description = "scikit-learn's bundled 8x8 digits (1,797 images), MLP 64-128-128-10"
    max_batch_size = 1024
    default_epochs = 10
    lr_range = (1e-4, 0.3)
    default_lr = 1e-2

    def load(self, data_dir: Path) -> ArrayData:
        # Cached as tensors: importing scikit-learn costs a trial process over a second.
        def make() -> dict[str, torch.Tensor]:
            from sklearn.datasets import load_digits

            digits = load_digits()
            return {
                "x": torch.tensor(digits.data, dtype=torch.float32) / 16.0,
                "y": torch.tensor(digits.target, dtype=torch.long),
            }

        payload = cached_tensors(Path(data_dir) / "digits.pt", make)
        x, y = payload["x"], payload["y"]
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
        x, y = x[order], y[order]
        split = int(0.8 * len(y))
        return ArrayData(
            x[:split],
            y[:split],
            x[split:],
            y[split:],
            note=f"{split} train / {len(y) - split} validation, fixed split (seed 0)",
        )

    def build_model(self) -> nn.Module:
        return nn.Sequential(
            nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10)
        )
