"""What happens to one route in one cycle: the five steps, in order.

1. **observe**: the route's origin from the namespace's objects (Deployment, HPA,
   Service), its edge from the zone's cache, its reading from this cycle's answer, its
   memory from its status. A route whose namespace or Deployment cannot be read is held
   as it is, saying why.
2. **decide** (pure): ``decide.ladder.decide``; unless the route is quiet (its inputs
   unchanged since a decision the time cannot change yet: ``cycle.quiet``).
3. **diff** (pure): ``decide.diff.changes`` drops what the world already matches.
4. **act**: ``cycle.act``: the memory first, then the changes.
5. **report**: ``cycle.report``: status, Events, metrics. A route with edge changes is
   reported after the zone's batched write (``EdgeSync.flush``), with its outcome.

The engine (``cycle.engine``) runs this for every route, batch by batch as the latency
backend answers; ``Cycle`` is what the routes of one cycle share.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from timeout_budget.cycle.act import Actor
from timeout_budget.cycle.ports import EdgeSync
from timeout_budget.cycle.quiet import Quiet, QuietRoutes, Seen
from timeout_budget.cycle.report import CycleReport, Outcome, Reporter
from timeout_budget.cycle.snapshot import RouteSnapshot
from timeout_budget.decide import diff, ladder, quiet
from timeout_budget.decide.context import Context
from timeout_budget.model.actions import Action
from timeout_budget.model.decision import Decision
from timeout_budget.model.memory import Memory
from timeout_budget.model.observation import LatencyObservation
from timeout_budget.model.spec import RouteKey, TimeoutBudgetSpec
from timeout_budget.model.world import RouteObservation
from timeout_budget.observe import chain, cluster, gateway, shift


@dataclass
class Cycle:
    """What the steps of one cycle share."""

    now: float
    report: CycleReport
    steps: RouteSteps
    specs: dict[RouteKey, TimeoutBudgetSpec] = field(default_factory=dict)
    objects: Mapping[str, cluster.NamespaceObjects] = field(default_factory=dict)
    """Each namespace's objects, once read (a namespace missing here could not be)."""
    unread: dict[str, str] = field(default_factory=dict)
    """Why a namespace's objects could not be read."""
    deferred: list[Decided] = field(default_factory=list)
    """Routes to report after the zone's batched write."""


@dataclass(frozen=True, slots=True)
class Decided:
    """A route decided and acted on this cycle, ready to report."""

    outcome: Outcome
    memory: Memory
    """The memory it was decided with (``decide.quiet.reusable`` compares with it)."""
    inputs: tuple[Any, ...]
    """Its inputs but the time (``decide.quiet.inputs``)."""
    seen: Seen


