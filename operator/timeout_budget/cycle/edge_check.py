"""Prometheus over the edge's window: what ``EdgeAgrees`` and ``EdgeErrors`` compare with.

Cloudflare's view of a zone covers a finished window some minutes back; comparing it with
the P95 the cycle just read would compare different minutes. So once per window, the
routes whose zone has a new window are asked again, in one batched query per window, with
the window's length as the quantile's range, evaluated at the window's end. An answer that
is not a value or "no data" (Prometheus down, a refused query) is not recorded: the next
cycle asks again, and ``EdgeAgrees`` says "not compared" meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from timeout_budget.cycle.ports import EdgeSync, LatencySource
from timeout_budget.model.edge_view import Window
from timeout_budget.model.observation import Outcome
from timeout_budget.model.spec import RouteKey, TimeoutBudgetSpec

log = logging.getLogger("timeout_budget.engine")


async def compare(
    edge: EdgeSync, source: LatencySource, specs: Mapping[RouteKey, TimeoutBudgetSpec]
) -> int:
    """Ask Prometheus about every window due; returns the routes answered."""
    by_window: dict[Window, dict[RouteKey, TimeoutBudgetSpec]] = {}
    for key, window in edge.comparisons_due().items():
        spec = specs.get(key)
        if spec is not None:
            by_window.setdefault(window, {})[key] = over(spec, window)
    answered = 0
    for window, routes in by_window.items():
        found: dict[RouteKey, tuple[Window, float | None]] = {}
        async for part in source.observe_parts(routes, window.end):
            for key, reading in part.items():
                if reading.outcome is Outcome.VALUE:
                    found[key] = (window, reading.seconds)
                elif reading.outcome is Outcome.NO_DATA:
                    found[key] = (window, None)
                else:
                    log.info("route %s: edge window not compared: %s", key, reading.message)
        edge.compared(found)
        answered += len(found)
    return answered


def over(spec: TimeoutBudgetSpec, window: Window) -> TimeoutBudgetSpec:
    """The route's spec with the window's length as its quantile's range."""
    latency = spec.latency.model_copy(update={"window": f"{round(window.seconds)}s"})
    return spec.model_copy(update={"latency": latency})
