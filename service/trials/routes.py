from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from service.auth.dependencies import Reader
from service.core.errors import NotFound
from service.core.problems import PROBLEM_RESPONSES
from service.deps import DatabaseDep
from service.jobs.service import visible_job
from service.trials.repository import TrialDetail

router = APIRouter(prefix="/trials", tags=["trials"], responses=PROBLEM_RESPONSES)


@router.get("/{trial_id}", response_model=TrialDetail)
def get_trial(
    trial_id: Annotated[int, Path(ge=1, le=2**31 - 1)], database: DatabaseDep, principal: Reader
) -> TrialDetail:
    """A trial with its per-epoch curve and, for a study's best trial, its flatness."""
    with database.unit_of_work() as uow:
        trial = uow.trials.get(trial_id)
        if trial is None:
            raise NotFound(f"no trial {trial_id}", field="path.trial_id", value=trial_id)
        visible_job(uow, trial.job_id, principal)
        return trial
