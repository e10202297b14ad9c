"""Cloudflare sync: each zone's cached state, its serialized writer, and DNS-only reroutes.

``ZoneRegistry`` is the engine's ``EdgeSync`` and the CloudflareZone handlers' reconciler.
"""

from timeout_budget.edge.errors import EdgeError, EdgeRefused, ZoneNotReady
from timeout_budget.edge.registry import ZoneRegistry

__all__ = ["EdgeError", "EdgeRefused", "ZoneNotReady", "ZoneRegistry"]
