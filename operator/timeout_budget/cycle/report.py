"""Step 5 of the cycle, report: the route's status, its Events and its metrics.

The status is built whole by ``decide.status`` (pure) and patched only where it differs
from the one the watch last brought, so an unchanged route costs no write; a change of the
reading alone is written at most once per ``reading_refresh_seconds``
(``status.reading_only``). Events: one
Normal Event per change made (its kind's ``event_reason``), a Warning per failure, and a
Warning per refusal the first time it appears (not every cycle while it lasts). A route
that cannot be evaluated at all (invalid spec, origin or namespace unreadable) is held as
it is, with the reason (``held``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pydantic

from timeout_budget.clients.kube import Kube
from timeout_budget.cycle.act import with_conflict_retry
from timeout_budget.cycle.ports import EdgeSync, EventSink
from timeout_budget.cycle.snapshot import RouteSnapshot
from timeout_budget.decide import bands, status
from timeout_budget.model.actions import Action, Refusal
from timeout_budget.model.conditions import ConditionInput
from timeout_budget.model.decision import Decision
from timeout_budget.model.edge_view import RouteEdge
from timeout_budget.model.observation import LatencyObservation
from timeout_budget.model.spec import RouteKey, TimeoutBudgetSpec
from timeout_budget.model.world import RouteObservation
from timeout_budget.report.metrics import OperatorMetrics


@dataclass
class CycleReport:
    """What one cycle did, for its log line and the benchmarks."""

    routes: int = 0
    actions_applied: int = 0
    actions_failed: int = 0
    status_patches: int = 0
    readings_held: int = 0
    """Routes whose reading alone changed, not written yet (``status.reading_only``); or,
    while their zone is not read yet after a start, their messages (``status.words_only``)."""
    unchanged: int = 0
    """Quiet routes whose inputs had not changed: not decided again (``decide.quiet``)."""
    duration_seconds: float = 0.0
    states: dict[str, int] = field(default_factory=dict)

    def count_state(self, state: str) -> None:
        self.states[state] = self.states.get(state, 0) + 1


@dataclass(frozen=True, slots=True)
class Outcome:
    """One route's evaluation, ready to report."""

    snap: RouteSnapshot
    spec: TimeoutBudgetSpec
    observation: RouteObservation
    decision: Decision
    acted: Sequence[Action]
    failures: Sequence[str]
    problems: Sequence[str]
    """References that do not resolve (a Service the spec names), for ``Ready``."""
    unmoved: Callable[[], Decision] | None = None
    """The same evaluation on the P95 the status shows, when the reading moved and nothing
    was to change: whether the reading is all that changed (``status.reading_only``)."""


