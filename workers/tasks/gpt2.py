"""gpt2-small: GPT-2 (124M) on a tokenized corpus in nanoGPT's format, for GPU nodes.

Reads ``<data_dir>/gpt2/train.bin`` and ``val.bin``: flat arrays of uint16 GPT-2 token
ids (as nanoGPT's prepare scripts write them), memory-mapped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from workers.tasks.gpt import GPTConfig, LanguageModelTask, TokenData


class GPT2Small(LanguageModelTask):
    name = "gpt2-small"
    description = "GPT-2 small (124M) on uint16 token files <data_dir>/gpt2/{train,val}.bin"
    max_batch_size = 4096
    default_epochs = 3
    lr_range = (1e-5, 3e-3)
    default_lr = 6e-4
    block_size = 1024
    epoch_tokens = 1 << 22
    vocab_size = 50304  # GPT-2's 50257 padded to a multiple of 64

    def __init__(self, config: GPTConfig | None = None, subdir: str = "gpt2") -> None:
        self.config = config
        self.subdir = subdir
        if config is not None:
            self.block_size = config.block_size
            self.vocab_size = config.vocab_size

    def load(self, data_dir: Path) -> TokenData:
        base = Path(data_dir) / self.subdir
        arrays = {}
        for split in ("train", "val"):
            path = base / f"{split}.bin"
            if not path.is_file():
                raise FileNotFoundError(
                    f"gpt2-small needs the tokenized {split} split at {path} (a flat uint16 "
                    f"array of GPT-2 token ids, as nanoGPT's prepare.py writes it)"
                )
            arrays[split] = torch.from_numpy(
                np.memmap(path, dtype=np.uint16, mode="r").astype(np.int32)
            )
        too_big = int(max(int(a.max()) for a in arrays.values()))
        if too_big >= self.vocab_size:
            raise ValueError(
                f"token id {too_big} in {base} is outside the vocabulary of {self.vocab_size}"
            )
        return TokenData(
            arrays["train"],
            arrays["val"],
            self.vocab_size,
            note=f"{arrays['train'].numel():,} train / {arrays['val'].numel():,} "
            f"validation tokens from {base}",
        )

    def model_config(self, vocab_size: int) -> GPTConfig:
        return self.config or GPTConfig(vocab_size, 1024, n_layer=12, n_head=12, n_embd=768)
