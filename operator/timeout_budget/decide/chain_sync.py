"""Keeping the inner hops in line (``spec.chain.sync``): what the route's Ingress needs.

With sync on, the ingress-nginx Ingress the route names must let a request run at least the
budget: its ``proxy-read-timeout`` is raised to ``budget + 1`` when it is shorter, and held
there. The value it replaced stays on the Ingress (``model.ownership``), so it is given
back exactly when sync is removed, when the original would now be enough (the budget came
down), or when the route is deleted (the finalizer). Nothing else is written: an Ingress
the route does not name, one held for another route, or one whose value cannot be read is
refused with the reason. Pure: the observed hops in, the changes and refusals out.
"""

from __future__ import annotations

from timeout_budget.decide.context import secs
from timeout_budget.model.actions import ActionKind, HopTimeout, Refusal
from timeout_budget.model.chain import Hop
from timeout_budget.model.spec import TimeoutBudgetSpec

INGRESS_HOP = "ingress-nginx"


def plan(
    spec: TimeoutBudgetSpec, hops: tuple[Hop, ...], budget: int
) -> tuple[tuple[HopTimeout, ...], tuple[Refusal, ...]]:
    held = [h for h in hops if h.held and h.writable]
    sync = spec.chain.sync if spec.chain is not None else None
    if sync is None:
        return tuple(_give_back(h, "chain.sync is off") for h in held), ()
    name = sync.ingress_name
    wanted = budget + 1
    hop = next((h for h in hops if h.hop in (INGRESS_HOP, "ingress")), None)
    given_back = tuple(
        _give_back(h, f"the route now names Ingress {name}") for h in held if h.writable != name
    )
    want = f"set the proxy-read-timeout of Ingress {name} to {secs(wanted)}"
    if hop is None or hop.writable != name:
        serving = (
            f"{hop.object} serves the route"
            if hop is not None
            else ("no Ingress serves the route's host and path")
        )
        return given_back, (
            Refusal(
                ActionKind.HOP_TIMEOUT, want, f"{serving}, not Ingress {name}: nothing written"
            ),
        )
    if hop.hop != INGRESS_HOP:
        return given_back, (
            Refusal(ActionKind.HOP_TIMEOUT, want, f"{hop.object} is not served by ingress-nginx"),
        )
    if hop.held:
        if hop.original_seconds is not None and hop.original_seconds >= wanted:
            return (
                *given_back,
                _give_back(
                    hop, f"its own {secs(hop.original_seconds)} now allow the {secs(budget)} budget"
                ),
            ), ()
        return (*given_back, HopTimeout(name, wanted, _reason(hop, budget))), ()
    if hop.timeout_seconds is None:
        return given_back, (
            Refusal(
                ActionKind.HOP_TIMEOUT,
                want,
                f"its value cannot be read ({hop.source}): not replaced",
            ),
        )
    if hop.timeout_seconds >= wanted:
        return given_back, ()
    return (*given_back, HopTimeout(name, wanted, _reason(hop, budget))), ()


def _reason(hop: Hop, budget: int) -> str:
    shown = hop.original_seconds if hop.held else hop.timeout_seconds
    was = secs(shown) if shown is not None else "nginx's default"
    return f"ingress-nginx cuts requests at {was}, inside the {secs(budget)} budget (chain.sync)"


def _give_back(hop: Hop, why: str) -> HopTimeout:
    assert hop.writable is not None
    return HopTimeout(hop.writable, None, f"{why}: giving back the value the operator replaced")
