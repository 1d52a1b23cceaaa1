"""charlm: a small causal transformer on text from the Python standard library.

The corpus is the source of a fixed list of standard-library modules, read from
this interpreter's installation (so it is on every machine and never downloaded);
its SHA-256 is recorded in the data note, since it differs between Python versions.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from pathlib import Path

import torch

from workers.tasks.gpt import GPTConfig, LanguageModelTask, TokenData

CORPUS_MODULES = (
    "textwrap",
    "argparse",
    "difflib",
    "inspect",
    "typing",
    "dataclasses",
    "functools",
    "statistics",
    "fractions",
    "logging",
    "json.decoder",
    "email.message",
    "http.client",
    "tarfile",
)


def corpus_text() -> str:
    parts = []
    for name in CORPUS_MODULES:
        source = inspect.getsourcefile(importlib.import_module(name))
        if source is None:
            raise FileNotFoundError(f"the standard library module {name} has no source here")
        parts.append(Path(source).read_text(encoding="utf-8"))
    return "\n".join(parts)


class CharLM(LanguageModelTask):
    name = "charlm"
    description = "character-level causal transformer (2 layers, 128 wide) on Python stdlib source"
    max_batch_size = 1024
    default_epochs = 5
    lr_range = (1e-4, 3e-2)
    default_lr = 2e-3
    block_size = 64
    epoch_tokens = 1 << 18
    vocab_size = 128  # ASCII; other characters map to 0

    def load(self, data_dir: Path) -> TokenData:
        text = corpus_text()
        data = torch.tensor(list(text.encode("ascii", "replace")), dtype=torch.uint8)
        data[data >= self.vocab_size] = 0
        split = int(0.9 * data.numel())
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
        return TokenData(
            data[:split],
            data[split:],
            self.vocab_size,
            note=f"{data.numel():,} characters of {len(CORPUS_MODULES)} stdlib modules "
            f"(sha256 {digest}), 90/10 split",
        )

    def catalogue_entry(self) -> dict:
        # The corpus depends on the Python version: the catalogue says which one it is.
        digest = hashlib.sha256(corpus_text().encode("utf-8")).hexdigest()[:16]
        entry = super().catalogue_entry()
        entry["description"] += f" (corpus sha256 {digest})"
        return entry

    def model_config(self, vocab_size: int) -> GPTConfig:
        return GPTConfig(vocab_size, self.block_size, n_layer=2, n_head=4, n_embd=128)
