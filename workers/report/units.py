"""How the report's numbers read: accuracy in percent, perplexity as is, and one compact
number format. The verdicts, the tables, the plots and the progress bar all use them, so
they sit below those modules rather than in one of them."""

from __future__ import annotations

import math
from typing import TypeGuard

from workers.report.evidence import TaskEvidence


def _finite(value: float | None) -> TypeGuard[float]:
    # A type guard, so that a value filtered by it is a float to the type checker too.
    return value is not None and math.isfinite(value)


def _scale(task: TaskEvidence) -> float:
    return 100.0 if task.metric == "accuracy" else 1.0


def _num(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}"


def _metric_label(task: TaskEvidence) -> str:
    return "accuracy, %" if task.metric == "accuracy" else task.metric
