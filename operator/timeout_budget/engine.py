"""One evaluation cycle for every route: observe, decide, diff, apply, report.

The cycle is the operator's heartbeat (default every 15 s). It sends the batched
Prometheus queries for all routes and reads each namespace's objects once (from the
watch-fed copy, ``clients.watch_cache``, or fresh lists); as each batch
is answered, it decides that batch's routes with the pure ladder, applies only the needed
changes, and patches a route's status only when something a person would see changed.
A failure in one route's apply never stops the others: it is reported in that route's
status and as a Warning Event, and the next cycle tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

import pydantic

from timeout_budget.actions import reroute, scale
from timeout_budget.clients.kube import Conflict, Kube, KubeError
from timeout_budget.decide import bands, diff, ladder, quiet, status
from timeout_budget.decide.bands import Lines
from timeout_budget.decide.context import Context
from timeout_budget.model import conditions
from timeout_budget.model.actions import (
    Action,
    EdgeTimeout,
    Reroute,
    RerouteTarget,
    RerouteVia,
    ScaleTo,
)
from timeout_budget.model.conditions import ConditionInput, ConditionStatus, ConditionType
from timeout_budget.model.decision import Decision
from timeout_budget.model.memory import Memory
from timeout_budget.model.observation import LatencyObservation
from timeout_budget.model.spec import RouteKey, TimeoutBudgetSpec, parse_timeout_budget, route_key
from timeout_budget.model.timestamps import rfc3339
from timeout_budget.model.world import EdgeObservation, RouteObservation
from timeout_budget.observe import cluster
from timeout_budget.report.metrics import METRICS, OperatorMetrics

log = logging.getLogger("timeout_budget.engine")

CONFLICT_RETRIES = 3
ROUTE_CONCURRENCY = 8
"""Routes evaluated at once: while one waits for the API server (an action, an Event, its
status patch), the others decide. One at a time, 1,000 status patches took 40-60 s on the
benchmark's sandbox (bench/README.md); eight in flight keep the API server busy without
flooding it."""

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class RouteSnapshot:
    """A TimeoutBudget as the watch last saw it."""

    namespace: str
    name: str
    uid: str
    generation: int | None
    spec: Mapping[str, Any] | str
    """The spec, or (in the index) its compact JSON text: parsed only when the generation
    changes, and a fifth of the memory of the nested dicts (~0.4 instead of ~2 kB)."""
    status: Mapping[str, Any]

    @property
    def key(self) -> RouteKey:
        return route_key(self.namespace, self.name)

    def spec_dict(self) -> dict[str, Any]:
        if isinstance(self.spec, str):
            loaded: dict[str, Any] = json.loads(self.spec)
            return loaded
        return dict(self.spec)

    def ref(self) -> dict[str, Any]:
        return {
            "apiVersion": "timeoutbudget.io/v1alpha1",
            "kind": "TimeoutBudget",
            "metadata": {"namespace": self.namespace, "name": self.name, "uid": self.uid},
        }


class LatencySource(Protocol):
    async def observe(
        self, routes: Mapping[RouteKey, TimeoutBudgetSpec], at: float | None = None
    ) -> Mapping[RouteKey, LatencyObservation]: ...


class EdgeSync(Protocol):
    """The Cloudflare side: what the edge looks like for a route, and changing it.

    ``observe`` and ``rerouted`` answer from the zone's cached state (no API call);
    ``apply`` may queue the changes for the zone's one batched write per cycle and
    raise with a readable reason when they cannot be made (plan, rate limit, API down).
    """

    def observe(
        self, namespace: str, key: RouteKey, spec: TimeoutBudgetSpec
    ) -> EdgeObservation | None: ...

    def rerouted(
        self, namespace: str, key: RouteKey, spec: TimeoutBudgetSpec
    ) -> frozenset[RerouteTarget]:
        """DNS-only reroutes of this route found in force (operator-owned)."""
        ...

    def conditions(
        self, namespace: str, key: RouteKey, spec: TimeoutBudgetSpec
    ) -> Sequence[ConditionInput]:
        """The route's ``EdgeSynced`` condition (and any other edge condition)."""
        ...

    async def apply(
        self, namespace: str, key: RouteKey, spec: TimeoutBudgetSpec, actions: Sequence[Action]
    ) -> None: ...

    def awaits_flush(self, key: RouteKey) -> bool:
        """Whether the route's report must wait for ``flush`` (see ``ZoneRegistry``)."""
        ...

    async def flush(self) -> Mapping[RouteKey, str]:
        """End of cycle: send each zone's batched changes (one read per zone, then one
        write per changed rule).

        Returns, per route whose queued edge changes could not be made, the reason."""
        ...


