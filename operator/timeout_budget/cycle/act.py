"""Step 4 of the cycle, act: make the changes the diff left, and nothing else.

Cluster changes go through each action kind's executor (``actions.kinds``), with one
conflict retry; changes at the edge are queued for the zone's one batched write of the
cycle (``EdgeSync.apply``, sent by ``flush``). A failure is the route's own: it is
returned in words, reported in its status and as a Warning Event, and tried again next
cycle; nothing else is lost. Before any change, the decision's memory (cooldowns, what is
rerouted) is written to status (``remember``), so a crash between the change and the
cycle's report cannot make a restarted operator act twice.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from timeout_budget.actions import kinds
from timeout_budget.actions.target import ClusterTarget
from timeout_budget.clients.kube import Conflict, Kube, KubeError
from timeout_budget.cycle.ports import EdgeSync
from timeout_budget.cycle.snapshot import RouteSnapshot
from timeout_budget.decide import status
from timeout_budget.model.actions import Action
from timeout_budget.model.decision import Decision
from timeout_budget.model.spec import TimeoutBudgetSpec
from timeout_budget.observe import cluster
from timeout_budget.report.metrics import OperatorMetrics

log = logging.getLogger("timeout_budget.engine")

CONFLICT_RETRIES = 3


async def with_conflict_retry(call: Callable[[], Awaitable[Any]]) -> None:
    """Run a write; on a 409 Conflict (someone wrote in between), run it again, up to
    ``CONFLICT_RETRIES`` times in all. Each write sets values, never adds to them, so
    running it again is safe."""
    for attempt in range(CONFLICT_RETRIES):
        try:
            await call()
            return
        except Conflict:
            if attempt == CONFLICT_RETRIES - 1:
                raise


@dataclass
class Actor:
    kube: Kube
    edge: EdgeSync | None
    metrics: OperatorMetrics

    async def remember(self, snap: RouteSnapshot, decision: Decision) -> None:
        """Write the decision's memory to status *before* acting. If this write fails,
        nothing is done this cycle."""
        previous = snap.status_dict()
        body = status.patch(previous, {**previous, "memory": decision.memory.to_status()})
        if body:
            await with_conflict_retry(
                lambda: self.kube.patch_budget_status(snap.namespace, snap.name, body)
            )

    async def apply(
        self,
        snap: RouteSnapshot,
        spec: TimeoutBudgetSpec,
        changes: Sequence[Action],
        origin: cluster.OriginState,
        objects: cluster.NamespaceObjects,
    ) -> tuple[list[Action], list[str]]:
        """The changes made, and the failures in words."""
        acted: list[Action] = []
        failures: list[str] = []
        target = ClusterTarget(
            self.kube, snap.namespace, snap.key, spec, origin.scale, objects.services
        )
        at_edge = [a for a in changes if a.at_edge]
        for action in (a for a in changes if not a.at_edge):
            try:
                await with_conflict_retry(functools.partial(kinds.execute, target, action))
                acted.append(action)
                log.info("route %s: %s (%s)", snap.key, action.describe(), action.reason)
            except (KubeError, *kinds.REFUSED) as exc:
                failures.append(f"{action.describe()}: {exc}")
                log.warning("route %s: %s failed: %s", snap.key, action.describe(), exc)
        if at_edge:
            if self.edge is None:
                failures.extend(
                    f"{a.describe()}: Cloudflare sync is not configured" for a in at_edge
                )
            else:
                try:
                    await self.edge.apply(snap.namespace, snap.key, spec, at_edge)
                    acted.extend(at_edge)
                except Exception as exc:  # the edge says why; nothing else is lost
                    failures.extend(f"{a.describe()}: {exc}" for a in at_edge)
        self.metrics.actions_done([a for a in changes if a not in acted], "failed")
        return acted, failures
