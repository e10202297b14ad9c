"""What a zone's cached state says about one route: its edge observation, its DNS-only
reroute, its ``EdgeSynced`` condition.

The engine asks these for every route every cycle, so they never call Cloudflare: they
read the zone's cache. A rule the operator made but someone edited counts as absent (see
``decide.rules.in_force``), so the next cycle writes it again. A rule in place but taken
away by a later user rule (a bypass, a read timeout of its own) is reported as not
covered (``EdgeSynced`` False, ``OverriddenByRule``, naming the rule), never as in force.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from timeout_budget.decide import coverage, dns_only, rules
from timeout_budget.decide.zone_raise import Need
from timeout_budget.edge.zone import ZoneState
from timeout_budget.model.actions import RerouteTarget, RerouteVia
from timeout_budget.model.conditions import ConditionInput, ConditionType
from timeout_budget.model.conditions import ConditionStatus as S
from timeout_budget.model.spec import MAX_EDGE_TIMEOUT_SECONDS, RouteKey, TimeoutBudgetSpec
from timeout_budget.model.world import EdgeObservation

ZoneRef = tuple[str, str]
"""``(namespace, name)`` of a CloudflareZone."""


@dataclass(frozen=True)
class EdgeRoute:
    """A route with edge sync, as the engine last showed it."""

    namespace: str
    name: str
    key: RouteKey
    zone: ZoneRef
    spec: TimeoutBudgetSpec

    @property
    def dns_only_hostname(self) -> str | None:
        return self.spec.reroute.dns_only_hostname if self.spec.reroute else None


def zone_of(namespace: str, spec: TimeoutBudgetSpec) -> ZoneRef | None:
    """The CloudflareZone a route syncs through (same namespace), if edge sync is on."""
    if spec.edge is None or not spec.edge.sync:
        return None
    return (namespace, spec.edge.zone_ref.name)


def name_of(key: RouteKey) -> str:
    return key.split("/", 1)[1]


def observation(zone: ZoneState, route: EdgeRoute) -> EdgeObservation | None:
    if zone.timeout is None:
        return None
    found = _rule(zone, route)
    editable = zone.timeout.editable
    base = zone.base_seconds
    assert base is not None
    opt = zone.spec.raise_proxy_read_timeout
    return EdgeObservation(
        zone_timeout_seconds=base,
        editable=editable,
        max_timeout_seconds=MAX_EDGE_TIMEOUT_SECONDS if editable else zone.timeout.seconds,
        route_timeout_seconds=found.seconds if found is not None else None,
        route_rule_overridden=found is not None and bool(found.overridden_by),
        zone_raised_seconds=zone.timeout.seconds if zone.timeout.seconds != base else None,
        zone_raise_ceiling_seconds=(
            opt.ceiling_seconds if opt is not None and opt.enabled and editable else None
        ),
        tunnel=_tunnel(zone, route.spec.route.host) if route.spec.chain is not None else None,
    )


def _tunnel(zone: ZoneState, host: str) -> str | None:
    """The Cloudflare Tunnel the host's records (or the CNAMEs they lead to in the zone)
    point at; ``""``: none; ``None``: not read yet."""
    records = zone.dns.get(host)
    if records is None:
        return None
    for record in (*records, *zone.chains.get(host, ())):
        target = dns_only.cname_target([record])
        if target is not None and dns_only.cloudflare_only(record) is not None:
            return target
    return ""


def need(zone: ZoneState, zone_routes: Iterable[EdgeRoute]) -> Need | None:
    """What the zone's routes need of its ``proxy_read_timeout``: the longest read timeout
    any of them needs (``coverage.needed_seconds``) for methods a Cache Rule cannot cover."""
    needs: dict[str, int] = {}
    for route in zone_routes:
        if not any(m not in rules.CACHEABLE_METHODS for m in route.spec.route.methods):
            continue
        seen = observation(zone, route)
        seconds = coverage.needed_seconds(route.spec, seen) if seen is not None else None
        if seconds is not None:
            needs[route.key] = seconds
    if not needs:
        return None
    top = max(needs.values())
    return Need(top, tuple(sorted(k for k, v in needs.items() if v == top)))


def _rule(zone: ZoneState, route: EdgeRoute) -> rules.InForce | None:
    host, prefix = route.spec.route.host, route.spec.route.path_prefix
    return zone.rule_in_force(route.namespace, route.name, host, prefix)


def rerouted(zone: ZoneState, route: EdgeRoute) -> frozenset[RerouteTarget]:
    hostname = route.dns_only_hostname
    records = zone.dns.get(hostname) if hostname else None
    if hostname is None or records is None:
        return frozenset()
    # A proxied name down the hostname's CNAME chain keeps it proxied (Cloudflare's rule).
    if not dns_only.in_force(records, route.key, zone.chains.get(hostname, ())):
        return frozenset()
    return frozenset({RerouteTarget(RerouteVia.DNS_ONLY, hostname)})


def condition(
    zone: ZoneState | None, route: EdgeRoute, failure: str | None, zone_problem: str | None
) -> ConditionInput:
    t = ConditionType.EDGE_SYNCED
    label = f"CloudflareZone {route.zone[0]}/{route.zone[1]}"
    if zone is None or zone.timeout is None:
        known = zone.problem.message if zone is not None and zone.problem else None
        why = zone_problem or known or "not created, or not read from Cloudflare yet"
        return ConditionInput(t, S.FALSE, "ZoneNotReady", f"{label}: {why}")
    if failure is not None:
        return ConditionInput(t, S.FALSE, "SyncFailed", f"{failure} (retried next cycle)")
    if zone.token_rejected() and zone.problem is not None:
        return ConditionInput(t, S.FALSE, "AuthFailed", f"{label}: {zone.problem.message}")
    found = _rule(zone, route)
    if found is not None and found.overridden_by:
        ref = rules.rule_ref(route.namespace, route.name)
        why = "; ".join(str(o) for o in found.overridden_by)
        return ConditionInput(
            t,
            S.FALSE,
            "OverriddenByRule",
            f"not covered: Cache Rule {ref} asks for a read timeout of {found.seconds}s, but "
            f"{why} (the last matching rule wins): the zone's {zone.timeout.seconds}s "
            f"applies{_dns_note(zone, route)}",
        )
    return ConditionInput(t, S.TRUE, "Synced", _in_force(zone, route, found))


def _in_force(zone: ZoneState, route: EdgeRoute, found: rules.InForce | None) -> str:
    assert zone.timeout is not None
    ref = rules.rule_ref(route.namespace, route.name)
    zone_seconds = zone.timeout.seconds
    if found is not None:
        methods = " and ".join(rules.CACHEABLE_METHODS)
        raised = " (raised by the operator)" if zone_seconds != zone.base_seconds else ""
        text = (
            f"Cache Rule {ref} sets the read timeout to {found.seconds}s for {methods} "
            f"requests only (Cloudflare caches no other method: POST, PUT, PATCH and DELETE "
            f"keep the zone's {zone_seconds}s{raised}). Default cache TTLs are off: a response is "
            "stored only when its Cache-Control allows it, and Cloudflare does not document "
            "whether the read timeout holds for a response it then does not store"
        )
    else:
        text = f"no Cache Rule of its own: the zone's {zone_seconds}s applies"
    return text + _dns_note(zone, route)


def _dns_note(zone: ZoneState, route: EdgeRoute) -> str:
    hostname = route.dns_only_hostname
    if hostname is not None and hostname in zone.dns:
        state = "DNS-only" if rerouted(zone, route) else "proxied"
        return f"; {hostname} is {state}"
    return ""


def dedicated_conflicts(
    routes: Mapping[RouteKey, EdgeRoute], route: EdgeRoute, hostname: str
) -> list[RouteKey]:
    """Other routes of the zone served on ``hostname`` that do not allow DNS-only there."""
    return sorted(
        other.key
        for other in routes.values()
        if other.key != route.key
        and other.zone == route.zone
        and other.spec.route.host == hostname
        and other.dns_only_hostname != hostname
    )