EventSink = Callable[[Mapping[str, Any], str, str, str], Awaitable[None]]
"""``post(object_ref, type, reason, message)``: a Kubernetes Event about a TimeoutBudget."""


@dataclass
class CycleReport:
    routes: int = 0
    actions_applied: int = 0
    actions_failed: int = 0
    status_patches: int = 0
    unchanged: int = 0
    """Quiet routes whose inputs had not changed: not decided again (``decide.quiet``)."""
    duration_seconds: float = 0.0
    states: dict[str, int] = field(default_factory=dict)


@dataclass
class Engine:
    kube: Kube
    latency: LatencySource
    post_event: EventSink
    edge: EdgeSync | None = None
    clock: Callable[[], float] = time.time
    dry_run: bool = False
    """Operator-wide dry run (``TBO_DRY_RUN``): every route plans, nothing changes."""
    metrics: OperatorMetrics = METRICS
    may_act: Callable[[], bool] = lambda: True
    """False when this replica lost the leader Lease mid-cycle: it then writes nothing more."""
    origins: cluster.NamespaceLists | None = None
    """Where each namespace's Deployments, HPAs and Services are read: the operator's
    watch-fed copy (``clients.watch_cache``); None lists them from ``kube`` each cycle."""
    _refusals: dict[RouteKey, frozenset[str]] = field(default_factory=dict)
    _parsed: dict[RouteKey, tuple[str, int, TimeoutBudgetSpec]] = field(default_factory=dict)
    _quiet: dict[RouteKey, _Quiet] = field(default_factory=dict)

    async def evaluate(self, snapshots: Sequence[RouteSnapshot]) -> CycleReport:
        started = time.monotonic()
        report = CycleReport(routes=len(snapshots))
        now = self.clock()
        specs: dict[RouteKey, TimeoutBudgetSpec] = {}
        parsed: dict[RouteKey, tuple[str, int, TimeoutBudgetSpec]] = {}
        for snap in snapshots:
            # A spec changes only with its generation: parse it once, not every cycle.
            known = self._parsed.get(snap.key)
            if known is not None and known[:2] == (snap.uid, snap.generation):
                specs[snap.key] = known[2]
                parsed[snap.key] = known
                continue
            try:
                specs[snap.key] = parse_timeout_budget(snap.spec_dict())
                if self.dry_run:
                    specs[snap.key] = specs[snap.key].model_copy(update={"dry_run": True})
            except pydantic.ValidationError as exc:
                await self._report_invalid(snap, exc, now, report)
                continue
            if snap.generation is not None:
                parsed[snap.key] = (snap.uid, snap.generation, specs[snap.key])
        self._parsed = parsed
        self._quiet = {k: v for k, v in self._quiet.items() if k in specs}
        valid = [s for s in snapshots if s.key in specs]
        latency: dict[RouteKey, LatencyObservation] = {}
        deferred: list[_Pending] = []
        """Routes whose edge changes are queued (or failed): reported after the zone's one
        batched write (``flush``), with its outcome. Every other route reports at once."""

        async def evaluate_one(snap: RouteSnapshot) -> None:
            if not self.may_act():
                return
            try:
                item = await self._evaluate_route(
                    snap, specs[snap.key], latency.get(snap.key), objects, now, report, unread
                )
            except KubeError as exc:
                log.warning("route %s: %s", snap.key, exc)
                return
            if item is None:
                return
            edge = self.edge
            if edge is not None and item.spec.edge is not None and edge.awaits_flush(item.snap.key):
                deferred.append(item)  # reported with the outcome of the zone's one write
            else:
                await finish_one(item, None)

        async def finish_one(item: _Pending, edge_failure: str | None) -> None:
            if not self.may_act():
                return
            try:
                await self._finish(item, edge_failure, now, report)
            except KubeError as exc:
                log.warning("route %s: status not reported: %s", item.snap.key, exc)

        # Prometheus and the API server answer at the same time, and each batch of routes
        # is decided as soon as Prometheus answers it, while the other batches' queries run:
        # the cycle then ends soon after the last answer instead of starting there.
        unread: dict[str, str] = {}  # namespaces whose objects could not be read: why
        lists = asyncio.ensure_future(
            cluster.read_namespaces(
                self.kube if self.origins is None else self.origins,
                {s.namespace for s in valid},
                unread,
            )
        )
        waiting = {s.key: s for s in valid}
        observe_started = time.monotonic()
        try:
            async with contextlib.aclosing(self._latency_parts(specs)) as parts:
                async for part in parts:
                    latency.update(part)
                    objects = await lists
                    ready = [
                        snap
                        for snap in (waiting.pop(key) for key in part if key in waiting)
                        if not self._still_quiet(
                            snap, specs[snap.key], part.get(snap.key), objects, now, report
                        )
                    ]
                    # The most urgent routes first: a route above its at-risk line is scaled
                    # within moments of the answer, not after the healthy routes were decided.
                    ready.sort(key=lambda s: _urgency(specs[s.key], part.get(s.key)), reverse=True)
                    await _bounded(ready, evaluate_one, ROUTE_CONCURRENCY)
            self.metrics.latency_read(
                getattr(self.latency, "answered_in", None) or time.monotonic() - observe_started,
                [latency.get(key) for key in specs],
                getattr(self.latency, "queries_sent", None),
            )
            objects = await lists
        finally:
            lists.cancel()
        # Routes no answer covered (a source that left some out) hold, saying why.
        await _bounded(list(waiting.values()), evaluate_one, ROUTE_CONCURRENCY)
        edge_failures = await self.edge.flush() if self.edge is not None else {}
        await _bounded(
            deferred,
            lambda item: finish_one(item, edge_failures.get(item.snap.key)),
            ROUTE_CONCURRENCY,
        )
        report.duration_seconds = time.monotonic() - started
        self.metrics.cycle_done(report.duration_seconds, report.states)
        return report

    async def _latency_parts(
        self, specs: Mapping[RouteKey, TimeoutBudgetSpec]
    ) -> AsyncGenerator[Mapping[RouteKey, LatencyObservation], None]:
        """The latency source's answers batch by batch when it can give them so
        (``LatencyObserver.observe_parts``), else all at once."""
        parts = getattr(self.latency, "observe_parts", None)
        if parts is None:
            yield await self.latency.observe(specs, None)
            return
        async with contextlib.aclosing(parts(specs, None)) as answers:
            async for part in answers:
                yield part

    # -- one route ----------------------------------------------------------------------
    async def _evaluate_route(
        self,
        snap: RouteSnapshot,
        spec: TimeoutBudgetSpec,
        latency: LatencyObservation | None,
        objects: Mapping[str, cluster.NamespaceObjects],
        now: float,
        report: CycleReport,
        unread: Mapping[str, str] | None = None,
    ) -> _Pending | None:
        ns_objects = objects.get(snap.namespace)
        if ns_objects is None:
            # Could not read the namespace: hold everything, say why.
            why = (unread or {}).get(snap.namespace)
            message = "could not read the origin's objects" + (f": {why}" if why else "")
            await self._report_problem(snap, now, "ClusterUnavailable", message, report)
            return None
        origin = cluster.origin_state(snap.key, spec, ns_objects)
        if not origin.deployment_found:
            await self._report_problem(
                snap, now, "OriginNotFound", "; ".join(origin.problems), report
            )
            return None
        edge = self.edge.observe(snap.namespace, snap.key, spec) if self.edge else None
        rerouted = origin.rerouted
        if self.edge is not None:
            rerouted = rerouted | self.edge.rerouted(snap.namespace, snap.key, spec)
        observation = RouteObservation(
            latency=latency or LatencyObservation.unavailable("route not observed this cycle"),
            scale=origin.scale,
            rerouted=rerouted,
            edge=edge,
        )
        memory = Memory.from_status(snap.status.get("memory")).adopt(rerouted)
        shown = _shown(snap.status)
        key, lines = self._quiet_key(snap, spec, observation, memory, shown, origin.problems, now)
        known = self._quiet.get(snap.key)
        sources = cluster.origin_sources(spec, ns_objects)
        seen = _Seen(sources, shown, lines, quiet.latency_inputs(observation.latency, shown, lines))
        if known is not None and known.matches(key, snap.status, now):
            # Same inputs, a decision the time cannot change yet, the status it left: done.
            # What it was read from now is what the fast check compares with next time (an
            # index entry or an origin object replaced without a change, a relist).
            self._quiet[snap.key] = replace(known, status=snap.status, snap=snap, seen=seen)
            self._unchanged(snap, known, latency, report)
            return None
        decision = ladder.decide(spec, observation, memory, now, shown=shown)
        changes = diff.changes(decision.actions, observation)
        acted: list[Action] = []
        failures: list[str] = []
        if decision.dry_run:
            acted = list(changes)
        else:
            if changes:
                await self._remember(snap, decision)
            acted, failures = await self._apply(snap, spec, changes, origin, ns_objects)
        return _Pending(
            snap, spec, observation, decision, acted, failures, origin.problems, memory, key, seen
        )

    def _quiet_key(
        self,
        snap: RouteSnapshot,
        spec: TimeoutBudgetSpec,
        observation: RouteObservation,
        memory: Memory,
        shown: float | None,
        problems: Sequence[str],
        now: float,
    ) -> tuple[tuple[Any, ...], Lines]:
        """The route's inputs, all but the time (``decide.quiet``), and its lines."""
        ctx = Context.of(spec, observation, now, shown)
        edge = tuple(self.edge.conditions(snap.namespace, snap.key, spec)) if self.edge else ()
        key = (snap.uid, snap.generation, *quiet.inputs(ctx, memory, shown, (*problems, *edge)))
        return key, ctx.lines

    def _still_quiet(
        self,
        snap: RouteSnapshot,
        spec: TimeoutBudgetSpec,
        latency: LatencyObservation | None,
        objects: Mapping[str, cluster.NamespaceObjects],
        now: float,
        report: CycleReport,
    ) -> bool:
        """The quiet check without deciding anything: the very same index entry (spec,
        status), the very same origin objects, the same reading and no edge (whose state
        lives in the zone registry), before the route's next window ends. Most routes of a
        large fleet are settled this way, in microseconds; any doubt leaves the route to
        ``_evaluate_route``, whose full check (``_Quiet.matches``) is the rule."""
        known = self._quiet.get(snap.key)
        ns_objects = objects.get(snap.namespace)
        if (
            known is None
            or known.snap is not snap
            or latency is None
            or ns_objects is None
            or now >= known.until
            or (self.edge is not None and spec.edge is not None)
        ):
            return False
        seen = known.seen
        sources = cluster.origin_sources(spec, ns_objects)
        if any(a is not b for a, b in zip(sources, seen.sources, strict=True)):
            return False
        if quiet.latency_inputs(latency, seen.shown, seen.lines) != seen.latency:
            return False
        self._unchanged(snap, known, latency, report)
        return True

    def _unchanged(
        self,
        snap: RouteSnapshot,
        known: _Quiet,
        latency: LatencyObservation | None,
        report: CycleReport,
    ) -> None:
        """A quiet route keeps its last decision: counted, and its reading in the metrics."""
        report.unchanged += 1
        report.states[known.state] = report.states.get(known.state, 0) + 1
        self.metrics.route_unchanged(snap.namespace, snap.name, _read(latency))

    async def _finish(
        self, item: _Pending, edge_failure: str | None, now: float, report: CycleReport
    ) -> None:
        snap, spec, decision = item.snap, item.spec, item.decision
        acted, failures = list(item.acted), list(item.failures)
        if edge_failure is not None and not decision.dry_run:
            for action in [a for a in acted if _is_edge(a)]:
                acted.remove(action)
                failures.append(f"{action.describe()}: {edge_failure}")
                self.metrics.actions_done([action], "failed")
        observation = item.observation
        report.actions_applied += 0 if decision.dry_run else len(acted)
        report.actions_failed += len(failures)
        extra: list[ConditionInput] = []
        if self.edge is not None:
            extra.extend(self.edge.conditions(snap.namespace, snap.key, spec))
        if item.problems:
            extra.append(
                ConditionInput(
                    ConditionType.READY,
                    ConditionStatus.FALSE,
                    "ReferenceNotFound",
                    "; ".join(item.problems),
                )
            )
        if failures:
            extra.append(
                ConditionInput(
                    ConditionType.READY,
                    ConditionStatus.FALSE,
                    "ActionFailed",
                    "; ".join(failures) + " (retried next cycle)",
                )
            )
        new = status.build(
            decision,
            observation,
            previous=snap.status,
            now=now,
            generation=snap.generation,
            acted=acted,
            extra_conditions=extra,
        )
        if failures:
            new["message"] = f"{decision.message} Failed: {'; '.join(failures)}".strip()
        report.states[decision.state.value] = report.states.get(decision.state.value, 0) + 1
        self.metrics.actions_done(acted, "planned" if decision.dry_run else "applied")
        self.metrics.route(snap.namespace, snap.name, decision, extra, _read(observation.latency))
        await self._emit_events(snap, decision.dry_run, acted, failures, decision.refusals)
        patched = await self._patch_status(snap, new, report)
        key, memory = item.quiet_key, item.memory
        if not (failures or patched) and quiet.reusable(decision, memory):
            until = quiet.stable_until(spec, memory, now)
            self._quiet[snap.key] = _Quiet(
                key, snap.status, decision.state.value, until, snap, item.seen
            )
        else:
            self._quiet.pop(snap.key, None)  # decided afresh next cycle

    async def _apply(
        self,
        snap: RouteSnapshot,
        spec: TimeoutBudgetSpec,
        changes: Sequence[Action],
        origin: cluster.OriginState,
        ns_objects: cluster.NamespaceObjects,
    ) -> tuple[list[Action], list[str]]:
        acted: list[Action] = []
        failures: list[str] = []
        edge_actions: list[Action] = []
        for action in changes:
            if _is_edge(action):
                edge_actions.append(action)
                continue
            try:
                await self._apply_with_retry(snap, spec, action, origin, ns_objects)
                acted.append(action)
                log.info("route %s: %s (%s)", snap.key, action.describe(), action.reason)
            except (KubeError, reroute.RerouteRefused, LookupError) as exc:
                failures.append(f"{action.describe()}: {exc}")
                log.warning("route %s: %s failed: %s", snap.key, action.describe(), exc)
        if edge_actions:
            if self.edge is None:
                failures.extend(
                    f"{a.describe()}: Cloudflare sync is not configured" for a in edge_actions
                )
            else:
                try:
                    await self.edge.apply(snap.namespace, snap.key, spec, edge_actions)
                    acted.extend(edge_actions)
                except Exception as exc:  # the edge says why; nothing else is lost
                    failures.extend(f"{a.describe()}: {exc}" for a in edge_actions)
        self.metrics.actions_done([a for a in changes if a not in acted], "failed")
        return acted, failures

    async def _apply_with_retry(
        self,
        snap: RouteSnapshot,
        spec: TimeoutBudgetSpec,
        action: Action,
        origin: cluster.OriginState,
        ns_objects: cluster.NamespaceObjects,
    ) -> None:
        for attempt in range(CONFLICT_RETRIES):
            try:
                await self._apply_cluster_action(snap, spec, action, origin, ns_objects)
                return
            except Conflict:
                if attempt == CONFLICT_RETRIES - 1:
                    raise

    async def _apply_cluster_action(
        self,
        snap: RouteSnapshot,
        spec: TimeoutBudgetSpec,
        action: Action,
        origin: cluster.OriginState,
        ns_objects: cluster.NamespaceObjects,
    ) -> None:
        if isinstance(action, ScaleTo):
            await scale.apply(self.kube, snap.namespace, snap.key, action, origin.scale)
        elif isinstance(action, Reroute):
            service = ns_objects.services.get(action.target.name)
            if service is None:
                raise LookupError(f"Service {action.target.name} not found")
            if action.apply:
                selector = (spec.reroute.long_running_selector if spec.reroute else None) or {}
                await reroute.switch(self.kube, snap.namespace, snap.key, service, selector)
            else:
                await reroute.restore(self.kube, snap.namespace, snap.key, service)

    # -- report -------------------------------------------------------------------------
    async def _emit_events(
        self,
        snap: RouteSnapshot,
        dry_run: bool,
        acted: Sequence[Action],
        failures: Sequence[str],
        refusals: Sequence[Any],
    ) -> None:
        ref = snap.ref()
        if not dry_run:
            for action in acted:
                await self.post_event(
                    ref, "Normal", _reason(action), f"{action.describe()}: {action.reason}"
                )
        for failure in failures:
            await self.post_event(ref, "Warning", "ActionFailed", failure)
        described = frozenset(r.describe() for r in refusals)
        if described and described != self._refusals.get(snap.key):
            for text in sorted(described - self._refusals.get(snap.key, frozenset())):
                await self.post_event(ref, "Warning", "Refused", text)
        self._refusals[snap.key] = described

    async def _patch_status(
        self, snap: RouteSnapshot, new: Mapping[str, Any], report: CycleReport
    ) -> bool:
        """Patch what changed; False when nothing did."""
        body = status.patch(snap.status, new)
        if not body:
            return False
        await _with_conflict_retry(
            lambda: self.kube.patch_budget_status(snap.namespace, snap.name, body)
        )
        report.status_patches += 1
        return True

    async def _remember(self, snap: RouteSnapshot, decision: Decision) -> None:
        """Write the decision's memory (cooldowns, what is rerouted) to status *before*
        acting: a crash between the action and the end-of-cycle status would otherwise
        forget it, and the restarted operator would act again at once (a second scale-up
        inside the cooldown). If this write fails, nothing is done this cycle."""
        body = status.patch(snap.status, {**snap.status, "memory": decision.memory.to_status()})
        if body:
            await _with_conflict_retry(
                lambda: self.kube.patch_budget_status(snap.namespace, snap.name, body)
            )

    async def _report_problem(
        self, snap: RouteSnapshot, now: float, reason: str, message: str, report: CycleReport
    ) -> None:
        text = f"{message}; holding everything as it is"
        new = dict(snap.status)
        new["message"] = text
        new["observedGeneration"] = snap.generation
        new["lastEvaluationTime"] = rfc3339(now, whole_seconds=True)
        new["conditions"] = conditions.merge(
            snap.status.get("conditions"),
            [ConditionInput(ConditionType.READY, ConditionStatus.FALSE, reason, text)],
            now=now,
            generation=snap.generation,
        )
        if status.changed(snap.status, new):
            await self.post_event(snap.ref(), "Warning", reason, text)
        await self._patch_status(snap, new, report)

    async def _report_invalid(
        self, snap: RouteSnapshot, exc: pydantic.ValidationError, now: float, report: CycleReport
    ) -> None:
        errors = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        await self._report_problem(snap, now, "InvalidSpec", f"invalid spec: {errors}", report)


