"""Hypothesis profiles of the property tests: derandomized (the same examples on every run, so CI is
deterministic), no per-example deadline (2 shared CI cores make timings noisy)."""

from __future__ import annotations

from hypothesis import HealthCheck, settings


def examples(n: int) -> settings:
    """``n`` derandomized examples without a deadline; the data generation may be slow on CI."""
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
