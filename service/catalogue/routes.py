from __future__ import annotations

from fastapi import APIRouter

from service.auth.dependencies import Reader
from service.catalogue.repository import OptimizerInfo, TaskInfo
from service.core.problems import PROBLEM_RESPONSES
from service.deps import DatabaseDep

router = APIRouter(tags=["catalogue"], responses=PROBLEM_RESPONSES)


@router.get("/tasks", response_model=list[TaskInfo])
def list_tasks(database: DatabaseDep, _: Reader) -> list[TaskInfo]:
    """Tasks the workers can train, as they published them."""
    with database.unit_of_work() as uow:
        return uow.catalogue.tasks()


@router.get("/optimizers", response_model=list[OptimizerInfo])
def list_optimizers(database: DatabaseDep, _: Reader) -> list[OptimizerInfo]:
    """Optimizer arms a job can use, with the hyperparameters each one searches."""
    with database.unit_of_work() as uow:
        return uow.catalogue.optimizers()
