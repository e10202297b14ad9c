"""Desired against observed: keep only the changes the world still needs.

The ladder states desired values (a reroute in force, a read timeout, a replica count) and
re-states them while they hold; most evaluations therefore ask for nothing new. This step
drops every action the observation already satisfies, so the apply step touches the API only
for real changes, an Event is emitted only for something that happened, and a dry run plans
only what would change. A purely computational function with no side effects.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import assert_never

from timeout_budget.model.actions import (
    Action,
    EdgeTimeout,
    HopTimeout,
    Reroute,
    RuleTimeout,
    ScaleTo,
)
from timeout_budget.model.world import RouteObservation, ScaleObservation


def changes(actions: Iterable[Action], observation: RouteObservation) -> tuple[Action, ...]:
    """The actions still needed. An edge change waits while the route's zone is not read
    yet (``edge_unread``): what is in force at Cloudflare is not known, so a DNS-only
    reroute in memory must neither be sent again nor count as undone."""
    return tuple(
        a
        for a in actions
        if not (a.at_edge and observation.edge_unread) and is_needed(a, observation)
    )


def is_needed(action: Action, observation: RouteObservation) -> bool:
    match action:
        case ScaleTo():
            return action.replicas != _scale_value(action, observation.scale)
        case Reroute():
            if action.apply and action.percent is not None:  # a step of a weighted reroute
                return (
                    observation.shift_percent != action.percent
                    or observation.shift_changed is not None
                )
            return action.apply != (action.target in observation.rerouted)
        case EdgeTimeout():
            edge = observation.edge
            return edge is None or action.seconds != edge.route_timeout_seconds
        case HopTimeout():
            return _hop_needed(action.seconds, observation, action.ingress, None)
        case RuleTimeout():
            return _hop_needed(action.seconds, observation, action.httproute, action.rule)
        case _:
            assert_never(action)


def _hop_needed(
    seconds: int | None, observation: RouteObservation, name: str, part: str | None
) -> bool:
    """A hop's timeout (``chain.sync``): set unless held at that value; given back if held."""
    hop = next(
        (h for h in observation.chain if h.writable == name and (part is None or h.part == part)),
        None,
    )
    if seconds is None:
        return hop is not None and hop.held
    return hop is None or not hop.held or hop.timeout_seconds != seconds


def _scale_value(action: ScaleTo, scale: ScaleObservation) -> int | None:
    """The value the action would change; ``None`` when its knob is gone (HPA deleted)."""
    if action.via_hpa:
        return scale.hpa.min_replicas if scale.hpa is not None else None
    return scale.spec_replicas
