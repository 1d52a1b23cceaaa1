"""Hypothesis profiles, chosen with HYPOTHESIS_PROFILE.

"ci" (the default) keeps the property tests within the CI budget and reports a failing
example as drawn: shrinking examples of millions of elements can take many minutes.
"thorough" draws many more examples and shrinks a failure to a minimal one.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

_SLOW_DATA = [HealthCheck.too_slow, HealthCheck.data_too_large]

settings.register_profile(
    "ci",
    max_examples=20,
    deadline=None,
    suppress_health_check=_SLOW_DATA,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target],
)
settings.register_profile(
    "thorough", max_examples=400, deadline=None, suppress_health_check=_SLOW_DATA
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
