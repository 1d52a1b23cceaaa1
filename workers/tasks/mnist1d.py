"""mnist1d-cnn: MNIST-1D generated locally (never downloaded) and a 1-D CNN.

The dataset is generated once with ``mnist1d.data.make_dataset`` (about 30 s for
50,000 samples here) and cached in the data directory, so batch sizes up to
8,192 still take several steps per epoch.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from workers.tasks.base import ArrayData, ClassificationTask, cached_tensors


class Mnist1DCNN(ClassificationTask):
    name = "mnist1d-cnn"
    description = "MNIST-1D (generated locally, 40,000 train / 10,000 validation), 1-D CNN"
    max_batch_size = 8192
    default_epochs = 15
    lr_range = (1e-4, 0.3)
    default_lr = 3e-3

    def __init__(self, num_samples: int = 50_000, seed: int = 42) -> None:
        self.num_samples = num_samples
        self.seed = seed

    def load(self, data_dir: Path) -> ArrayData:
        def make() -> dict[str, torch.Tensor]:
            from mnist1d.data import get_dataset_args, make_dataset

            args = get_dataset_args()
            args.num_samples, args.seed = self.num_samples, self.seed
            ds = make_dataset(args)  # generated here: get_dataset would try a download
            return {
                "x": torch.tensor(ds["x"], dtype=torch.float32),
                "y": torch.tensor(ds["y"], dtype=torch.long),
                "x_test": torch.tensor(ds["x_test"], dtype=torch.float32),
                "y_test": torch.tensor(ds["y_test"], dtype=torch.long),
            }

        name = f"mnist1d-{self.num_samples}-seed{self.seed}.pt"
        payload = cached_tensors(Path(data_dir) / name, make)
        digest = hashlib.sha256(payload["x"].numpy().tobytes()).hexdigest()[:12]
        return ArrayData(
            payload["x"].unsqueeze(1),
            payload["y"],
            payload["x_test"].unsqueeze(1),
            payload["y_test"],
            note=f"{len(payload['y'])} train / {len(payload['y_test'])} validation, "
            f"make_dataset(num_samples={self.num_samples}, seed={self.seed}), sha256 {digest}",
        )

    def build_model(self) -> nn.Module:
        return nn.Sequential(
            nn.Conv1d(1, 32, 5, padding=2),
            nn.ReLU(),
            nn.Conv1d(32, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(32, 32, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * 40, 10),
        )
