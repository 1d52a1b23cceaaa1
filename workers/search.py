"""Search spaces per optimizer arm, and warm-start points.

ALTO (and every ``e-*`` arm) is searched over lr, beta1 and alpha such that the
stability rule |alpha (1 - beta1)| < 1 holds by construction: by default Optuna
samples ``one_minus_beta1`` log-uniformly in [1e-3, 0.99] (beta1 from 0.01 to
0.999, the paper's spread) and ``c = alpha (1 - beta1)`` uniformly in
(-0.99, 0.99), and alpha = c / (1 - beta1). When a job overrides the alpha range,
alpha and beta1 are sampled directly (the API checked the ranges against the rule).
Baselines (Lamb, AdamW, ...) search lr only, with the same trial budget.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from alto_core import OPTIMIZERS, recommended_defaults
from service.jobs.spec import SearchRange
from workers.tasks import Task

if TYPE_CHECKING:
    from optuna.distributions import FloatDistribution

C_LIMIT = 0.99
ONE_MINUS_BETA1 = (1e-3, 0.99)
BETA1_RANGE = (1.0 - ONE_MINUS_BETA1[1], 1.0 - ONE_MINUS_BETA1[0])
#: Hyperparameters an arm may fix rather than search (the paper's settings).
FIXED = {"sgd": {"momentum": 0.9}, "e-sgd": {"momentum": 0.9}}


def searched(optimizer: str) -> list[str]:
    return ["lr", "alpha", "beta1"] if OPTIMIZERS[optimizer].adaptor else ["lr"]


def _dist(r: SearchRange | tuple[float, float], log: bool = False) -> FloatDistribution:
    from optuna.distributions import FloatDistribution

    if isinstance(r, SearchRange):
        return FloatDistribution(r.low, r.high, log=r.log)
    return FloatDistribution(float(r[0]), float(r[1]), log=log)


@dataclass(frozen=True)
class SearchSpace:
    optimizer: str
    mode: str  # "lr", "c" (beta1 via one_minus_beta1, alpha via c), "c-beta1", "direct"
    distributions: dict[str, FloatDistribution]
    fixed: dict[str, float]

    def hyper(self, params: dict[str, float]) -> dict[str, float]:
        """Sampled parameters -> the optimizer's hyperparameters (alto_core vocabulary)."""
        out = {"lr": float(params["lr"]), **self.fixed}
        if self.mode == "c":
            omb = float(params["one_minus_beta1"])
            out["beta1"], out["alpha"] = 1.0 - omb, float(params["c"]) / omb
        elif self.mode == "c-beta1":
            out["beta1"] = float(params["beta1"])
            out["alpha"] = float(params["c"]) / (1.0 - out["beta1"])
        elif self.mode == "direct":
            out["alpha"], out["beta1"] = float(params["alpha"]), float(params["beta1"])
        # 12 significant digits: 1 - 0.99 is 0.010000000000000009 in binary, shown as 0.01.
        return {k: float(f"{v:.12g}") for k, v in out.items()}

    def params(self, hyper: dict[str, float]) -> dict[str, float] | None:
        """The inverse of ``hyper``, clipped into the ranges (for warm starts)."""

        def clip(name: str, value: float) -> float:
            d = self.distributions[name]
            return min(max(value, d.low), d.high)

        try:
            out = {"lr": clip("lr", float(hyper["lr"]))}
            if self.mode == "lr":
                return out
            alpha, beta1 = float(hyper["alpha"]), float(hyper["beta1"])
        except (KeyError, TypeError, ValueError):
            return None
        if self.mode == "c":
            omb = clip("one_minus_beta1", 1.0 - beta1)
            out.update(one_minus_beta1=omb, c=clip("c", alpha * (1.0 - beta1)))
        elif self.mode == "c-beta1":
            out.update(beta1=clip("beta1", beta1), c=clip("c", alpha * (1.0 - beta1)))
        else:
            out.update(alpha=clip("alpha", alpha), beta1=clip("beta1", beta1))
        return out


