"""The weighted reroute as the HTTPRoute shows it (``reroute.httpRoute``).

The operator's record on the HTTPRoute (``model.httproute.Record``) says which route
shifted it, which rule, and what it wrote there. The shift is in force at the recorded
share while the rule still has exactly what the operator wrote; a rule someone else
changed since (or took away) is reported, so the apply step refuses to overwrite it.
Pure: the namespace's HTTPRoutes (read once per cycle, ``observe.gateway_reads``) in.
"""

from __future__ import annotations

from dataclasses import dataclass

from timeout_budget.model import ownership
from timeout_budget.model.actions import RerouteTarget, RerouteVia
from timeout_budget.model.httproute import Record, find_recorded, rules_of
from timeout_budget.model.spec import RouteKey, TimeoutBudgetSpec
from timeout_budget.observe.gateway import GatewayApi


@dataclass(frozen=True, slots=True)
class Shift:
    target: RerouteTarget | None = None
    """The HTTPRoute, when the operator holds a shift on it for this route."""
    percent: int | None = None
    """The share in force, as the operator wrote it."""
    changed: str | None = None
    """What someone else changed in the rule since."""


NONE = Shift()


def observed(spec: TimeoutBudgetSpec, api: GatewayApi, key: RouteKey) -> Shift:
    shift = spec.reroute.http_route if spec.reroute is not None else None
    if shift is None:
        return NONE
    found = next(
        (h for h in api.httproutes if h.get("metadata", {}).get("name") == shift.name), None
    )
    if found is None:
        return NONE
    notes = found.get("metadata", {}).get("annotations") or {}
    record = Record.from_json(notes.get(ownership.REROUTE_WEIGHTS))
    if record is None or record.owner != key:
        return NONE
    target = RerouteTarget(RerouteVia.HTTPROUTE, shift.name)
    rules = rules_of(found.get("spec", {}).get("rules"))
    index = find_recorded(rules, record.rule)
    if index is None:
        return Shift(target, changed=f"rule {record.rule} was taken out by someone else")
    changed = record.changed_by_others(rules[index])
    if changed is not None:
        return Shift(target, changed=f"rule {record.rule}: {changed} by someone else")
    return Shift(target, record.percent)
