"""A CloudflareZone's status, rebuilt from what the operator knows about the zone.

``kubectl get cfz`` should answer what a platform engineer asks first: which timeout is in
force at Cloudflare, may it be changed, which rules does the operator hold there, when was
it last read, how much of the request budget is left, and if something is wrong, what:
a permission the token lacks is named, with the feature it stops (the rest still works).
Everything comes from the zone's cached state; never a token, never a fingerprint of one.
Conditions keep their transition times through ``model.conditions.merge``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from timeout_budget.clients import cloudflare_errors as cf
from timeout_budget.clients.request_budget import RequestBudget
from timeout_budget.decide import rules
from timeout_budget.decide.zone_raise import ZoneRaise
from timeout_budget.edge.zone import Problem, ZoneState
from timeout_budget.edge.zone_sync import NOT_EDITABLE
from timeout_budget.model import conditions
from timeout_budget.model.conditions import ConditionInput, ConditionType
from timeout_budget.model.conditions import ConditionStatus as S
from timeout_budget.model.spec import CloudflareZoneSpec
from timeout_budget.model.timestamps import rfc3339

TIMEOUT_ENFORCED = "ProxyReadTimeoutEnforced"
STOPS = {
    cf.ZONE_READ: "DNS record comments beyond the Free plan's 100 characters",
    cf.ZONE_SETTINGS_READ: "everything: the zone's proxy_read_timeout cannot be read",
    cf.ZONE_SETTINGS_EDIT: (
        "enforcing spec.proxyReadTimeoutSeconds and spec.raiseProxyReadTimeout"
    ),
    cf.CACHE_RULES_READ: "Cache Rule read timeouts",
    cf.CACHE_RULES_EDIT: "Cache Rule read timeouts",
    cf.DNS_READ: "DNS-only reroutes",
    cf.DNS_EDIT: "DNS-only reroutes",
}
"""What each permission the token lacks stops."""


def build(
    spec: CloudflareZoneSpec,
    zone: ZoneState | None,
    budget: RequestBudget | None,
    *,
    problem: Problem | None,
    now: float,
    previous: Mapping[str, Any] | None,
    generation: int | None,
    edge_view: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``edge_view``: ``status.edgeView`` (``edge.views``); ``None`` keeps the last one."""
    status: dict[str, Any] = {"observedGeneration": generation} if generation is not None else {}
    inputs = [_synced(zone, problem)]
    if zone is not None and zone.timeout is not None:
        status["effectiveProxyReadTimeoutSeconds"] = zone.timeout.seconds
        status["editable"] = zone.timeout.editable
        status["plan"] = "enterprise" if zone.timeout.editable else "not-editable"
        inputs.append(_enforced(spec, zone))
    if zone is not None:
        status["proxyReadTimeoutRaise"] = _raise_to_status(zone)
    if zone is not None and zone.rules_read:
        status["managedRuleRefs"] = rules.owned_refs(zone.rules)
    if zone is not None and zone.synced_at is not None:
        status["lastSyncTime"] = rfc3339(zone.synced_at, whole_seconds=True)
    if budget is not None:
        status["requestsRemaining"] = budget.remaining()
        until = budget.rate_limited_until
        status["rateLimitedUntil"] = (
            rfc3339(until, whole_seconds=True) if until is not None and until > now else None
        )
    if edge_view is not None:
        status["edgeView"] = dict(edge_view)
    status["message"] = _message(zone, problem)
    status["conditions"] = conditions.merge(
        (previous or {}).get("conditions"), inputs, now=now, generation=generation
    )
    return status


def _raise_to_status(zone: ZoneState) -> dict[str, Any] | None:
    """The raise in force, or ``None`` (the patch then removes the field)."""
    if zone.raised is None:
        return None
    return {
        "fromSeconds": zone.raised.from_seconds,
        "toSeconds": zone.raised.to_seconds,
        "forRoutes": list(zone.raised_for),
    }