def space_for(
    optimizer: str, task: Task, overrides: Mapping[str, SearchRange] | None = None
) -> SearchSpace:
    from optuna.distributions import FloatDistribution

    overrides = overrides or {}
    lr = _dist(overrides["lr"]) if "lr" in overrides else _dist(task.lr_range, log=True)
    fixed = dict(FIXED.get(optimizer, {}))
    if not OPTIMIZERS[optimizer].adaptor:
        return SearchSpace(optimizer, "lr", {"lr": lr}, fixed)
    c = FloatDistribution(-C_LIMIT, C_LIMIT)
    if "alpha" in overrides:
        beta1 = _dist(overrides.get("beta1", BETA1_RANGE))
        dists = {"lr": lr, "alpha": _dist(overrides["alpha"]), "beta1": beta1}
        return SearchSpace(optimizer, "direct", dists, fixed)
    if "beta1" in overrides:
        return SearchSpace(
            optimizer, "c-beta1", {"lr": lr, "beta1": _dist(overrides["beta1"]), "c": c}, fixed
        )
    omb = FloatDistribution(*ONE_MINUS_BETA1, log=True)
    return SearchSpace(optimizer, "c", {"lr": lr, "one_minus_beta1": omb, "c": c}, fixed)


def paper_hyper(batch_size: int, task: Task) -> dict[str, float]:
    d = recommended_defaults(batch_size)
    return {"lr": task.default_lr, "alpha": d.alpha, "beta1": d.beta1}


def warm_start(
    space: SearchSpace,
    batch_size: int,
    task: Task,
    known: list[tuple[int, dict[str, float]]],
    baseline: list[tuple[int, dict[str, float]]] | None = None,
) -> list[dict[str, float]]:
    """First points of a study: the paper's defaults for this batch size; for an adaptor
    arm, the paper's alpha and beta1 again with the baseline's best lr at the nearest batch
    size (the task's default lr is rarely right at large batch, and the adaptor's alpha is
    judged badly at a poor lr); then the best settings already known at the nearest tuned
    batch sizes below and above (same task and arm). ``known`` and ``baseline`` hold
    (batch size, settings) pairs."""
    paper = paper_hyper(batch_size, task)
    candidates = [paper]
    if space.mode != "lr" and baseline:
        _, settings = min(baseline, key=lambda k: abs(math.log2(k[0] / batch_size)))
        if "lr" in settings:
            candidates.append({**paper, "lr": settings["lr"]})
    below = [k for k in known if k[0] < batch_size]
    above = [k for k in known if k[0] > batch_size]
    for side in (below, above):
        if side:
            nearest = min(side, key=lambda k: abs(math.log2(k[0] / batch_size)))
            candidates.append(nearest[1])
    points: list[dict[str, float]] = []
    for hyper in candidates:
        point = space.params(hyper)
        if point is not None and point not in points:
            points.append(point)
    return points


def catalogue_entries() -> list[dict[str, Any]]:
    """What the API needs to validate job specs and answer with paper defaults."""
    paper = {
        "large_batch_from": 1024,
        "small": {"alpha": recommended_defaults(1).alpha, "beta1": recommended_defaults(1).beta1},
        "large": {
            "alpha": recommended_defaults(1024).alpha,
            "beta1": recommended_defaults(1024).beta1,
        },
    }
    entries = []
    for name, spec in OPTIMIZERS.items():
        defaults: dict[str, Any] = {"fixed": FIXED.get(name, {})}
        if spec.adaptor:
            defaults["paper"] = paper
            defaults["search"] = {
                "beta1": {"low": BETA1_RANGE[0], "high": BETA1_RANGE[1], "log": False},
                "c": {"low": -C_LIMIT, "high": C_LIMIT, "log": False},
            }
        entries.append(
            {
                "name": name,
                "description": spec.description,
                "searched": searched(name),
                "defaults": defaults,
            }
        )
    return entries
