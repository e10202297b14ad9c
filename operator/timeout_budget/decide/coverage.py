"""What gives a route's requests their read timeout at the Cloudflare edge, per method group.

A Cache Rule's ``read_timeout`` applies only to requests Cloudflare could cache ("the content
needs to be cacheable for the rule to be triggered", Error 524 page), and Cloudflare caches
only GET (HEAD is a GET at the origin). So the route's Cache Rule covers its GET and HEAD;
a POST, PUT, PATCH, DELETE or OPTIONS keeps the zone's ``proxy_read_timeout``. For those the
zone's own timeout covers the route when it is enough; else the zone's timeout raised by the
operator (where the CloudflareZone opts in, up to its ceiling: ``zone_raise``); else a
DNS-only hostname (the reroute to it takes such requests off Cloudflare's proxy); else
nothing does, and Cloudflare's advice (long work answered at once and polled for its status)
applies.

Pure: the spec and what was observed of the zone in, one ``Coverage`` per method group out.
"""

from __future__ import annotations

from timeout_budget.model.coverage import Coverage, CoveredBy
from timeout_budget.model.spec import CACHEABLE_METHODS, TimeoutBudgetSpec
from timeout_budget.model.world import EdgeObservation

__all__ = ["Coverage", "CoveredBy", "coverage", "needed_seconds", "zone_raise_pending"]


def needed_seconds(spec: TimeoutBudgetSpec, zone: EdgeObservation) -> int | None:
    """The read timeout the route's requests need at the edge: what its Cache Rule gives its
    GETs (a declared need or a raise), else its declared need plus 1 s. A rule overridden
    by a later one still says what the route needs."""
    if zone.route_timeout_seconds is not None:
        return zone.route_timeout_seconds
    required = spec.budget.required_seconds
    return required + 1 if required is not None else None


def coverage(spec: TimeoutBudgetSpec, zone: EdgeObservation | None) -> tuple[Coverage, ...]:
    """One entry per method group the route serves: its cacheable methods, then the others."""
    served = spec.route.methods
    cacheable = tuple(m for m in served if m in CACHEABLE_METHODS)
    others = tuple(m for m in served if m not in CACHEABLE_METHODS)
    found: list[Coverage] = []
    if cacheable:
        found.append(_cacheable(cacheable, zone))
    if others:
        found.append(_others(spec, others, zone))
    return tuple(found)


def _cacheable(methods: tuple[str, ...], zone: EdgeObservation | None) -> Coverage:
    if zone is None:
        return Coverage(methods, "ZoneTimeout", None)
    if zone.route_timeout_seconds is not None and not zone.route_rule_overridden:
        return Coverage(methods, "CacheRule", zone.route_timeout_seconds)
    return Coverage(methods, "ZoneTimeout", zone.zone_timeout_seconds)


def _others(
    spec: TimeoutBudgetSpec, methods: tuple[str, ...], zone: EdgeObservation | None
) -> Coverage:
    if zone is None:
        return Coverage(methods, "ZoneTimeout", None)
    needed = needed_seconds(spec, zone)
    if needed is None or needed <= zone.zone_timeout_seconds:
        return Coverage(methods, "ZoneTimeout", zone.zone_timeout_seconds)
    raised = zone.zone_raised_seconds
    if raised is not None and raised >= needed:
        return Coverage(methods, "ZoneTimeout", raised)
    if spec.reroute is not None and spec.reroute.dns_only_hostname is not None:
        return Coverage(methods, "DnsOnly", None)
    return Coverage(methods, "None", raised if raised is not None else zone.zone_timeout_seconds)


def zone_raise_pending(spec: TimeoutBudgetSpec, zone: EdgeObservation) -> int | None:
    """The value the zone's ``proxy_read_timeout`` is about to be raised to for this route
    (the CloudflareZone allows it up to a ceiling that is enough), while it is not yet."""
    needed = needed_seconds(spec, zone)
    ceiling = zone.zone_raise_ceiling_seconds
    if needed is None or ceiling is None or needed > ceiling:
        return None
    if needed <= max(zone.zone_timeout_seconds, zone.zone_raised_seconds or 0):
        return None
    return needed
