"""Pure parts of the Ray Tune module: the early-stopping grace period."""

from __future__ import annotations

import pytest

from service.jobs.spec import JobSpec
from workers import tuning


@pytest.mark.parametrize(
    ("requested", "epochs", "expected"),
    [(None, 10, 3), (None, 3, 1), (None, 2, 1), (None, 1, 1), (5, 10, 5), (20, 10, 10)],
)
def test_grace_period_defaults_to_a_third_of_the_epochs(requested, epochs, expected):
    assert tuning.grace_period(requested, epochs) == expected


def test_a_job_leaves_the_grace_period_to_the_worker_unless_given():
    spec = JobSpec.model_validate({"task": "digits-mlp", "batch_sizes": [64]})
    assert spec.early_stopping.grace_period is None
    given = {"task": "digits-mlp", "batch_sizes": [64], "early_stopping": {"grace_period": 2}}
    assert JobSpec.model_validate(given).early_stopping.grace_period == 2
