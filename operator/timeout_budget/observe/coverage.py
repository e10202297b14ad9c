"""Is a route's histogram fine-grained enough to see its budget? (pure)

``histogram_quantile`` cannot report more than the largest finite bucket bound: when the
quantile lies in the ``+Inf`` bucket it returns that bound. With a client library's default
buckets (top bound 10 s) a route drifting towards a 120 s budget would read "10 s" forever
and look healthy. So the operator compares the largest finite ``le`` of each route's
histogram with the threshold it acts at (``atRiskRatio * budget``) and, when the buckets stop
short, reports ``BucketsTooCoarse`` naming the top bucket and what is needed, instead of
trusting a saturated value.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from timeout_budget.model.spec import TimeoutBudgetSpec

BUCKETS_TOO_COARSE = "BucketsTooCoarse"
"""Condition reason for a histogram whose finite buckets stop below the at-risk threshold."""


class Coverage(StrEnum):
    COVERED = "Covered"
    TOO_COARSE = BUCKETS_TOO_COARSE
    UNKNOWN = "Unknown"


@dataclass(frozen=True)
class CoverageVerdict:
    coverage: Coverage
    top_bucket_seconds: float | None
    threshold_seconds: float
    message: str

    @property
    def too_coarse(self) -> bool:
        return self.coverage is Coverage.TOO_COARSE


def at_risk_threshold_seconds(spec: TimeoutBudgetSpec, zone_timeout: int | None = None) -> float:
    """The latency at which the route starts to act: ``atRiskRatio * budget``."""
    return spec.budget.at_risk_ratio * spec.budget_seconds(zone_timeout)


def check_bucket_coverage(
    top_bucket_seconds: float | None,
    threshold_seconds: float,
    budget_seconds: float | None = None,
) -> CoverageVerdict:
    """Compare the largest finite bucket bound with the threshold the route acts at.

    A bound equal to the threshold is enough: a quantile beyond it reads as the bound itself,
    which already crosses the threshold. ``None`` (no series seen, or a ``query`` override)
    is ``UNKNOWN``, not a failure.
    """
    if top_bucket_seconds is None:
        return CoverageVerdict(
            Coverage.UNKNOWN,
            None,
            threshold_seconds,
            "bucket bounds unknown (no series seen yet, or a latency.query override)",
        )
    if top_bucket_seconds >= threshold_seconds:
        return CoverageVerdict(
            Coverage.COVERED,
            top_bucket_seconds,
            threshold_seconds,
            f"largest finite bucket le={_s(top_bucket_seconds)} reaches the at-risk threshold "
            f"of {_s(threshold_seconds)}",
        )
    budget = f", ideally past the {_s(budget_seconds)} budget" if budget_seconds else ""
    return CoverageVerdict(
        Coverage.TOO_COARSE,
        top_bucket_seconds,
        threshold_seconds,
        f"the histogram's largest finite bucket is le={_s(top_bucket_seconds)}, below the "
        f"at-risk threshold of {_s(threshold_seconds)}: any latency above it reads as "
        f"{_s(top_bucket_seconds)}. Add buckets up to at least {_s(threshold_seconds)}{budget}.",
    )


def _s(seconds: float) -> str:
    return f"{seconds:g}s"