@dataclass
class Reporter:
    kube: Kube
    post_event: EventSink
    metrics: OperatorMetrics
    edge: EdgeSync | None
    told: dict[RouteKey, frozenset[str]] = field(default_factory=dict)
    """The refusals each route was last told about (a Warning only for new ones)."""
    reading_refresh_seconds: float = 60.0
    """A change of the reading alone is written at most this often (0: at once)."""

    async def report(
        self, outcome: Outcome, edge_failure: str | None, now: float, cycle: CycleReport
    ) -> bool:
        """Report one route. ``edge_failure``: why the zone's batched write failed for this
        route's edge changes, if it did. True when everything is as reported with nothing
        patched and nothing failed (the route may then count as quiet)."""
        snap, decision = outcome.snap, outcome.decision
        previous = snap.status_dict()
        acted, failures = list(outcome.acted), list(outcome.failures)
        if edge_failure is not None and not decision.dry_run:
            for action in [a for a in acted if a.at_edge]:
                acted.remove(action)
                failures.append(f"{action.describe()}: {edge_failure}")
                self.metrics.actions_done([action], "failed")
        cycle.actions_applied += 0 if decision.dry_run else len(acted)
        cycle.actions_failed += len(failures)
        edge, view, kept = self._edge(snap, previous, outcome.spec, outcome.observation)
        extra = [*edge, *status.outcome(outcome.problems, failures)]
        new = status.build(
            decision,
            outcome.observation,
            previous=previous,
            now=now,
            generation=snap.generation,
            acted=acted,
            failures=failures,
            extra_conditions=extra,
            edge_view=view,
            kept_edge=kept,
        )
        cycle.count_state(decision.state.value)
        self.metrics.actions_done(acted, "planned" if decision.dry_run else "applied")
        reading = read(outcome.observation.latency)
        self.metrics.route(snap.namespace, snap.name, decision, extra, reading, view)
        await self._events(snap, decision.dry_run, acted, failures, decision.refusals)
        if not (acted or failures) and (
            (kept is not None and status.words_only(previous, new))
            or self._hold_reading(outcome, previous, new, extra, view, kept, now)
        ):
            cycle.readings_held += 1
            return False  # decided again next cycle, so the reading is written when due
        patched = await self.patch(snap, new, cycle, previous)
        return not (failures or patched)

    def _edge(
        self,
        snap: RouteSnapshot,
        previous: Mapping[str, Any],
        spec: TimeoutBudgetSpec,
        observation: RouteObservation,
    ) -> tuple[Sequence[ConditionInput], RouteEdge | None, status.KeptEdge | None]:
        """The route's edge conditions and view; while this process has not read its zone
        yet, what its status shows instead (``status.kept_edge``)."""
        if self.edge is None:
            return (), None, None
        if observation.edge_unread:
            kept = status.kept_edge(previous, snap.generation)
            if kept is not None:
                return kept.conditions, None, kept
        edge = self.edge.conditions(snap.namespace, snap.key, spec)
        return edge, self.edge.edge_view(snap.namespace, snap.key, spec), None

    def _hold_reading(
        self,
        outcome: Outcome,
        previous: Mapping[str, Any],
        new: Mapping[str, Any],
        extra: Sequence[ConditionInput],
        view: RouteEdge | None,
        kept: status.KeptEdge | None,
        now: float,
    ) -> bool:
        """Whether the status's only change is the reading, written less often."""
        if outcome.unmoved is None or status.refresh_due(
            previous, now, self.reading_refresh_seconds
        ):
            return False
        same = status.build(
            outcome.unmoved(),
            outcome.observation,
            previous=previous,
            now=now,
            generation=outcome.snap.generation,
            extra_conditions=extra,
            edge_view=view,
            kept_edge=kept,
        )
        return status.reading_only(previous, new, same)

    async def held(
        self, snap: RouteSnapshot, now: float, reason: str, message: str, cycle: CycleReport
    ) -> None:
        """The route cannot be evaluated: everything stays as it is, ``Ready`` says why,
        and a Warning Event when that is news."""
        previous = snap.status_dict()
        new = status.held(previous, reason, message, now=now, generation=snap.generation)
        if status.changed(previous, new):
            await self.post_event(snap.ref(), "Warning", reason, new["message"])
        await self.patch(snap, new, cycle, previous)

    async def invalid(
        self, snap: RouteSnapshot, exc: pydantic.ValidationError, now: float, cycle: CycleReport
    ) -> None:
        errors = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        await self.held(snap, now, "InvalidSpec", f"invalid spec: {errors}", cycle)

    async def patch(
        self,
        snap: RouteSnapshot,
        new: Mapping[str, Any],
        cycle: CycleReport,
        previous: Mapping[str, Any] | None = None,
    ) -> bool:
        """Patch what changed from ``previous`` (the snapshot's status, read once by the
        caller); False when nothing did."""
        body = status.patch(snap.status_dict() if previous is None else previous, new)
        if not body:
            return False
        await with_conflict_retry(
            lambda: self.kube.patch_budget_status(snap.namespace, snap.name, body)
        )
        cycle.status_patches += 1
        return True

    def unchanged(
        self,
        snap: RouteSnapshot,
        state: str,
        latency: LatencyObservation | None,
        cycle: CycleReport,
    ) -> None:
        """A quiet route keeps its last decision: counted, and its reading in the metrics."""
        cycle.unchanged += 1
        cycle.count_state(state)
        self.metrics.route_unchanged(snap.namespace, snap.name, read(latency))

    async def _events(
        self,
        snap: RouteSnapshot,
        dry_run: bool,
        acted: Sequence[Action],
        failures: Sequence[str],
        refusals: Sequence[Refusal],
    ) -> None:
        ref = snap.ref()
        if not dry_run:
            for action in acted:
                await self.post_event(
                    ref, "Normal", action.event_reason, f"{action.describe()}: {action.reason}"
                )
        for failure in failures:
            await self.post_event(ref, "Warning", "ActionFailed", failure)
        described = frozenset(r.describe() for r in refusals)
        before = self.told.get(snap.key, frozenset())
        if described and described != before:
            for text in sorted(described - before):
                await self.post_event(ref, "Warning", "Refused", text)
        self.told[snap.key] = described


def read(latency: LatencyObservation | None) -> float | None:
    """The P95 as the backend answered it (the metric's value), if usable."""
    return None if latency is None else bands.usable_seconds(latency)
