"""Scoring is pure: trial records in, best trials, means, uplifts and recommendations out."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.core.statuses import TrialStatus
from service.trials.repository import Trial
from workers import scoring
from workers.scoring import ArmResult
from workers.tasks import get_task

ACCURACY = get_task("digits-mlp")  # direction "max"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def trial(number: int, metric: float | None, status: str = "completed", seed: int = 0,
          lr: float | None = None, error: str | None = None) -> Trial:  # fmt: skip
    return Trial(
        id=100 + number,
        study_id=1,
        job_id=1,
        number=number,
        params={"lr": lr if lr is not None else 0.01 * (number + 1)},
        alpha=None,
        beta1=None,
        lr=lr,
        status=TrialStatus(status),
        final_metric=metric,
        best_metric=metric,
        epochs_run=3,
        wall_time_s=1.0,
        seed=seed,
        node=None,
        device=None,
        error=error,
        created_at=NOW,
        updated_at=NOW,
    )


def test_best_trials_keep_completed_finite_trials_of_the_search_seed_best_first():
    trials = [
        trial(0, 0.80),
        trial(1, 0.95, status="pruned"),
        trial(2, math.nan, status="diverged"),
        trial(3, 0.99, seed=7),  # a re-evaluation seed: not part of the search
        trial(4, 0.90),
        trial(5, 0.90),  # ties go to the earlier trial
        trial(6, math.inf),
    ]
    best = scoring.best_trials(trials, seed=0, direction="max", n=3)
    assert [t.number for t in best] == [4, 5, 0]
    lowest = scoring.best_trials(trials, seed=0, direction="min", n=1)
    assert [t.number for t in lowest] == [0]


metrics = st.lists(
    st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)), max_size=30
)


@given(metrics, st.sampled_from(["max", "min"]), st.integers(0, 10))
def test_best_trials_are_sorted_and_only_finite(values, direction, n):
    trials = [trial(i, v) for i, v in enumerate(values)]
    best = scoring.best_trials(trials, 0, direction, n)
    assert len(best) <= max(1, n)
    got = [t.final_metric for t in best]
    assert all(v is not None and math.isfinite(v) for v in got)
    assert got == sorted(got, reverse=direction == "max")
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if finite:
        assert got[0] == (max(finite) if direction == "max" else min(finite))


@given(metrics, st.sampled_from(["max", "min"]))
def test_best_metric_is_the_best_finite_value(values, direction):
    finite = [v for v in values if v is not None and math.isfinite(v)]
    expected = (max if direction == "max" else min)(finite) if finite else None
    assert scoring.best_metric(values, direction) == expected


def test_best_mean_scores_each_setting_over_all_its_seeds():
    lucky = trial(0, 0.99, lr=0.1)  # best on the search seed, poor on the others
    steady = trial(1, 0.95, lr=0.2)
    trials = [
        lucky,
        steady,
        trial(2, 0.70, seed=1, lr=0.1),
        trial(3, 0.94, seed=1, lr=0.2),
        trial(4, math.nan, status="diverged", seed=2, lr=0.1),  # counts as the worst value
        trial(5, 0.96, seed=2, lr=0.2),
    ]
    best, mean, spread = scoring.best_mean(trials, [lucky, steady], ACCURACY)
    assert best is steady
    assert mean == pytest.approx((0.95 + 0.94 + 0.96) / 3)
    assert spread == pytest.approx(0.01)


@given(
    st.floats(-1e6, 1e6, allow_nan=False), st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from(["max", "min"]),
)  # fmt: skip
def test_uplift_is_positive_exactly_when_the_arm_beats_the_baseline(metric, base, direction):
    up = scoring.uplift(metric, base, direction)
    better = metric > base if direction == "max" else metric < base
    assert (up > 0) == better
    assert scoring.uplift(base, metric, direction) == -up


def result(optimizer: str, metric: float) -> ArmResult:
    return ArmResult(optimizer, 1, 7, {"lr": 0.01}, metric, None, 8)


def test_recommendations_set_every_arm_against_the_baseline():
    results = {"alto": result("alto", 0.93), "lamb": result("lamb", 0.90)}
    recs = {r.optimizer: r for r in scoring.recommendations(ACCURACY, 5, 64, results, set())}
    assert recs["alto"].baseline_optimizer == "lamb"
    assert recs["alto"].uplift == pytest.approx(0.03)
    assert recs["lamb"].baseline_optimizer is None and recs["lamb"].uplift is None
    perplexity = get_task("charlm")  # lower is better
    recs = scoring.recommendations(perplexity, 5, 64, results, {"lamb"})
    assert [r.optimizer for r in recs] == ["alto"]  # lamb's was written already
    assert recs[0].uplift == pytest.approx(-0.03)


def test_recommendations_without_a_baseline_have_no_uplift():
    recs = scoring.recommendations(ACCURACY, 5, 64, {"alto": result("alto", 0.9)}, set())
    assert recs[0].baseline_metric is None and recs[0].uplift is None


def test_failure_text_quotes_the_first_error():
    trials = [trial(0, None, status="failed", error="CUDA out of memory"), trial(1, None, "failed")]
    assert scoring.failure_text(trials, 64, "alto").endswith("CUDA out of memory")
    assert "no trial completed" in scoring.failure_text([], 64, "alto")
