"""Built-in tasks: real data (generated or written in the standard formats), real models."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch

from alto_core import OPTIMIZERS, create_optimizer
from workers.tasks import get_task, registered_tasks, task_data
from workers.tasks.cifar10 import Cifar10ResNet20
from workers.tasks.gpt import GPTConfig
from workers.tasks.gpt2 import GPT2Small
from workers.tasks.mnist1d import Mnist1DCNN

BUILT_IN = ["charlm", "cifar10-resnet20", "digits-mlp", "gpt2-small", "mnist1d-cnn"]
LAMB_FAMILY = ("alto", "alto-vanilla", "lamb", "e-lamb")
CPU = torch.device("cpu")


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


def _small_data(name, tmp_path):
    """Each built-in task with its real model layout and a little real data; GPT-2 small at
    a smaller vocabulary and width (its embedding, 12 blocks and tied head all kept)."""
    if name == "gpt2-small":
        narrow = GPTConfig(vocab_size=4096, block_size=32, n_layer=12, n_head=4, n_embd=128)
        task = GPT2Small(config=narrow)
        (tmp_path / "gpt2").mkdir()
        rng = np.random.default_rng(0)
        rng.integers(0, 4096, 8000, dtype=np.uint16).tofile(tmp_path / "gpt2" / "train.bin")
        rng.integers(0, 4096, 2000, dtype=np.uint16).tofile(tmp_path / "gpt2" / "val.bin")
        return task, task.load(tmp_path), 2
    if name == "cifar10-resnet20":
        _write_cifar(tmp_path / "cifar-10-batches-py")
        task = Cifar10ResNet20()
        return task, task.load(tmp_path), 4
    if name == "mnist1d-cnn":
        task = Mnist1DCNN(num_samples=400)
        return task, task.load(tmp_path), 64
    task = get_task(name)
    return task, task_data(task, tmp_path), 4


def _train(task, data, batch_size, optimizer, dtype=torch.float32, **hyper):
    torch.manual_seed(0)
    model = task.build_model().to(dtype)
    opt = create_optimizer(optimizer, model, lr=task.default_lr, **hyper)
    batches = task.train_batches(data, batch_size, torch.Generator().manual_seed(0), CPU)
    losses = []
    for _, batch in zip(range(3), batches, strict=False):
        batch = tuple(t.to(dtype) if t.is_floating_point() else t for t in batch)
        loss = task.loss(model, batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return model, opt, losses


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_task_model_steps_with_every_optimizer(name, tmp_path):
    """The parameter layouts of real models (embeddings, tied weights, convolutions,
    BatchNorm, many small norms) through every registered optimizer's default path;
    the Lamb family's default path must agree with its single-tensor path."""
    task, data, batch_size = _small_data(name, tmp_path)
    torch.manual_seed(0)
    initial = [p.detach().double() for p in task.build_model().parameters()]
    for optimizer in OPTIMIZERS:
        # The Lamb family in float64, where its paths are compared below.
        dtype = torch.float64 if optimizer in LAMB_FAMILY else torch.float32
        model, opt, losses = _train(task, data, batch_size, optimizer, dtype)
        assert all(math.isfinite(loss) for loss in losses), (optimizer, losses)
        params = list(model.parameters())
        moved = [not torch.equal(p.double(), q) for p, q in zip(params, initial, strict=True)]
        assert any(moved), optimizer
        if OPTIMIZERS[optimizer].adaptor or optimizer in LAMB_FAMILY:
            assert all(opt.state[p] for p in params), optimizer  # every parameter stepped
        if optimizer in LAMB_FAMILY:
            # In float64: in float32 the paths' last-bit differences are amplified by
            # the model's gradients (Lamb's sign-like early steps flip on them).
            single = _train(task, data, batch_size, optimizer, dtype, foreach=False)[0]
            for p, q in zip(params, single.parameters(), strict=True):
                scale = float(q.detach().abs().max())
                torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-10 * scale, msg=optimizer)
