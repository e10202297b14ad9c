"""Turning a route's edge actions into queued changes, refusing what cannot be done.

``apply`` must raise at once, with a reason a person can act on, when a change cannot be
made at all: the zone is unknown or its token rejected, Cloudflare said to wait, the plan
has no read timeout, the DNS-only hostname is not dedicated, the token lacks the
permission the change needs (Cloudflare said so; retried after a while or with a new
token). Everything else is queued for the zone's one write at the end of the cycle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from timeout_budget.clients.cloudflare_errors import (
    CACHE_RULES_EDIT,
    CACHE_RULES_READ,
    DNS_EDIT,
    DNS_READ,
)
from timeout_budget.decide import rules
from timeout_budget.edge import routes
from timeout_budget.edge.errors import EdgeRefused, ZoneNotReady
from timeout_budget.edge.routes import EdgeRoute
from timeout_budget.edge.zone import Problem, ZoneState
from timeout_budget.edge.zone_sync import NOT_EDITABLE
from timeout_budget.model.actions import (
    MIN_ROUTE_READ_TIMEOUT_SECONDS,
    Action,
    EdgeTimeout,
    Reroute,
    RerouteVia,
)
from timeout_budget.model.spec import MAX_EDGE_TIMEOUT_SECONDS, RouteKey
from timeout_budget.model.timestamps import rfc3339


@dataclass(frozen=True)
class RuleChange:
    ref: str
    rule: Mapping[str, Any] | None
    """``None``: remove the route's rule."""


@dataclass(frozen=True)
class DnsChange:
    hostname: str
    on: bool


def ready(
    zone: ZoneState | None, route: EdgeRoute, problem: Problem | None, now: float
) -> ZoneState:
    """The route's zone, if changes can be sent through it now."""
    label = f"CloudflareZone {route.zone[0]}/{route.zone[1]}"
    if zone is None or zone.timeout is None:
        known = problem or (zone.problem if zone is not None else None)
        why = known.message if known else "not created, or not read from Cloudflare yet"
        raise ZoneNotReady(f"{label}: {why}")
    held = zone.problem
    if held is not None and held.retry_at is not None and now < held.retry_at:
        until = rfc3339(held.retry_at, whole_seconds=True)
        raise ZoneNotReady(f"{label}: holding back until {until}: {held.message}")
    return zone


CACHE_RULES_PERMISSIONS = (CACHE_RULES_READ, CACHE_RULES_EDIT)
DNS_PERMISSIONS = (DNS_READ, DNS_EDIT)


def change(
    zone: ZoneState,
    route: EdgeRoute,
    action: Action,
    others: Mapping[RouteKey, EdgeRoute],
    now: float | None = None,
) -> RuleChange | DnsChange:
    """The queued change for ``action``; ``now`` (when given) holds back a feature whose
    permission Cloudflare refused a moment ago."""
    if now is not None:
        _check_permissions(zone, action, now)
    if isinstance(action, EdgeTimeout):
        ref = rules.rule_ref(route.namespace, route.name)
        if action.seconds is None:
            return RuleChange(ref, None)
        _check_timeout(zone, action.seconds)
        try:
            rule = rules.desired_rule(
                route.namespace, route.name, action.host, action.path_prefix, action.seconds
            )
        except ValueError as exc:  # a prefix no request path can hold, a control character
            raise EdgeRefused(f"no Cache Rule can cover this route: {exc}") from None
        return RuleChange(ref, rule)
    if isinstance(action, Reroute) and action.target.via is RerouteVia.DNS_ONLY:
        hostname = action.target.name
        if action.apply:
            sharing = routes.dedicated_conflicts(others, route, hostname)
            if sharing:
                raise EdgeRefused(
                    f"{hostname} also serves TimeoutBudget {', '.join(sharing)}, which does "
                    "not allow DNS-only there: a DNS-only hostname must be dedicated"
                )
        return DnsChange(hostname, action.apply)
    raise EdgeRefused(f"{action.describe()} is not a Cloudflare change")


def _check_permissions(zone: ZoneState, action: Action, now: float) -> None:
    needed = CACHE_RULES_PERMISSIONS if isinstance(action, EdgeTimeout) else DNS_PERMISSIONS
    held = zone.denial(needed, now)
    if held is not None and held.retry_at is not None:
        until = rfc3339(held.retry_at, whole_seconds=True)
        raise EdgeRefused(f"{held.message}; tried again at {until} or with a new token")


def _check_timeout(zone: ZoneState, seconds: int) -> None:
    if zone.timeout is None or not zone.timeout.editable:
        raise EdgeRefused(f"{NOT_EDITABLE}: no Cache Rule read timeout either")
    if not MIN_ROUTE_READ_TIMEOUT_SECONDS <= seconds <= MAX_EDGE_TIMEOUT_SECONDS:
        raise EdgeRefused(
            f"a Cache Rule read timeout must be {MIN_ROUTE_READ_TIMEOUT_SECONDS}.."
            f"{MAX_EDGE_TIMEOUT_SECONDS}s, not {seconds}s"
        )
