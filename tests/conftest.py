"""Shared test configuration: Hypothesis profiles.

``CI_ENGINE_HYPOTHESIS_PROFILE`` picks the profile; ``ci`` (the default) is derandomised so a
CI failure reproduces, ``dev`` is quicker, ``long`` is for fuzzing sessions.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("dev", deadline=None, max_examples=50)
settings.register_profile("long", deadline=None, max_examples=20_000, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("CI_ENGINE_HYPOTHESIS_PROFILE", "ci"))
