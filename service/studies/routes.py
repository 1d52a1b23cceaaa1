from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from service.auth.dependencies import Reader
from service.core.problems import PROBLEM_RESPONSES
from service.deps import DatabaseDep
from service.studies.service import StudySummary, study_summary

router = APIRouter(prefix="/studies", tags=["studies"], responses=PROBLEM_RESPONSES)


@router.get("/{study_id}/summary", response_model=StudySummary)
def get_study_summary(
    study_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    database: DatabaseDep,
    principal: Reader,
    max_points: Annotated[int, Query(ge=10, le=20_000)] = 2000,
) -> StudySummary:
    """A study aggregated for charts: optimisation history, a sample for parallel
    coordinates, trial counts, and the flatness of each arm's best trial at its batch size."""
    with database.unit_of_work() as uow:
        return study_summary(uow, study_id, principal, max_points)
