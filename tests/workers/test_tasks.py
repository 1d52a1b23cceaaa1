"""Built-in tasks: real data (generated or written in the standard formats), real models."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from workers.tasks import get_task, registered_tasks, task_data
from workers.tasks.cifar10 import Cifar10ResNet20
from workers.tasks.gpt import GPTConfig
from workers.tasks.gpt2 import GPT2Small
from workers.tasks.mnist1d import Mnist1DCNN

BUILT_IN = ["charlm", "cifar10-resnet20", "digits-mlp", "gpt2-small", "mnist1d-cnn"]


def _one_step(task, data, batch_size):
    torch.manual_seed(0)
    model = task.build_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(0)
    batches = list(task.train_batches(data, batch_size, generator, torch.device("cpu")))
    assert len(batches) == task.steps_per_epoch(data, batch_size) >= 1
    loss = task.loss(model, batches[0])
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    model.eval()
    return task.evaluate(model, data, torch.device("cpu"))


def test_registry_holds_the_built_in_tasks():
    assert sorted(registered_tasks()) == BUILT_IN
    with pytest.raises(KeyError, match="unknown task 'imagenet'; registered: charlm"):
        get_task("imagenet")
    for task in registered_tasks().values():
        entry = task.catalogue_entry()
        assert entry["direction"] in ("max", "min") and entry["lr_low"] < entry["lr_high"]


def test_digits(tmp_path):
    task = get_task("digits-mlp")
    data = task_data(task, tmp_path)
    assert data.x_train.shape == (1437, 64) and data.x_val.shape == (360, 64)
    assert (tmp_path / "digits.pt").exists()  # cached as tensors after the first load
    accuracy = _one_step(task, data, 64)
    assert 0.0 <= accuracy <= 1.0


def test_mnist1d_is_generated_locally_and_cached(tmp_path):
    task = Mnist1DCNN(num_samples=1000)
    data = task.load(tmp_path)
    assert data.x_train.shape == (800, 1, 40) and set(data.y_train.tolist()) == set(range(10))
    assert "sha256" in data.note
    again = task.load(tmp_path)  # from the cache file
    assert torch.equal(again.x_train, data.x_train)
    _one_step(task, data, 128)
    assert get_task("mnist1d-cnn").max_batch_size == 8192


def test_charlm_corpus_is_deterministic(tmp_path):
    task = get_task("charlm")
    a, b = task.load(tmp_path), task.load(tmp_path)
    assert torch.equal(a.train, b.train) and a.train.numel() > 500_000
    assert "sha256" in a.note and int(a.train.max()) < task.vocab_size
    perplexity = _one_step(task, a, 32)
    assert 1.0 < perplexity < 1e4
    assert task.direction == "min" and task.worst_value == task.vocab_size


def _write_cifar(base, n=12):
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"labels": rng.integers(0, 10, n).tolist(),
        }
        with (base / name).open("wb") as f:
            pickle.dump(batch, f)


def test_cifar10_reads_the_python_pickle_batches(tmp_path):
    task = Cifar10ResNet20()
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py/data_batch_1"):
        task.load(tmp_path)
    _write_cifar(tmp_path / "cifar-10-batches-py")
    data = task.load(tmp_path)
    assert data.x_train.shape == (60, 3, 32, 32) and data.x_val.shape == (12, 3, 32, 32)
    augmented = task.augment(data.x_train[:8], torch.Generator().manual_seed(0))
    assert augmented.shape == (8, 3, 32, 32)
    _one_step(task, data, 8)


def test_gpt2_reads_uint16_token_files(tmp_path):
    tiny = GPTConfig(vocab_size=64, block_size=16, n_layer=1, n_head=2, n_embd=32)
    task = GPT2Small(config=tiny)
    with pytest.raises(FileNotFoundError, match="gpt2/train.bin"):
        task.load(tmp_path)
    (tmp_path / "gpt2").mkdir()
    rng = np.random.default_rng(0)
    rng.integers(0, 64, 4000, dtype=np.uint16).tofile(tmp_path / "gpt2" / "train.bin")
    rng.integers(0, 64, 1000, dtype=np.uint16).tofile(tmp_path / "gpt2" / "val.bin")
    data = task.load(tmp_path)
    assert data.train.numel() == 4000 and data.vocab_size == 64
    _one_step(task, data, 4)
    assert get_task("gpt2-small").model_config(50304).n_layer == 12