@dataclass(frozen=True, slots=True)
class _Pending:
    """A route decided and applied this cycle, to be reported (a route with edge changes
    queued: after the zone's batched write, ``EdgeSync.flush``)."""

    snap: RouteSnapshot
    spec: TimeoutBudgetSpec
    observation: RouteObservation
    decision: Decision
    acted: Sequence[Action]
    failures: Sequence[str]
    problems: Sequence[str]
    memory: Memory
    """The memory the route was decided with."""
    quiet_key: tuple[Any, ...]
    seen: _Seen


@dataclass(frozen=True, slots=True)
class _Seen:
    """What a route was decided from, for ``Engine._still_quiet``'s identity checks."""

    sources: tuple[Any, ...]
    """``cluster.origin_sources``: the very objects its origin was read from."""
    shown: float | None
    lines: Lines
    latency: tuple[Any, ...]
    """``quiet.latency_inputs`` of the reading it was decided on."""


@dataclass(frozen=True, slots=True)
class _Quiet:
    """A quiet route's last evaluation: its inputs, and the status it found unchanged."""

    inputs: tuple[Any, ...]
    status: Mapping[str, Any]
    state: str
    until: float
    """``quiet.stable_until``: from then on, a window's end may change the decision."""
    snap: RouteSnapshot
    """The index entry decided (the fast check wants the very same one)."""
    seen: _Seen

    def matches(self, inputs: tuple[Any, ...], current: Mapping[str, Any], now: float) -> bool:
        # The status too: one edited by a person or another replica is decided again.
        return now < self.until and self.inputs == inputs and self.status == current