@dataclass
class RouteSteps:
    actor: Actor
    reporter: Reporter
    quiet: QuietRoutes
    edge: EdgeSync | None

    async def run(
        self,
        snap: RouteSnapshot,
        spec: TimeoutBudgetSpec,
        latency: LatencyObservation | None,
        cycle: Cycle,
    ) -> Decided | None:
        """Steps 1 to 4; ``None`` when the route is held or quiet (reported already)."""
        # 1. observe
        objects = cycle.objects.get(snap.namespace)
        if objects is None:
            why = cycle.unread.get(snap.namespace)
            message = "could not read the origin's objects" + (f": {why}" if why else "")
            await self.reporter.held(snap, cycle.now, "ClusterUnavailable", message, cycle.report)
            return None
        origin = cluster.origin_state(snap.key, spec, objects)
        if not origin.deployment_found:
            message = "; ".join(origin.problems)
            await self.reporter.held(snap, cycle.now, "OriginNotFound", message, cycle.report)
            return None
        observation = self._observation(snap, spec, latency, origin, objects)
        previous = snap.status_dict()
        memory = Memory.from_status(previous.get("memory")).adopt(observation.rerouted)
        shown = shown_p95(previous)
        ctx = Context.of(spec, observation, cycle.now, shown)
        edge = tuple(self.edge.conditions(snap.namespace, snap.key, spec)) if self.edge else ()
        extra = (*origin.problems, *edge)
        inputs = (snap.uid, snap.generation, *quiet.inputs(ctx, memory, shown, extra))
        lines = ctx.lines
        sources = cluster.origin_sources(spec, objects)
        seen = Seen(sources, shown, lines, quiet.latency_inputs(observation.latency, shown, lines))
        known = self.quiet.get(snap.key)
        if known is not None and known.matches(inputs, snap.status, cycle.now):
            # Same inputs, a decision the time cannot change yet, the status it left: done.
            self.quiet.refresh(known, snap, seen)
            self.reporter.unchanged(snap, known.state, latency, cycle.report)
            return None
        # 2. decide
        decision = ladder.decide(spec, observation, memory, cycle.now, shown=shown)
        # 3. diff
        changes = diff.changes(decision.actions, observation)
        # 4. act
        acted: list[Action] = list(changes) if decision.dry_run else []
        failures: list[str] = []
        if not decision.dry_run:
            if changes:
                await self.actor.remember(snap, decision)
            acted, failures = await self.actor.apply(snap, spec, changes, origin, objects)
        unmoved = (
            None if changes else _unmoved(spec, observation, memory, decision, cycle.now, shown)
        )
        outcome = Outcome(
            snap, spec, observation, decision, acted, failures, origin.problems, unmoved
        )
        return Decided(outcome, memory, inputs, seen)

    async def report(self, decided: Decided, edge_failure: str | None, cycle: Cycle) -> None:
        """Step 5; a route whose report changed nothing may count as quiet next cycle."""
        outcome = decided.outcome
        settled = await self.reporter.report(outcome, edge_failure, cycle.now, cycle.report)
        decision, key = outcome.decision, outcome.snap.key
        if settled and quiet.reusable(decision, decided.memory):
            until = quiet.stable_until(outcome.spec, decided.memory, cycle.now)
            state = decision.state.value
            snap = outcome.snap
            self.quiet.keep(
                key, Quiet(decided.inputs, snap.status, state, until, snap, decided.seen)
            )
        else:
            self.quiet.drop(key)

    def _observation(
        self,
        snap: RouteSnapshot,
        spec: TimeoutBudgetSpec,
        latency: LatencyObservation | None,
        origin: cluster.OriginState,
        objects: cluster.NamespaceObjects,
    ) -> RouteObservation:
        edge = self.edge.observe(snap.namespace, snap.key, spec) if self.edge else None
        rerouted = origin.rerouted
        if self.edge is not None:
            rerouted = rerouted | self.edge.rerouted(snap.namespace, snap.key, spec)
        shifted = shift.observed(spec, objects.gateway_api, snap.key)
        if shifted.target is not None:
            rerouted = rerouted | {shifted.target}
        return RouteObservation(
            latency=latency or LatencyObservation.unavailable("route not observed this cycle"),
            scale=origin.scale,
            rerouted=rerouted,
            edge=edge,
            edge_unread=self.edge is not None and self.edge.unread(snap.namespace, snap.key, spec),
            shift_percent=shifted.percent,
            shift_changed=shifted.changed,
            chain=(
                (
                    *chain.ingress_hops(spec, objects.ingresses, snap.key, objects.nginx),
                    *gateway.httproute_hops(spec, objects.gateway_api, snap.key),
                )
                if spec.chain is not None
                # Without spec.chain, only what the operator still holds for the route,
                # so that it is given back (``decide.chain_sync``).
                else chain.held_hops(objects.ingresses_held_by(snap.key), snap.key)
            ),
        )


def _unmoved(
    spec: TimeoutBudgetSpec,
    observation: RouteObservation,
    memory: Memory,
    decision: Decision,
    now: float,
    shown: float | None,
) -> Callable[[], Decision] | None:
    """How to decide again had the P95 stayed as the status shows it, when the reading moved
    from it (``cycle.report``: a change of the reading alone is written less often). Made
    only when the reporter needs it: not for a write that is due anyway."""
    latency = observation.latency
    if shown is None or decision.p95_seconds in (None, shown) or not latency.has_value:
        return None
    stayed = replace(observation, latency=replace(latency, seconds=shown))
    return partial(ladder.decide, spec, stayed, memory, now, shown=shown)


def shown_p95(status: Mapping[str, Any]) -> float | None:
    """The P95 the route's status shows now, if any (see ``decide.bands.steady``)."""
    value = status.get("p95Seconds")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
