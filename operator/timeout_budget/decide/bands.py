"""Where a latency reading sits against a route's budget, and whether it can be trusted.

Two lines cut the latency axis: the at-risk line (``atRiskRatio x budget``), where the
operator acts, and the recover line (``recoverRatio x budget``), below which it may release.
Between them it holds, so a P95 oscillating around one line cannot make it flap. A reading at
or above the budget is breaching.

A reading can also lie. ``histogram_quantile`` never returns more than the largest finite
bucket bound: with buckets that stop at 10 s, a P95 of 10 s means "10 s or more, unknown".
Such a saturated reading below the at-risk line is put in the hold band: it must not start
a recovery (and so a scale-down or an undo), and it is not evidence of risk either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from timeout_budget.model.observation import LatencyObservation, Outcome
from timeout_budget.model.spec import Budget


class Band(Enum):
    RECOVERED = "below the recover line"
    HOLD = "between the lines"
    AT_RISK = "at risk"
    BREACHING = "breaching"

    @property
    def at_risk(self) -> bool:
        """At or above the at-risk line: the bands in which the ladder climbs."""
        return self in (Band.AT_RISK, Band.BREACHING)


@dataclass(frozen=True, slots=True)
class Lines:
    budget: int
    at_risk: float
    recover: float

    @classmethod
    def of(cls, budget_seconds: int, budget: Budget) -> Lines:
        return cls(
            budget=budget_seconds,
            at_risk=budget.at_risk_ratio * budget_seconds,
            recover=budget.recover_ratio * budget_seconds,
        )


def usable_seconds(latency: LatencyObservation) -> float | None:
    """The reading to decide on, or ``None``: only a finite, non-negative value counts."""
    if not latency.has_value or latency.seconds is None:
        return None
    seconds = latency.seconds
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def saturated(seconds: float, top_bucket_seconds: float | None) -> bool:
    """The reading is the largest finite bucket bound: the true quantile may be anywhere above."""
    return top_bucket_seconds is not None and seconds >= top_bucket_seconds


SHOWN_TOLERANCE = 0.10
SHOWN_TOLERANCE_OF_BUDGET = 0.025
SHOWN_TOLERANCE_OF_BUDGET_RECOVERED = 0.10
"""A new reading is shown once it drifts from the one the status shows by more than 10 % of
that, and more than 2.5 % of the budget (3 s of a 120 s budget), or crosses a line. Below
the recover line, where the only thing a decision reads is "below the line", the second
bound is 10 % of the budget (12 s of 120 s): healthy routes far from any line were most of
the status writes (bench/README.md)."""
READING_DECIMALS = 2
"""The reading is decided on and shown to the hundredth of a second (``reading``)."""


def steady(
    seconds: float, shown: float | None, lines: Lines, top_bucket_seconds: float | None
) -> float:
    """The reading to report: the one the status already shows (``shown``) while the new one
    stays close to it (``SHOWN_TOLERANCE*``), in the same band and equally (un)saturated.

    A quantile from a histogram wanders from scrape to scrape (by 10 % and more for a route
    with a request a second); reported as read, nearly every route's status would change
    every cycle: 10,000 routes, 10,000 status writes and watch events per cycle for noise.
    Since the band and the saturation are all any decision takes from the reading, the
    decision is the same either way: only the number shown (and its messages) keeps still.
    The metric ``timeout_budget_route_p95_seconds`` carries every reading as read.
    """
    if shown is None or not math.isfinite(shown) or shown <= 0:
        return seconds
    band = classify(shown, lines, top_bucket_seconds)
    if band is not classify(seconds, lines, top_bucket_seconds) or saturated(
        shown, top_bucket_seconds
    ) != saturated(seconds, top_bucket_seconds):
        return seconds
    of_budget = (
        SHOWN_TOLERANCE_OF_BUDGET_RECOVERED if band is Band.RECOVERED else SHOWN_TOLERANCE_OF_BUDGET
    )
    tolerance = max(SHOWN_TOLERANCE * shown, of_budget * lines.budget)
    return seconds if abs(seconds - shown) > tolerance else shown


def reading(latency: LatencyObservation, shown: float | None, lines: Lines) -> float | None:
    """The reading a decision is made on: the usable value, steadied against the one shown.

    A partial answer (``PartialData``: a store of the backend did not answer) is decided on
    only when its value is already at or over the at-risk line: then the ladder may add
    capacity (scale up, reroute, raise the edge), the safe direction. Under the line it is
    no reading at all, so nothing is scaled down or undone on it.

    Rounded to the hundredth of a second the status shows (``p95Seconds``): the number
    decided on, the one shown and the ones the messages quote are then the same, and the
    same evaluation made again on the reading shown gives the same status
    (``status.reading_only``)."""
    if latency.outcome is Outcome.PARTIAL:
        partial = latency.seconds
        if partial is None or not math.isfinite(partial) or partial < lines.at_risk:
            return None
        return round(partial, READING_DECIMALS)
    seconds = usable_seconds(latency)
    if seconds is None:
        return None
    return round(steady(seconds, shown, lines, latency.top_bucket_seconds), READING_DECIMALS)


def classify(seconds: float, lines: Lines, top_bucket_seconds: float | None) -> Band:
    if seconds >= lines.budget:
        return Band.BREACHING
    if seconds >= lines.at_risk:
        return Band.AT_RISK
    if seconds < lines.recover and not saturated(seconds, top_bucket_seconds):
        return Band.RECOVERED
    return Band.HOLD
