"""The Gateway API hop in front of a route: the HTTPRoute rule that serves it.

An HTTPRoute (gateway.networking.k8s.io/v1) in the route's namespace serves the route when
its ``hostnames`` take the route's host (none listed: every host of its Gateway's
listeners; ``*.example.com``: any name below ``example.com``) and one of its rules matches
a path that covers the route's path prefix. Several rules or HTTPRoutes can: the Gateway
API's own precedence picks one (an ``Exact`` match over a prefix, then the longest path,
then the oldest HTTPRoute, then ``namespace/name`` in alphabetical order, then the first
rule), so the pick is the implementation's, not a guess.

The rule's ``timeouts`` (GEP-1742) count the **total** time of a request: ``request``
for the whole exchange, ``backendRequest`` for one try to a backend (the API's CEL rule
keeps ``backendRequest ≤ request``); ``0s`` turns a timeout off. An implementation honours
them only if its GatewayClass lists ``HTTPRouteRequestTimeout`` (and
``HTTPRouteBackendRequestTimeout``) in ``status.supportedFeatures``; Traefik and NGINX
Gateway Fabric accept and ignore them. Without honoured timeouts the implementation's own
default applies: known for Envoy Gateway (15 s), unknown for others, and shown as such.

What cannot be read (a Gateway in a namespace the operator does not serve, a GatewayClass
without status) gives a hop whose timeout is unknown, never guessed. Pure: objects in,
hops out; ``observe.gateway_reads`` fetches them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from timeout_budget.model import ownership
from timeout_budget.model.chain import Hop
from timeout_budget.model.httproute import duration_seconds
from timeout_budget.model.httproute import precedence as _precedence
from timeout_budget.model.httproute import rule_rank as _rule_rank
from timeout_budget.model.httproute import takes_host as _takes_host
from timeout_budget.model.spec import TimeoutBudgetSpec

GROUP = "gateway.networking.k8s.io"
REQUEST_TIMEOUT = "HTTPRouteRequestTimeout"
BACKEND_REQUEST_TIMEOUT = "HTTPRouteBackendRequestTimeout"
KNOWN_DEFAULTS: Mapping[str, tuple[float, str]] = {
    "gateway.envoyproxy.io/gatewayclass-controller": (15.0, "Envoy Gateway's route timeout"),
}
"""Per GatewayClass ``controllerName``: the timeout a rule without honoured ``timeouts``
gets, and its name. Only documented defaults; any other controller's is unknown."""


@dataclass(frozen=True, slots=True)
class GatewayApi:
    """What the cluster says of the Gateway API for one namespace's routes."""

    httproutes: tuple[Mapping[str, Any], ...] = ()
    gateways: Mapping[tuple[str, str], Mapping[str, Any] | None] = field(default_factory=dict)
    """By ``(namespace, name)``: each Gateway the HTTPRoutes name; ``None``: not readable."""
    classes: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)
    """By name: each GatewayClass those Gateways use; ``None``: not readable."""
    problem: str | None = None
    """Why the HTTPRoutes could not be read (the Gateway API hop is then unknown)."""


NOT_INSTALLED = GatewayApi()
"""A cluster without the Gateway API CRDs: no HTTPRoute serves any route."""


def httproute_hops(spec: TimeoutBudgetSpec, api: GatewayApi, key: str = "") -> tuple[Hop, ...]:
    """The HTTPRoute hop in front of the route (none when no HTTPRoute serves it); ``key``,
    the route's, tells whether the operator holds the rule's timeouts for it."""
    route = spec.route
    if api.problem is not None:
        return (Hop("gateway", f"HTTPRoutes ({api.problem})", None, "total", "unknown"),)
    candidates: list[tuple[tuple[Any, ...], int, Mapping[str, Any], int, Mapping[str, Any]]] = []
    for n, httproute in enumerate(api.httproutes):
        if not _takes_host(httproute, route.host):
            continue
        for index, rule in enumerate(_list(httproute.get("spec", {}).get("rules"))):
            rank = _rule_rank(rule, route.path_prefix, route.methods)
            if rank is not None:
                candidates.append((_precedence(rank, httproute, index), n, httproute, index, rule))
    if not candidates:
        return ()
    _, _, httproute, index, rule = min(candidates, key=lambda c: (c[0], c[1]))
    return (_hop(httproute, index, rule, api, key),)


def _hop(
    httproute: Mapping[str, Any],
    index: int,
    rule: Mapping[str, Any],
    api: GatewayApi,
    key: str,
) -> Hop:
    part = str(rule.get("name") or index)
    where = f"HTTPRoute {_name(httproute)} rule {part}"
    classes, unread = _classes(httproute, api)
    if unread:
        return Hop("gateway", f"{where} ({unread})", None, "total", "unknown")
    if len(classes) != 1:
        names = ", ".join(sorted(classes)) or "none"
        return Hop("gateway", f"{where} (its Gateways' classes: {names})", None, "total", "unknown")
    class_name, gateway_class = next(iter(classes.items()))
    where = f"{where} via GatewayClass {class_name}"
    features = _features(gateway_class)
    controller = str(gateway_class.get("spec", {}).get("controllerName", ""))
    hop = _judged_timeout(where, rule, features, controller)
    if features is None or REQUEST_TIMEOUT not in features:
        return hop  # timeouts written there would be ignored: never the operator's to set
    name = str(httproute.get("metadata", {}).get("name", ""))
    return replace(
        hop, writable=name, part=part, **_held(httproute, part, features, controller, key)
    )


