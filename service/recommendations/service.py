"""Answer "which alpha, beta1 and lr for task T at batch size B".

1. measured: the newest recommendation tuned at exactly B;
2. interpolated: between the nearest tuned sizes below and above B, linear in
   log2(batch size): lr (and any other positive scale) geometrically, beta1 via
   log(1 - beta1), alpha through c = alpha (1 - beta1) so the result obeys the
   stability rule |c| < 1 whenever both ends do;
3. paper-default: the paper's alpha/beta1 for B's regime with the task's default lr.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any, Literal

from pydantic import BaseModel

from service.catalogue.repository import OptimizerInfo, TaskInfo
from service.catalogue.service import require_batch_size, require_optimizer, require_task
from service.core.types import JSONFloat
from service.recommendations.repository import Recommendation
from service.storage import UnitOfWork


class Answer(BaseModel):
    task: str
    batch_size: int
    optimizer: str
    source: Literal["measured", "interpolated", "paper-default"]
    settings: dict[str, JSONFloat]
    metric_name: str
    direction: str
    metric: JSONFloat | None
    metric_std: JSONFloat | None
    baseline_optimizer: str | None
    baseline_metric: JSONFloat | None
    uplift: JSONFloat | None
    n_trials: int
    job_id: int | None
    evidence: list[Recommendation]
    note: str


def _mix_log(a: float, b: float, t: float) -> float:
    return math.exp((1 - t) * math.log(a) + t * math.log(b))


def interpolate_settings(low: dict[str, float], high: dict[str, float], t: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in sorted(set(low) | set(high)):
        if key not in low or key not in high:
            out[key] = (low if t < 0.5 else high).get(key, low.get(key, high.get(key)))
            continue
        a, b = float(low[key]), float(high[key])
        if key == "beta1":
            out[key] = 1 - _mix_log(max(1 - a, 1e-12), max(1 - b, 1e-12), t)
        elif key == "alpha":
            continue  # derived from c below, once beta1 is known
        elif a > 0 and b > 0:
            out[key] = _mix_log(a, b, t)
        else:
            out[key] = (1 - t) * a + t * b
    if "alpha" in low and "alpha" in high:
        c_low = float(low["alpha"]) * (1 - float(low.get("beta1", 0.0)))
        c_high = float(high["alpha"]) * (1 - float(high.get("beta1", 0.0)))
        c = (1 - t) * c_low + t * c_high
        out["alpha"] = c / (1 - out.get("beta1", 0.0))
    return out


def paper_settings(task: TaskInfo, opt: OptimizerInfo, batch_size: int) -> dict[str, Any]:
    settings: dict[str, Any] = {"lr": task.default_lr}
    paper = opt.defaults.get("paper")
    if paper:
        regime = "large" if batch_size >= int(paper.get("large_batch_from", 1024)) else "small"
        settings.update(paper.get(regime, {}))
    return settings


def recommend(uow: UnitOfWork, task_name: str, batch_size: int, optimizer: str) -> Answer:
    task = require_task(uow, task_name, "query.task")
    require_batch_size(task, batch_size, "query.batch_size")
    opt = require_optimizer(uow, optimizer, "query.optimizer")
    tuned = uow.recommendations.latest(task.name, optimizer)
    base = dict(
        task=task.name,
        batch_size=batch_size,
        optimizer=optimizer,
        metric_name=task.metric,
        direction=task.direction,
    )
    exact = next((r for r in tuned if r.batch_size == batch_size), None)
    if exact is not None:
        return Answer(
            **base,
            source="measured",
            settings=exact.settings,
            metric=exact.metric,
            metric_std=exact.metric_std,
            baseline_optimizer=exact.baseline_optimizer,
            baseline_metric=exact.baseline_metric,
            uplift=exact.uplift,
            n_trials=exact.n_trials,
            job_id=exact.job_id,
            evidence=[exact],
            note=f"tuned at batch size {batch_size} by job {exact.job_id}",
        )
    below = max(
        (r for r in tuned if r.batch_size < batch_size), key=lambda r: r.batch_size, default=None
    )
    above = min(
        (r for r in tuned if r.batch_size > batch_size), key=lambda r: r.batch_size, default=None
    )
    if below is not None and above is not None:
        t = (math.log2(batch_size) - math.log2(below.batch_size)) / (
            math.log2(above.batch_size) - math.log2(below.batch_size)
        )
        return Answer(
            **base,
            source="interpolated",
            settings=interpolate_settings(below.settings, above.settings, t),
            metric=None,
            metric_std=None,
            baseline_optimizer=None,
            baseline_metric=None,
            uplift=None,
            n_trials=below.n_trials + above.n_trials,
            job_id=None,
            evidence=[below, above],
            note=f"interpolated in log2(batch size) between the tuned sizes "
            f"{below.batch_size} and {above.batch_size}; not measured at {batch_size}",
        )
    nearest = sorted(tuned, key=lambda r: abs(math.log2(r.batch_size / batch_size)))[:1]
    return Answer(
        **base,
        source="paper-default",
        settings=paper_settings(task, opt, batch_size),
        metric=None,
        metric_std=None,
        baseline_optimizer=None,
        baseline_metric=None,
        uplift=None,
        n_trials=0,
        job_id=None,
        evidence=nearest,
        note="no tuned batch sizes on both sides: the paper's defaults for this regime and "
        "the task's default lr"
        + (f"; nearest tuned size: {nearest[0].batch_size}" if nearest else ""),
    )


class AnswerCache:
    """Answers reused for a few seconds: a recommendation changes when a study ends, and a
    reader polling every second needs no fresh database round trip each time."""

    def __init__(self, seconds: float, max_entries: int = 10_000) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self._entries: dict[tuple[str, int, str], tuple[float, Answer]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int, str]) -> Answer | None:
        if self.seconds <= 0:
            return None
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, key: tuple[str, int, str], answer: Answer) -> None:
        if self.seconds <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = (time.monotonic() + self.seconds, answer)


class OverviewPoint(BaseModel):
    batch_size: int
    optimizer: str
    source: Literal["measured", "interpolated"]
    settings: dict[str, JSONFloat]
    metric: JSONFloat | None
    baseline_metric: JSONFloat | None
    uplift: JSONFloat | None
    n_trials: int
    job_id: int | None
    study_id: int | None


class Overview(BaseModel):
    task: str
    metric_name: str
    direction: str
    optimizer: str
    baseline: str
    points: list[OverviewPoint]
    baseline_points: list[OverviewPoint]


def _measured(rec: Recommendation) -> OverviewPoint:
    return OverviewPoint(
        batch_size=rec.batch_size,
        optimizer=rec.optimizer,
        source="measured",
        settings=rec.settings,
        metric=rec.metric,
        baseline_metric=rec.baseline_metric,
        uplift=rec.uplift,
        n_trials=rec.n_trials,
        job_id=rec.job_id,
        study_id=rec.study_id,
    )


def overview(uow: UnitOfWork, task_name: str, optimizer: str, baseline: str) -> Overview:
    """Tuned batch sizes of a task, plus interpolations at the powers of two between them."""
    task = require_task(uow, task_name, "path.task")
    tuned = uow.recommendations.latest(task.name, optimizer)
    points = [_measured(r) for r in tuned]
    sizes = {r.batch_size for r in tuned}
    if len(sizes) >= 2:
        size = 1 << math.ceil(math.log2(min(sizes)))
        while size < max(sizes):
            if size not in sizes:
                answer = recommend(uow, task.name, size, optimizer)
                points.append(
                    OverviewPoint(
                        batch_size=size,
                        optimizer=optimizer,
                        source="interpolated",
                        settings=answer.settings,
                        metric=None,
                        baseline_metric=None,
                        uplift=None,
                        n_trials=0,
                        job_id=None,
                        study_id=None,
                    )
                )
            size *= 2
    points.sort(key=lambda p: (p.batch_size, p.source))
    base = [_measured(r) for r in uow.recommendations.latest(task.name, baseline)]
    return Overview(
        task=task.name,
        metric_name=task.metric,
        direction=task.direction,
        optimizer=optimizer,
        baseline=baseline,
        points=points,
        baseline_points=base,
    )