async def _bounded(items: Sequence[T], work: Callable[[T], Awaitable[R]], limit: int) -> list[R]:
    """``work`` on every item, at most ``limit`` at a time, results in order. Every item is
    worked on even if one fails; the first failure is then raised."""
    results: list[R | None] = [None] * len(items)
    queue = iter(enumerate(items))

    async def worker() -> None:
        for index, item in queue:
            results[index] = await work(item)

    done = await asyncio.gather(
        *(worker() for _ in range(min(limit, len(items)))), return_exceptions=True
    )
    for outcome in done:
        if isinstance(outcome, BaseException):
            raise outcome
    return results  # type: ignore[return-value]  # every slot was filled


def _urgency(spec: TimeoutBudgetSpec, latency: LatencyObservation | None) -> float:
    """P95 over the declared budget (the zone's default when none is declared): the
    order in which a cycle decides and acts. Routes without a reading come last."""
    if latency is None or latency.seconds is None or not latency.has_value:
        return -1.0
    return latency.seconds / spec.budget_seconds(None)


def _shown(status: Mapping[str, Any]) -> float | None:
    """The P95 the route's status shows now, if any (see ``decide.bands.steady``)."""
    value = status.get("p95Seconds")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _read(latency: LatencyObservation | None) -> float | None:
    """The P95 as Prometheus answered it (the metric's value), if usable."""
    return None if latency is None else bands.usable_seconds(latency)


def _is_edge(action: Action) -> bool:
    """Edge actions go through the zone's batched Cloudflare writer, not the cluster."""
    if isinstance(action, EdgeTimeout):
        return True
    return isinstance(action, Reroute) and action.target.via is RerouteVia.DNS_ONLY


def _reason(action: Action) -> str:
    if isinstance(action, ScaleTo):
        return "Scaled"
    if isinstance(action, Reroute):
        return "Rerouted" if action.apply else "RerouteUndone"
    return "EdgeTimeoutSet"


async def _with_conflict_retry(call: Callable[[], Any]) -> None:
    for attempt in range(CONFLICT_RETRIES):
        try:
            await call()
            return
        except Conflict:
            if attempt == CONFLICT_RETRIES - 1:
                raise
