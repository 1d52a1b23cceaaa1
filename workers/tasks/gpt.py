"""A small GPT (causal transformer) shared by charlm and gpt2-small, and language-model data."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from workers.tasks.base import Batch, Task, perplexity


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int
    block_size: int
    n_layer: int
    n_head: int
    n_embd: int
    dropout: float = 0.0


class _Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.n_embd)
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.ln2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.n_embd, 4 * cfg.n_embd), nn.GELU(), nn.Linear(4 * cfg.n_embd, cfg.n_embd)
        )
        self.n_head = cfg.n_head
        self.dropout = cfg.dropout

    def forward(self, x: Tensor) -> Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, c))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.pos = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.head.weight = self.tok.weight  # tied, as in GPT-2
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * cfg.n_layer) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx: Tensor) -> Tensor:
        t = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(t, device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


@dataclass
class TokenData:
    train: Tensor  # 1-D int64 tokens
    val: Tensor
    vocab_size: int
    note: str


class LanguageModelTask(Task):
    """Next-token prediction on a token stream; metric: validation perplexity."""

    metric = "perplexity"
    direction = "min"
    block_size: int
    epoch_tokens: int  # tokens per "epoch" (random windows), independent of the batch size
    vocab_size: int
    eval_windows: int = 64

    def model_config(self, vocab_size: int) -> GPTConfig:
        raise NotImplementedError

    def build_model(self) -> nn.Module:
        return GPT(self.model_config(self.vocab_size))

    def steps_per_epoch(self, data: TokenData, batch_size: int) -> int:
        return max(1, self.epoch_tokens // (batch_size * self.block_size))

    def train_batches(
        self, data: TokenData, batch_size: int, generator: torch.Generator, device: torch.device
    ) -> Iterator[Batch]:
        steps = self.steps_per_epoch(data, batch_size)
        high = data.train.numel() - self.block_size - 1
        for _ in range(steps):
            starts = torch.randint(0, high, (batch_size,), generator=generator)
            yield self._windows(data.train, starts, device)

    def _windows(self, tokens: Tensor, starts: Tensor, device: torch.device) -> Batch:
        offsets = torch.arange(self.block_size + 1)
        chunk = tokens[starts[:, None] + offsets[None, :]].long()
        return chunk[:, :-1].to(device), chunk[:, 1:].to(device)

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        x, y = batch
        logits = model(x)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

    def _val_starts(self, data: TokenData) -> Tensor:
        high = data.val.numel() - self.block_size - 1
        n = min(self.eval_windows, max(1, high))
        return torch.linspace(0, high - 1, n).long()  # fixed, evenly spread windows

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: TokenData, device: torch.device) -> float:
        batch = self._windows(data.val, self._val_starts(data), device)
        return perplexity(float(self.loss(model, batch)))

    def eval_batch(self, data: TokenData, device: torch.device) -> Batch:
        return self._windows(data.val, self._val_starts(data)[:16], device)

    @property
    def worst_value(self) -> float:
        return float(getattr(self, "vocab_size", 1e9))  # uniform guessing

    def data_note(self, data: TokenData) -> str:
        return data.note