def raise_from(status: Mapping[str, Any] | None) -> tuple[ZoneRaise | None, tuple[str, ...]]:
    """The raise a previous run of the operator recorded in the status, so a restarted
    operator still gives the zone's value back (a malformed record counts as none)."""
    found = (status or {}).get("proxyReadTimeoutRaise")
    if not isinstance(found, Mapping):
        return None, ()
    start, end = found.get("fromSeconds"), found.get("toSeconds")
    if not isinstance(start, int) or not isinstance(end, int) or end <= start:
        return None, ()
    names = found.get("forRoutes")
    routes = tuple(str(n) for n in names) if isinstance(names, list) else ()
    return ZoneRaise(start, end), routes


def _synced(zone: ZoneState | None, problem: Problem | None) -> ConditionInput:
    t = ConditionType.EDGE_SYNCED
    if problem is not None:
        return ConditionInput(t, S.FALSE, problem.reason, problem.message)
    if zone is None or zone.synced_at is None:
        return ConditionInput(t, S.UNKNOWN, "Pending", "not read from Cloudflare yet")
    if zone.denials():
        return ConditionInput(t, S.FALSE, "PermissionMissing", _denied(zone))
    return ConditionInput(t, S.TRUE, "Synced", _summary(zone))


def _denied(zone: ZoneState) -> str:
    lacks = "; ".join(f"{p} (stops {STOPS.get(p, 'its feature')})" for p in zone.denials())
    return f"the API token lacks {lacks}. The rest is synced: {_summary(zone)}"


def _enforced(spec: CloudflareZoneSpec, zone: ZoneState) -> ConditionInput:
    assert zone.timeout is not None
    seconds, wanted = zone.timeout.seconds, spec.proxy_read_timeout_seconds
    note = f"; {zone.raise_note}" if zone.raise_note else ""
    if zone.enforce_note is not None:
        return ConditionInput(
            TIMEOUT_ENFORCED, S.FALSE, zone.enforce_note.reason, zone.enforce_note.message
        )
    if zone.raised is not None and seconds == zone.raised.to_seconds:
        routes = ", ".join(zone.raised_for) or "the zone's routes"
        return ConditionInput(
            TIMEOUT_ENFORCED,
            S.TRUE,
            "Raised",
            f"proxy_read_timeout raised from {zone.raised.from_seconds}s to {seconds}s for "
            f"{routes} (spec.raiseProxyReadTimeout: "
            "methods a Cache Rule cannot cover need it); given back once no route needs it"
            f"{note}",
        )
    if wanted is None:
        extra = f"; {NOT_EDITABLE}" if not zone.timeout.editable else ""
        return ConditionInput(
            TIMEOUT_ENFORCED,
            S.TRUE,
            "NotConfigured",
            f"spec.proxyReadTimeoutSeconds is unset: the zone's {seconds}s is left as it is"
            f"{extra}{note}",
        )
    return ConditionInput(
        TIMEOUT_ENFORCED, S.TRUE, "Enforced", f"proxy_read_timeout is {seconds}s as asked{note}"
    )


def _summary(zone: ZoneState) -> str:
    parts = []
    if zone.timeout is not None:
        editable = "" if zone.timeout.editable else f" ({NOT_EDITABLE})"
        parts.append(f"proxy_read_timeout {zone.timeout.seconds}s{editable}")
    if zone.rules_read:
        owned = len(rules.owned_refs(zone.rules))
        parts.append(f"{owned} of {len(zone.rules)} Cache Rule(s) managed by the operator")
    return "; ".join(parts) or "read from Cloudflare"


def _message(zone: ZoneState | None, problem: Problem | None) -> str:
    if problem is not None:
        return problem.message
    if zone is None or zone.synced_at is None:
        return "not read from Cloudflare yet"
    if zone.denials():
        return _denied(zone)
    if zone.enforce_note is not None:
        return f"{_summary(zone)}; {zone.enforce_note.message}"
    return _summary(zone)
