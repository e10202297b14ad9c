"""A cycle decides and acts on the most urgent routes first."""

from __future__ import annotations

import pytest

from timeout_budget.cycle.engine import urgency
from timeout_budget.model.observation import LatencyObservation
from timeout_budget.model.spec import parse_timeout_budget

pytestmark = pytest.mark.unit


def spec(timeout: int | None) -> object:
    budget = {} if timeout is None else {"timeoutSeconds": timeout}
    return parse_timeout_budget(
        {
            "route": {"host": "a.example.com"},
            "budget": budget,
            "latency": {"metric": "m"},
            "origin": {"deploymentName": "a"},
        }
    )


def test_routes_are_ordered_by_p95_over_budget_and_those_without_data_last() -> None:
    routes = {
        "healthy": (spec(120), LatencyObservation.value(10.0)),
        "no-data": (spec(120), LatencyObservation.no_data()),
        "breaching": (spec(60), LatencyObservation.value(70.0)),
        "at-risk": (spec(None), LatencyObservation.value(100.0)),  # the 120 s default
        "unobserved": (spec(120), None),
        "down": (spec(120), LatencyObservation.unavailable("Prometheus down")),
    }
    order = sorted(routes, key=lambda r: urgency(*routes[r]), reverse=True)  # type: ignore[arg-type]
    assert order[:3] == ["breaching", "at-risk", "healthy"]
    assert set(order[3:]) == {"no-data", "unobserved", "down"}
