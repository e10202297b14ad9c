"""What the policy ladder must remember from one evaluation to the next, and nothing else.

Hysteresis, cooldowns, stabilization windows and "N evaluations in a row" all need the past,
yet the decision must stay a pure function. So the past is an explicit value: ``Memory``,
stored in the TimeoutBudget's ``status.memory`` between evaluations and handed back in.
Because it lives in status it survives operator restarts and leader changes.

What is *not* here: the original values the operator must restore (the Service's selector,
the HPA's ``minReplicas``, the Deployment's replicas before the first scale-up). Those live
in annotations on the objects themselves, so an undo or a finalizer restores them exactly
even if status is lost. Only which targets are rerouted is remembered here, so that a target
removed from the spec is still undone.

Serialisation is camelCase with RFC 3339 times, readable with ``kubectl get -o yaml``; the
parser ignores what it does not understand (a hand-edited status must not crash the loop).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from timeout_budget.model.actions import RerouteTarget, RerouteVia
from timeout_budget.model.timestamps import parse_rfc3339, rfc3339


@dataclass(frozen=True, slots=True)
class Memory:
    at_risk: bool = False
    """Hysteresis latch: set when P95 reaches the at-risk line, cleared only below the
    recover line. Between the lines the route keeps the side it came from."""
    at_risk_streak: int = 0
    """Consecutive evaluations at risk at max replicas, not yet rerouted."""
    recovery_started_at: float | None = None
    """When P95 went below the recover line and has stayed there since, with data all along."""
    last_scale_up_at: float | None = None
    last_scale_down_at: float | None = None
    rerouted_to: tuple[RerouteTarget, ...] = ()
    """Targets the operator has rerouted; empty when not rerouted."""
    rerouted_at: float | None = None
    shift_step: int = 0
    """How many of ``reroute.httpRoute.steps`` are in force (0: none): the weighted reroute
    walks up one step at a time while at risk, and back down after recovery."""
    shift_step_at: float | None = None
    """When the weighted reroute last took a step (each step holds ``holdSeconds``)."""
    edge_raised: bool = False
    """The route's edge read timeout is raised as a rung of the ladder (not declared)."""
    released_at: float | None = None
    """When the reroute or the edge raise was last undone: scale-down waits a full
    stabilization window after it."""

    @property
    def rerouted(self) -> bool:
        return bool(self.rerouted_to)

    def adopt(self, observed: Iterable[RerouteTarget]) -> Memory:
        """Count reroutes found in force (by the operator's annotation) as the operator's own.

        If status was lost, a reroute still in force is then undone only after a recovery,
        never at once.
        """
        merged = tuple(sorted(set(self.rerouted_to) | set(observed)))
        return self if merged == self.rerouted_to else replace(self, rerouted_to=merged)

    def to_status(self) -> dict[str, Any]:
        raw: dict[str, Any] = {
            "atRisk": self.at_risk,
            "atRiskStreak": self.at_risk_streak,
            "reroutedTo": [{"via": t.via.value, "name": t.name} for t in self.rerouted_to],
            "edgeRaised": self.edge_raised,
        }
        if self.shift_step:
            raw["shiftStep"] = self.shift_step
        for key, moment in self._times().items():
            if moment is not None:
                raw[key] = rfc3339(moment)
        return raw

    @classmethod
    def from_status(cls, raw: Mapping[str, Any] | None) -> Memory:
        if not isinstance(raw, Mapping):
            return cls()
        return cls(
            at_risk=raw.get("atRisk") is True,
            at_risk_streak=_count(raw.get("atRiskStreak")),
            recovery_started_at=parse_rfc3339(raw.get("recoveryStartedAt")),
            last_scale_up_at=parse_rfc3339(raw.get("lastScaleUpAt")),
            last_scale_down_at=parse_rfc3339(raw.get("lastScaleDownAt")),
            rerouted_to=_targets(raw.get("reroutedTo")),
            rerouted_at=parse_rfc3339(raw.get("reroutedAt")),
            shift_step=_count(raw.get("shiftStep")),
            shift_step_at=parse_rfc3339(raw.get("shiftStepAt")),
            edge_raised=raw.get("edgeRaised") is True,
            released_at=parse_rfc3339(raw.get("releasedAt")),
        )

    def _times(self) -> dict[str, float | None]:
        return {
            "recoveryStartedAt": self.recovery_started_at,
            "lastScaleUpAt": self.last_scale_up_at,
            "lastScaleDownAt": self.last_scale_down_at,
            "reroutedAt": self.rerouted_at,
            "shiftStepAt": self.shift_step_at,
            "releasedAt": self.released_at,
        }


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _targets(value: object) -> tuple[RerouteTarget, ...]:
    if not isinstance(value, list):
        return ()
    targets: set[RerouteTarget] = set()
    for item in value:
        if not isinstance(item, Mapping):
            continue
        via, name = item.get("via"), item.get("name")
        if via in {v.value for v in RerouteVia} and isinstance(name, str) and name:
            targets.add(RerouteTarget(RerouteVia(via), name))
    return tuple(sorted(targets))
