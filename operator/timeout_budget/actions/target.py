"""What an action's executor and its restore get to work with: the route and the cluster
objects it was decided on (``ClusterTarget``), or, for the finalizer, only the route
(``RestoreTarget``: the objects are read afresh, since a deletion may come at any time)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from timeout_budget.clients.kube import Kube
from timeout_budget.model.spec import RouteKey, TimeoutBudgetSpec
from timeout_budget.model.world import ScaleObservation


@dataclass(frozen=True, slots=True)
class RestoreTarget:
    kube: Kube
    namespace: str
    key: RouteKey
    spec: TimeoutBudgetSpec


@dataclass(frozen=True, slots=True)
class ClusterTarget(RestoreTarget):
    scale: ScaleObservation
    """The origin's scale as this cycle observed it (what the action was decided on)."""
    services: Mapping[str, Mapping[str, Any]]
    """The namespace's Services by name, as this cycle read them."""
