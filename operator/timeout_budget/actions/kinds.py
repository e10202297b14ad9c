"""The action plug-ins: how each kind of change is made, and undone when its route goes.

The ladder asks for changes as values (``model.actions``), which declare what the other
steps need (kind, Event reason, metric label, whether the zone's batched Cloudflare writer
makes them: ``at_edge``). This registry says how: for each action type its executor (made
against the cluster, with one conflict retry by the caller) and its restore (the
finalizer's undo). Changes made at the edge are sent by ``EdgeSync`` in the zone's one
batched write and undone by ``EdgeSync.finalize_route``, so they have no executor here.

Adding an action: its value class in ``model.actions`` (with the declarations), a module
here with ``execute`` and ``restore``, and one line in ``KINDS``;
``tests/unit/test_action_kinds.py`` fails when a kind is missing anywhere it must be.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from timeout_budget.actions import hop_timeout, reroute, rule_timeout, scale, weights
from timeout_budget.actions.target import ClusterTarget, RestoreTarget
from timeout_budget.model.actions import (
    Action,
    EdgeTimeout,
    HopTimeout,
    Reroute,
    RuleTimeout,
    ScaleTo,
)

Execute = Callable[[ClusterTarget, Any], Awaitable[None]]
Restore = Callable[[RestoreTarget], Awaitable[list[str]]]


@dataclass(frozen=True, slots=True)
class Kind:
    action: type[Action]
    execute: Execute | None
    """Makes the change in the cluster; ``None``: only ever made at the edge."""
    restore: Restore | None
    """Undoes in the cluster what the route changed, when it is deleted."""


KINDS: tuple[Kind, ...] = (
    Kind(ScaleTo, scale.execute, scale.restore),
    Kind(Reroute, reroute.execute, reroute.restore),  # DNS-only at_edge; HTTPRoute: weights
    Kind(EdgeTimeout, None, None),
    Kind(HopTimeout, hop_timeout.execute, hop_timeout.restore),
    Kind(RuleTimeout, rule_timeout.execute, rule_timeout.restore),
)
_BY_TYPE = {kind.action: kind for kind in KINDS}

REFUSED = (
    reroute.RerouteRefused,
    weights.ShiftRefused,
    hop_timeout.HopHeld,
    rule_timeout.RuleHeld,
    LookupError,
)
"""What an executor raises when the change is not the operator's to make."""


def kind_of(action: Action) -> Kind:
    return _BY_TYPE[type(action)]


async def execute(target: ClusterTarget, action: Action) -> None:
    """Make one cluster change (an action that is not ``at_edge``)."""
    run = kind_of(action).execute
    if run is None or action.at_edge:
        raise ValueError(f"{action.describe()} is made at the edge, not in the cluster")
    await run(target, action)


async def restore_all(target: RestoreTarget) -> list[str]:
    """Every kind's restore, in order; what was done, for the log."""
    done: list[str] = []
    for kind in KINDS:
        if kind.restore is not None:
            done.extend(await kind.restore(target))
    return done
