"""The engine asks Prometheus about the edge's windows (``cycle.edge_check``): one query per
window, the window's length as the quantile's range, evaluated at its end; a value or "no
data" is recorded, a failure is not (asked again next cycle)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import pytest

from tests.support.ladder import make_spec
from timeout_budget.cycle import edge_check
from timeout_budget.model.edge_view import Window
from timeout_budget.model.observation import LatencyObservation
from timeout_budget.model.spec import RouteKey, TimeoutBudgetSpec

pytestmark = pytest.mark.unit

A, B, C, D = (RouteKey(f"shop/{n}") for n in "abcd")
FIRST, SECOND = Window(600.0, 900.0), Window(870.0, 890.0)


class Edge:
    def __init__(self, due: dict[RouteKey, Window]) -> None:
        self.due = due
        self.told: dict[RouteKey, tuple[Window, float | None]] = {}

    def comparisons_due(self) -> dict[RouteKey, Window]:
        return self.due

    def compared(self, answers: Mapping[RouteKey, tuple[Window, float | None]]) -> None:
        self.told.update(answers)


class Source:
    answered_in = None
    queries_sent = None

    def __init__(self, answers: dict[RouteKey, LatencyObservation]) -> None:
        self.answers = answers
        self.asked: list[tuple[dict[RouteKey, str], float | None]] = []

    async def observe_parts(
        self, routes: Mapping[RouteKey, TimeoutBudgetSpec], at: float | None = None
    ) -> AsyncGenerator[dict[RouteKey, LatencyObservation], None]:
        self.asked.append(({k: s.latency.window for k, s in routes.items()}, at))
        yield {k: self.answers[k] for k in routes}


def test_each_window_is_asked_once_over_its_own_length_and_failures_are_not_recorded() -> None:
    edge = Edge({A: FIRST, B: FIRST, C: SECOND, D: FIRST})
    source = Source(
        {
            A: LatencyObservation.value(42.0),
            B: LatencyObservation.no_data(),
            C: LatencyObservation.unavailable("Prometheus down"),
            D: LatencyObservation.value(1.0),
        }
    )
    specs: dict[RouteKey, Any] = {A: make_spec(), B: make_spec(), C: make_spec()}  # D is gone
    answered = asyncio.run(edge_check.compare(edge, source, specs))
    assert sorted(source.asked, key=lambda a: a[1] or 0) == [
        ({C: "20s"}, 890.0),
        ({A: "300s", B: "300s"}, 900.0),
    ]
    assert edge.told == {A: (FIRST, 42.0), B: (FIRST, None)}
    assert answered == 2
    assert make_spec().latency.window != "300s"  # the route's own spec is left as it was
