"""Look names up in the published catalogue, refusing unknown ones with the known list."""

from __future__ import annotations

from service.catalogue.repository import OptimizerInfo, TaskInfo
from service.core.errors import InvalidInput
from service.storage import UnitOfWork


def _known(names: list[str]) -> str:
    return ", ".join(names) if names else "none: no worker has published a catalogue yet"


def require_task(uow: UnitOfWork, name: str, field: str) -> TaskInfo:
    task = uow.catalogue.task(name)
    if task is None:
        names = [t.name for t in uow.catalogue.tasks()]
        raise InvalidInput(
            f"unknown task {name!r}; known tasks: {_known(names)}",
            field=field,
            value=name,
            known=names,
        )
    return task


def require_optimizer(uow: UnitOfWork, name: str, field: str) -> OptimizerInfo:
    optimizer = uow.catalogue.optimizer(name)
    if optimizer is None:
        names = [o.name for o in uow.catalogue.optimizers()]
        raise InvalidInput(
            f"unknown optimizer {name!r}; known: {_known(names)}",
            field=field,
            value=name,
            known=names,
        )
    return optimizer


def require_batch_size(task: TaskInfo, batch_size: int, field: str) -> None:
    if batch_size > task.max_batch_size:
        raise InvalidInput(
            f"batch size {batch_size} is above task {task.name!r}'s maximum {task.max_batch_size}",
            field=field,
            value=batch_size,
        )
