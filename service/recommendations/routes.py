from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from service.auth.dependencies import Reader
from service.core.problems import PROBLEM_RESPONSES
from service.deps import DatabaseDep
from service.recommendations.repository import Recommendation
from service.recommendations.service import Answer, Overview, overview, recommend

router = APIRouter(prefix="/recommendations", tags=["recommendations"], responses=PROBLEM_RESPONSES)


@router.get("", response_model=Answer)
def get_recommendation(
    request: Request,
    database: DatabaseDep,
    _: Reader,
    task: Annotated[str, Query(min_length=1, max_length=100)],
    batch_size: Annotated[int, Query(ge=1, le=1 << 24)],
    optimizer: Annotated[str, Query(min_length=1, max_length=50)] = "alto",
) -> Answer:
    """Settings for a task at a batch size, with the evidence behind them.

    Answers may be reused for up to ``ALTO_RECOMMENDATION_CACHE_SECONDS`` (default 2 s).
    """
    cache = request.app.state.answer_cache
    key = (task, batch_size, optimizer)
    answer = cache.get(key)
    if answer is None:
        with database.unit_of_work() as uow:
            answer = recommend(uow, task, batch_size, optimizer)
        cache.put(key, answer)
    return answer


@router.get("/{task}", response_model=list[Recommendation])
def list_recommendations(
    database: DatabaseDep,
    _: Reader,
    task: str,
    optimizer: Annotated[str | None, Query(max_length=50)] = None,
) -> list[Recommendation]:
    """Every tuned batch size of a task (the newest measurement of each)."""
    with database.unit_of_work() as uow:
        return uow.recommendations.latest(task, optimizer)


@router.get("/{task}/overview", response_model=Overview)
def get_overview(
    database: DatabaseDep,
    _: Reader,
    task: str,
    optimizer: Annotated[str, Query(min_length=1, max_length=50)] = "alto",
    baseline: Annotated[str, Query(min_length=1, max_length=50)] = "lamb",
) -> Overview:
    """Best settings against batch size for the dashboard: the tuned sizes (measured) and
    the powers of two between them (interpolated), with the baseline arm's metrics."""
    with database.unit_of_work() as uow:
        return overview(uow, task, optimizer, baseline)
