"""Cloudflare's own view, as both sides of the registry use it.

The CloudflareZone side reads each zone's analytics when a window is due
(``edge.analytics``) and shows the view in the zone's status, with the slow paths no route
covers. The routes' side hands each route its share of the view (``edge_view``), its
``EdgeErrors`` and ``EdgeAgrees`` conditions, and the windows the engine should ask
Prometheus about (``comparisons_due``, answered through ``compared``), so both P95s cover
the same minutes. Nothing here acts on the view.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from timeout_budget.decide import edge_view
from timeout_budget.edge import analytics
from timeout_budget.edge.analytics import Analytics
from timeout_budget.edge.routes import ZoneRef
from timeout_budget.edge.state import EdgeState
from timeout_budget.edge.zone import ZoneState
from timeout_budget.model.conditions import ConditionInput
from timeout_budget.model.edge_view import EdgePath, RouteEdge, UnbudgetedPath, Window
from timeout_budget.model.spec import RouteKey, TimeoutBudgetSpec
from timeout_budget.model.timestamps import rfc3339


class EdgeViews(EdgeState):
    # -- the zone's side ----------------------------------------------------------------
    def _analytics_of(self, ref: ZoneRef) -> Analytics:
        return self._analytics.setdefault(ref, Analytics())

    def _analytics_due(self, ref: ZoneRef) -> bool:
        zone = self._zones.get(ref)
        if zone is None or not zone.spec.analytics.enabled:
            return False
        spec = zone.spec.analytics
        return (
            self._analytics_of(ref).due(self._clock(), spec.interval_seconds, spec.delay_seconds)
            is not None
        )

    async def _read_analytics(self, zone: ZoneState, now: float) -> None:
        await analytics.read(zone, self._analytics_of((zone.namespace, zone.name)), now)

    def _unbudgeted(self, zone: ZoneState) -> list[UnbudgetedPath] | None:
        """The zone's slow paths no route covers; ``None`` until the engine has shown this
        process every route (after a restart, every path would look unbudgeted)."""
        split = self._split((zone.namespace, zone.name))
        if split is None or not self._cycled:
            return None
        seconds = zone.timeout.seconds if zone.timeout is not None else 120
        return edge_view.unbudgeted(split[1], seconds, zone.spec.analytics.near_fraction)

    def _edge_view_status(self, zone: ZoneState | None) -> dict[str, Any] | None:
        if zone is None:
            return None
        state = self._analytics.get((zone.namespace, zone.name))
        if state is None or (state.available is None and state.view is None):
            if not zone.spec.analytics.enabled:
                return {"available": False, "message": "spec.analytics.enabled is false"}
            return None
        out: dict[str, Any] = {"available": bool(state.available), "message": state.message}
        view = state.view
        if view is not None:
            out["windowStart"] = rfc3339(view.window.start, whole_seconds=True)
            out["windowEnd"] = rfc3339(view.window.end, whole_seconds=True)
            out["readTime"] = rfc3339(view.read_at, whole_seconds=True)
            out["requests"] = sum(p.requests for p in view.paths)
            out["errors524"] = sum(p.errors_524 for p in view.paths)
            found = self._unbudgeted(zone)
            if found is not None:
                out["unbudgetedPaths"] = [u.to_status() for u in found]
        return out

    # -- the routes' side ---------------------------------------------------------------
    def _split(self, ref: ZoneRef) -> tuple[dict[RouteKey, RouteEdge], list[EdgePath]] | None:
        """The zone's view split between its routes (cached per view and routes)."""
        state = self._analytics.get(ref)
        if state is None or state.view is None:
            return None
        key = (state.view.read_at, self._covers_version.get(ref, 0))
        if state.attributed is None or state.attributed[0] != key:
            covers = self._covers.get(ref, {}).values()
            owned, nobody = edge_view.attribute(state.view, covers)
            state.attributed = (key, owned, nobody)
        return state.attributed[1], state.attributed[2]

    def _route_edge(self, ref: ZoneRef, key: RouteKey) -> RouteEdge | None:
        split = self._split(ref)
        found = split[0].get(key) if split is not None else None
        if found is None:
            return None
        compared = self._analytics_of(ref).compared.get(key)
        if compared is None or compared[0] != found.window.end:
            return found
        return RouteEdge(
            found.window,
            found.requests,
            found.errors_5xx,
            found.errors_524,
            found.p95_seconds,
            found.paths,
            found.sample_interval,
            prometheus_p95_seconds=compared[1],
            compared=True,
        )

    def edge_view(self, namespace: str, key: RouteKey, spec: TimeoutBudgetSpec) -> RouteEdge | None:
        """The route's share of its zone's last window, if read."""
        del namespace, spec  # the route as ``observe`` remembered it this cycle
        route = self._routes.get(key)
        return None if route is None else self._route_edge(route.zone, key)

    def _edge_conditions(self, ref: ZoneRef, key: RouteKey) -> Sequence[ConditionInput]:
        zone = self._zones.get(ref)
        if zone is None or not zone.spec.analytics.enabled:
            return ()
        route = self._routes[key]
        timeout = zone.timeout.seconds if zone.timeout is not None else None
        budget = route.spec.budget_seconds(timeout)
        state = self._analytics.get(ref)
        unread = state.message if state is not None and state.view is None else None
        return edge_view.conditions(
            self._route_edge(ref, key), budget, zone.spec.analytics.agreement_fraction, unread
        )

    def comparisons_due(self) -> dict[RouteKey, Window]:
        """Routes whose zone's newest window Prometheus has not been asked about yet."""
        due: dict[RouteKey, Window] = {}
        for ref in list(self._analytics):
            split = self._split(ref)
            if split is None:
                continue
            asked = self._analytics[ref].compared
            for key, found in split[0].items():
                if key in self._routes and asked.get(key, (None,))[0] != found.window.end:
                    due[key] = found.window
        return due

    def compared(self, answers: Mapping[RouteKey, tuple[Window, float | None]]) -> None:
        """Prometheus' P95 per route over its zone's window (``None``: no data)."""
        for key, (window, p95) in answers.items():
            route = self._routes.get(key)
            if route is not None:
                self._analytics_of(route.zone).compared[key] = (window.end, p95)
