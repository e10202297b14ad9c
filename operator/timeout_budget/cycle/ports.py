"""What the cycle needs from the world, as complete Protocols: no step reaches past them.

* ``LatencySource``: each route's P95, batch by batch as the backend answers
  (``observe.latency.LatencyObserver``; ``AnswersAtOnce`` for a source that has it all at
  once, like the tests' in-memory worlds).
* ``EdgeSync``: the Cloudflare side (``edge.ZoneRegistry``).
* ``EventSink``: a Kubernetes Event about a TimeoutBudget (``report.events.EventPoster``).
* the clock is ``model.timestamps.Clock`` (seconds now; tests pass a manual one).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from timeout_budget.model.actions import Action, RerouteTarget
from timeout_budget.model.conditions import ConditionInput
from timeout_budget.model.edge_view import RouteEdge, Window
from timeout_budget.model.observation import LatencyObservation
from timeout_budget.model.spec import RouteKey, TimeoutBudgetSpec
from timeout_budget.model.world import EdgeObservation

EventSink = Callable[[Mapping[str, Any], str, str, str], Awaitable[None]]
"""``post(object_ref, type, reason, message)``: a Kubernetes Event about a TimeoutBudget."""

Readings = Mapping[RouteKey, LatencyObservation]


class LatencySource(Protocol):
    def observe_parts(
        self, routes: Mapping[RouteKey, TimeoutBudgetSpec], at: float | None = None
    ) -> AsyncGenerator[Readings, None]:
        """Every route's reading exactly once, in parts as the backend answers them (a
        route left out holds, saying it was not observed)."""
        ...

    def refresh_coverage(self) -> Awaitable[int]:
        """Between passes: read what came due for refresh in the last observation and is
        not needed to answer it (bucket bounds already known); how much was refreshed."""
        ...

    @property
    def answered_in(self) -> float | None:
        """Seconds from the last observation's start to the backend's last answer."""
        ...

    @property
    def queries_sent(self) -> int | None:
        """Queries sent so far (a running total), if counted."""
        ...


class AnswersAtOnce:
    """A ``LatencySource`` from one ``observe`` that answers every route at once."""

    answered_in: float | None = None
    queries_sent: int | None = None

    async def observe(
        self, routes: Mapping[RouteKey, TimeoutBudgetSpec], at: float | None = None
    ) -> Readings:
        raise NotImplementedError

    async def observe_parts(
        self, routes: Mapping[RouteKey, TimeoutBudgetSpec], at: float | None = None
    ) -> AsyncGenerator[Readings, None]:
        yield await self.observe(routes, at)

    async def refresh_coverage(self) -> int:
        return 0  # it has it all at once: nothing comes due


class EdgeSync(Protocol):
    """The Cloudflare side: what the edge looks like for a route, and changing it.

    ``observe``, ``rerouted`` and ``conditions`` answer from the zone's cached state (no
    API call); ``apply`` queues the changes for the zone's one batched write per cycle and
    raises with a readable reason when they cannot be made (plan, rate limit, API down);
    ``flush`` sends them at the end of the cycle.
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
        """The route's ``EdgeSynced`` condition."""
        ...

    def edge_view(self, namespace: str, key: RouteKey, spec: TimeoutBudgetSpec) -> RouteEdge | None:
        """The route's share of its zone's last window of Cloudflare's analytics."""
        ...

    def unread(self, namespace: str, key: RouteKey, spec: TimeoutBudgetSpec) -> bool:
        """Whether the route's zone has not been read by this process yet, with nothing
        known against it (a start, a shard taken over): its status keeps its edge as is."""
        ...

    def comparisons_due(self) -> Mapping[RouteKey, Window]:
        """Routes whose zone's newest analytics window Prometheus was not asked about."""
        ...

    def compared(self, answers: Mapping[RouteKey, tuple[Window, float | None]]) -> None:
        """Prometheus' P95 per route over its window (``None``: no data)."""
        ...

    async def apply(
        self, namespace: str, key: RouteKey, spec: TimeoutBudgetSpec, actions: Sequence[Action]
    ) -> None: ...

    def awaits_flush(self, key: RouteKey) -> bool:
        """Whether the route's report must wait for ``flush``."""
        ...

    async def flush(self) -> Mapping[RouteKey, str]:
        """Send each zone's batched changes; per route whose changes failed, the reason."""
        ...
