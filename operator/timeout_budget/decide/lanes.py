"""Which routes the fast lane reads: the ones near their line.

Every route is read in the full cycle (default every 15 s). A route whose last reading is
at or over its recover line (between the lines, at risk or breaching) is also read in the
fast lane's small query every few seconds (``TBO_FAST_LANE_SECONDS``), so the crossing of
its at-risk line is acted on within seconds instead of up to a whole interval later. The
quiet routes, far under their line, wait for the full cycle.

A route without a usable reading (no data, Prometheus down, a partial answer under the
line) is not in the fast lane: reading it sooner cannot make it act sooner, since nothing
is decided on missing data.
"""

from __future__ import annotations

import math

from timeout_budget.decide.bands import Lines
from timeout_budget.model.observation import LatencyObservation, Outcome
from timeout_budget.model.spec import TimeoutBudgetSpec


def near_line(spec: TimeoutBudgetSpec, latency: LatencyObservation | None) -> bool:
    """Is the route's last reading at or over its recover line?"""
    if latency is None or latency.seconds is None or not math.isfinite(latency.seconds):
        return False
    if latency.outcome not in (Outcome.VALUE, Outcome.PARTIAL):
        return False
    lines = Lines.of(spec.budget_seconds(None), spec.budget)
    return latency.seconds >= lines.recover
