"""A catalogue as workers publish it: test data for the service tests (the API only ever
sees the catalogue through the database)."""

from __future__ import annotations

from service.catalogue.repository import OptimizerInfo, TaskInfo

PAPER = {
    "large_batch_from": 1024,
    "small": {"alpha": 0.5, "beta1": 0.01},
    "large": {"alpha": -5.0, "beta1": 0.99},
}

TASKS = [
    TaskInfo(
        name="digits-mlp",
        description="sklearn digits, MLP",
        metric="accuracy",
        direction="max",
        max_batch_size=1024,
        default_epochs=5,
        lr_low=1e-4,
        lr_high=1e-1,
        default_lr=3e-3,
    ),
    TaskInfo(
        name="charlm",
        description="character LM",
        metric="perplexity",
        direction="min",
        max_batch_size=512,
        default_epochs=3,
        lr_low=1e-4,
        lr_high=3e-2,
        default_lr=1e-3,
    ),
]

OPTIMIZERS = [
    OptimizerInfo(
        name="alto",
        description="ALTO",
        searched=["lr", "alpha", "beta1"],
        defaults={"paper": PAPER},
    ),
    OptimizerInfo(name="lamb", description="Lamb", searched=["lr"]),
    OptimizerInfo(name="adamw", description="AdamW", searched=["lr"]),
]


def publish(database) -> None:
    with database.unit_of_work(write=True) as uow:
        uow.catalogue.publish_tasks(TASKS, publisher="tests")
        uow.catalogue.publish_optimizers(OPTIMIZERS)
