"""Keeping the inner hops in line (``spec.chain.sync``): what the named objects need.

With sync on, the ingress-nginx Ingress (``ingressName``) and the HTTPRoute
(``httpRouteName``) the route names must let a request run at least the budget: the
Ingress's ``proxy-read-timeout``, or the timeouts of the HTTPRoute rule serving the route
(only where its GatewayClass honours them), are raised to ``budget + 1`` when shorter, and
held there. What they replaced stays on the object (``model.ownership``), so it is given
back exactly when sync is removed, when the original would now be enough (the budget came
down), or when the route is deleted (the finalizer). Nothing else is written: an object
that does not serve the route, one held for another route, or one whose value cannot be
read is refused with the reason. Pure: the observed hops in, the changes and refusals out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from timeout_budget.decide.context import secs
from timeout_budget.model.actions import ActionKind, HopTimeout, Refusal, RuleTimeout
from timeout_budget.model.chain import Hop
from timeout_budget.model.spec import TimeoutBudgetSpec

Change = HopTimeout | RuleTimeout


@dataclass(frozen=True, slots=True)
class Target:
    """One kind of object ``chain.sync`` may write."""

    hops: tuple[str, ...]
    """The hop names it appears as (``observe.chain``, ``observe.gateway``)."""
    what: str
    change: Callable[[Hop, int | None, str], Change]


INGRESS = Target(
    ("ingress-nginx", "ingress"),
    "Ingress",
    lambda hop, seconds, why: HopTimeout(hop.writable or "", seconds, why),
)
HTTPROUTE = Target(
    ("gateway",),
    "HTTPRoute",
    lambda hop, seconds, why: RuleTimeout(hop.writable or "", hop.part or "0", seconds, why),
)


def plan(
    spec: TimeoutBudgetSpec, hops: tuple[Hop, ...], budget: int
) -> tuple[tuple[Change, ...], tuple[Refusal, ...]]:
    sync = spec.chain.sync if spec.chain is not None else None
    named = {
        INGRESS: sync.ingress_name if sync is not None else None,
        HTTPROUTE: sync.http_route_name if sync is not None else None,
    }
    changes: list[Change] = []
    refusals: list[Refusal] = []
    for target, name in named.items():
        mine = [h for h in hops if h.hop in target.hops]
        for hop in mine:
            if hop.held and hop.writable and hop.writable != name:
                why = "chain.sync is off" if name is None else f"the route now names {name}"
                changes.append(target.change(hop, None, f"{why}: giving back what it replaced"))
        if name is not None:
            change, refused = _keep(target, name, next(iter(mine), None), budget)
            changes.extend(change)
            refusals.extend(refused)
    return tuple(changes), tuple(refusals)


def _keep(
    target: Target, name: str, hop: Hop | None, budget: int
) -> tuple[tuple[Change, ...], tuple[Refusal, ...]]:
    wanted = budget + 1
    want = f"set the read timeout of {target.what} {name} to {secs(wanted)}"

    def refuse(reason: str) -> tuple[tuple[Change, ...], tuple[Refusal, ...]]:
        return (), (Refusal(ActionKind.HOP_TIMEOUT, want, reason),)

    if hop is None:
        return refuse(f"no {target.what} serves the route's host and path: nothing written")
    if hop.writable != name:
        if hop.writable is None and _names(hop, name):
            return refuse(f"{hop.object}: the operator cannot set its timeout there")
        return refuse(f"{hop.object} serves the route, not {target.what} {name}: nothing written")
    if hop.held:
        if hop.original_seconds is not None and hop.original_seconds >= wanted:
            why = f"its own {secs(hop.original_seconds)} now allow the {secs(budget)} budget"
            return (target.change(hop, None, f"{why}: giving back what it replaced"),), ()
        return (target.change(hop, wanted, _reason(hop, budget)),), ()
    if hop.timeout_seconds is None:
        return refuse(f"its value cannot be read ({hop.source}): not replaced")
    if hop.timeout_seconds >= wanted:
        return (), ()
    return (target.change(hop, wanted, _reason(hop, budget)),), ()


def _names(hop: Hop, name: str) -> bool:
    """Whether the hop's object is the one named (``Ingress ns/NAME ...``)."""
    return f"/{name} " in f"{hop.object} " or hop.object.split(" (")[0].endswith(f"/{name}")


def _reason(hop: Hop, budget: int) -> str:
    shown = hop.original_seconds if hop.held else hop.timeout_seconds
    was = secs(shown) if shown is not None else "its default"
    return f"{hop.hop} cuts requests at {was}, inside the {secs(budget)} budget (chain.sync)"
