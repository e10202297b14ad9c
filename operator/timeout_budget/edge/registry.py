"""Every CloudflareZone the operator syncs, and the edge side of every route.

``ZoneRegistry`` is the operator's one Cloudflare part (kopf's ``memo.zones``): the
CloudflareZone reconciler (``zone_reconciler``) and the routes' edge sync
(``route_sync``, the engine's ``EdgeSync``) on one shared state (``state``).

Tokens live only inside ``ApiToken`` and the SDK client; nothing here logs, reports or
raises one.
"""

from __future__ import annotations

from timeout_budget.edge.route_sync import RouteEdgeSync
from timeout_budget.edge.state import EdgeMetrics
from timeout_budget.edge.zone_reconciler import ZoneReconciler

__all__ = ["EdgeMetrics", "ZoneRegistry"]


class ZoneRegistry(ZoneReconciler, RouteEdgeSync):
    """The operator's Cloudflare side; lives in kopf's ``memo.zones``."""

    def __repr__(self) -> str:
        return f"ZoneRegistry(base_url={self.base_url!r}, zones={len(self._zones)})"
