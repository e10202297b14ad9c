"""Bucket coverage: is the histogram fine enough to see the route's at-risk threshold?"""

from __future__ import annotations

import pytest

from timeout_budget.model.spec import parse_timeout_budget
from timeout_budget.observe.coverage import (
    BUCKETS_TOO_COARSE,
    Coverage,
    at_risk_threshold_seconds,
    check_bucket_coverage,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("top", "threshold", "coverage"),
    [
        (10.0, 96.0, Coverage.TOO_COARSE),  # client default buckets vs a 120 s budget
        (95.9, 96.0, Coverage.TOO_COARSE),
        (96.0, 96.0, Coverage.COVERED),  # a saturated reading of 96 already crosses 96
        (6000.0, 96.0, Coverage.COVERED),
        (None, 96.0, Coverage.UNKNOWN),
    ],
)
def test_coverage_verdicts(top: float | None, threshold: float, coverage: Coverage) -> None:
    verdict = check_bucket_coverage(top, threshold, 120)
    assert verdict.coverage is coverage
    assert verdict.too_coarse is (coverage is Coverage.TOO_COARSE)


def test_too_coarse_message_names_the_top_bucket_and_what_is_needed() -> None:
    verdict = check_bucket_coverage(10.0, 96.0, 120)
    assert verdict.coverage == BUCKETS_TOO_COARSE
    assert verdict.message == (
        "the histogram's largest finite bucket is le=10s, below the at-risk threshold of 96s: "
        "any latency above it reads as 10s. Add buckets up to at least 96s, ideally past the "
        "120s budget."
    )


@pytest.mark.parametrize(
    ("budget", "zone", "expected"),
    [
        ({"timeoutSeconds": 120}, None, 96.0),
        ({"timeoutSeconds": 360, "atRiskRatio": 0.9, "recoverRatio": 0.5}, 100, 324.0),
        ({}, 100, 80.0),  # no timeoutSeconds: the zone's effective timeout
        ({}, None, 96.0),  # neither: Cloudflare's default 120 s
    ],
)
def test_at_risk_threshold(budget: dict[str, float], zone: int | None, expected: float) -> None:
    spec = parse_timeout_budget(
        {
            "route": {"host": "api.example.com"},
            "budget": budget,
            "latency": {"metric": "m"},
            "origin": {"deploymentName": "d"},
        }
    )
    assert at_risk_threshold_seconds(spec, zone) == pytest.approx(expected)
