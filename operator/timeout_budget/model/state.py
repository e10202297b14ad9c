"""The one-word summary of a route that ``kubectl get tb`` shows in its State column.

A state is a summary for people, not a place where detail hides: *why* a route is in it is
told by the conditions and the message. That is also why "Prometheus is down" is not a
state of its own. A route without a usable latency reading — no traffic (NaN, no series),
Prometheus unreachable, a query Prometheus rejects, a selector the operator refuses to
build — is ``NoData`` in every case, because the operator does the same thing in every
case: it holds everything as it is. Which of them it is shows in the condition
``MetricsAvailable=False`` whose reason is the observation's outcome (``NoData``,
``MetricsUnavailable``, ``QueryRejected``, ``InvalidSelector``) with its message. The CRD's
State column and its documented values stay the six below.

Precedence, when several could apply: ``Paused`` > ``NoData`` > ``Breaching`` >
``Rerouted`` > ``AtRisk`` > ``Healthy``. ``Breaching`` wins over ``Rerouted`` because a
route over its budget even after the reroute is the more urgent fact; the ``rerouted``
status field and the ``Rerouted`` condition still tell that the reroute is in force.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    HEALTHY = "Healthy"
    """P95 below the at-risk line (or between the lines, coming from below)."""
    AT_RISK = "AtRisk"
    """P95 at or above ``atRiskRatio x budget``, or between the lines coming from above."""
    BREACHING = "Breaching"
    """P95 at or above the budget: visitors are getting, or about to get, Error 524."""
    NO_DATA = "NoData"
    """No usable latency reading; everything is held as it is."""
    REROUTED = "Rerouted"
    """The reroute is in force and P95 is below the budget."""
    PAUSED = "Paused"
    """``spec.paused``: observed and reported, nothing taken or undone."""