def _judged_timeout(
    where: str, rule: Mapping[str, Any], features: frozenset[str] | None, controller: str
) -> Hop:
    set_timeout = _rule_timeout(rule, features)
    if isinstance(set_timeout, str):
        return Hop("gateway", f"{where} ({set_timeout})", None, "total", "unknown")
    if set_timeout is not None:
        seconds, source = set_timeout
        return Hop("gateway", where, seconds, "total", source, answers="504")
    ignored = "" if not _timeouts(rule) else "; the rule's timeouts are not honoured"
    if controller in KNOWN_DEFAULTS:
        seconds, what = KNOWN_DEFAULTS[controller]
        return Hop(
            "gateway", f"{where} ({what}{ignored})", seconds, "total", "default", answers="504"
        )
    return Hop(
        "gateway",
        f"{where} (the default of {controller or 'its controller'} is not known{ignored})",
        None,
        "total",
        "unknown",
    )


def _held(
    httproute: Mapping[str, Any],
    part: str,
    features: frozenset[str],
    controller: str,
    key: str,
) -> dict[str, Any]:
    """Whether the operator holds this rule's timeouts for route ``key``, and the timeout
    in force before (the rule's own, else the implementation's default)."""
    notes = httproute.get("metadata", {}).get("annotations") or {}
    if not key or notes.get(ownership.OWNER) != key:
        return {}
    try:
        original = json.loads(str(notes.get(ownership.ORIGINAL_RULE_TIMEOUTS)))
    except ValueError:
        return {}
    if not isinstance(original, Mapping) or str(original.get("rule")) != part:
        return {}
    before = _judged_timeout("", {"timeouts": original.get("timeouts") or {}}, features, controller)
    return {"held": True, "original_seconds": before.timeout_seconds}


def _rule_timeout(
    rule: Mapping[str, Any], features: frozenset[str] | None
) -> tuple[float, str] | str | None:
    """The rule's own timeout if the class honours it: seconds and source; a reason when
    it cannot be known; ``None`` when the rule sets none that is honoured."""
    timeouts = _timeouts(rule)
    if not timeouts:
        return None
    if features is None:
        return "its GatewayClass does not list its supported features"
    honoured = {"request": REQUEST_TIMEOUT, "backendRequest": BACKEND_REQUEST_TIMEOUT}
    found: list[tuple[float, str]] = []
    for key, feature in honoured.items():
        raw = timeouts.get(key)
        if raw is None or feature not in features:
            continue
        seconds = duration_seconds(str(raw))
        if seconds is None:
            return f"timeouts.{key} {str(raw)[:20]!r} is not a duration"
        if seconds > 0:
            found.append((seconds, f"timeouts.{key}"))
        else:
            found.append((math.inf, f"timeouts.{key} (0s: off)"))
    if not found:
        return None
    return min(found)


def _timeouts(rule: Mapping[str, Any]) -> Mapping[str, Any]:
    value = rule.get("timeouts")
    return value if isinstance(value, Mapping) else {}


def _features(gateway_class: Mapping[str, Any]) -> frozenset[str] | None:
    """``status.supportedFeatures`` (objects with a ``name`` since v1.2, strings before);
    ``None`` when the class's implementation has not written them."""
    listed = gateway_class.get("status", {}).get("supportedFeatures")
    if not isinstance(listed, list):
        return None
    return frozenset(
        str(item.get("name")) if isinstance(item, Mapping) else str(item) for item in listed
    )


def _classes(
    httproute: Mapping[str, Any], api: GatewayApi
) -> tuple[dict[str, Mapping[str, Any]], str | None]:
    """The GatewayClasses of the Gateways the HTTPRoute attaches to, or why not readable."""
    classes: dict[str, Mapping[str, Any]] = {}
    for ns, name in parent_gateways(httproute):
        gateway = api.gateways.get((ns, name))
        if gateway is None:
            return {}, f"Gateway {ns}/{name} not readable"
        class_name = str(gateway.get("spec", {}).get("gatewayClassName", ""))
        gateway_class = api.classes.get(class_name)
        if gateway_class is None:
            return {}, f"GatewayClass {class_name or '?'} not readable"
        classes[class_name] = gateway_class
    return classes, None


def parent_gateways(httproute: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The ``(namespace, name)`` of each Gateway in the HTTPRoute's ``parentRefs``."""
    own_ns = str(httproute.get("metadata", {}).get("namespace", ""))
    found: list[tuple[str, str]] = []
    for ref in _list(httproute.get("spec", {}).get("parentRefs")):
        if ref.get("group", GROUP) != GROUP or ref.get("kind", "Gateway") != "Gateway":
            continue
        pair = (str(ref.get("namespace") or own_ns), str(ref.get("name", "")))
        if pair not in found:
            found.append(pair)
    return found


def _list(value: object) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _name(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata", {})
    return f"{meta.get('namespace', '?')}/{meta.get('name', '?')}"
