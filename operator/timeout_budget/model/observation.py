"""What the observe step found out about one route's latency, kept honest.

Missing data is never a number: no traffic (NaN or no series) is ``NO_DATA``;
Prometheus down or erroring is ``UNAVAILABLE``; a query Prometheus refuses, or a
selector the operator refuses to build, is the user's to fix (``REJECTED`` /
``INVALID``). Only ``VALUE`` carries seconds, and only it may drive a scale-down.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    VALUE = "Value"
    NO_DATA = "NoData"
    UNAVAILABLE = "MetricsUnavailable"
    REJECTED = "QueryRejected"
    INVALID = "InvalidSelector"
    PARTIAL = "PartialData"
    """The backend answered, but said the answer may miss data (a store down): held like
    no data, except that a value already over the at-risk line may add capacity."""


@dataclass(frozen=True, slots=True)
class LatencyObservation:
    outcome: Outcome
    seconds: float | None = None
    message: str = ""
    top_bucket_seconds: float | None = None
    """Largest finite ``le`` bound of the route's histogram, when known."""

    @property
    def has_value(self) -> bool:
        return self.outcome is Outcome.VALUE and self.seconds is not None

    @classmethod
    def value(cls, seconds: float, top_bucket_seconds: float | None = None) -> LatencyObservation:
        return cls(Outcome.VALUE, seconds=seconds, top_bucket_seconds=top_bucket_seconds)

    @classmethod
    def no_data(cls, message: str = "no requests in the window") -> LatencyObservation:
        return cls(Outcome.NO_DATA, message=message)

    @classmethod
    def unavailable(cls, message: str) -> LatencyObservation:
        return cls(Outcome.UNAVAILABLE, message=message)

    @classmethod
    def rejected(cls, message: str) -> LatencyObservation:
        return cls(Outcome.REJECTED, message=message)

    @classmethod
    def invalid(cls, message: str) -> LatencyObservation:
        return cls(Outcome.INVALID, message=message)

    @classmethod
    def partial(cls, seconds: float | None, message: str) -> LatencyObservation:
        """A value from an answer that may miss data (``seconds``: the value it gave)."""
        return cls(Outcome.PARTIAL, seconds=seconds, message=message)
