"""Quiet routes: the ones whose inputs did not change are not decided again.

Most routes of a large fleet are healthy and unchanged from one cycle to the next. The
pure rule (``decide.quiet``) says when a decision may be reused: the same inputs but the
time, before the first moment a window of the route's memory can end. This module keeps
each quiet route's last evaluation and answers two questions:

* ``fast``: before anything is computed, is this the very same index entry, the very same
  origin objects and the same reading, before the route's next window ends? (microseconds
  a route; a route synced to a CloudflareZone never takes this path, its edge state lives
  in the zone registry);
* ``matches``: the full check, on the inputs the route step computed (``decide.quiet.inputs``).
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass, replace
from typing import Any

from timeout_budget.cycle.snapshot import RouteSnapshot
from timeout_budget.decide import quiet
from timeout_budget.decide.bands import Lines
from timeout_budget.model.observation import LatencyObservation
from timeout_budget.model.spec import RouteKey, TimeoutBudgetSpec
from timeout_budget.observe import cluster


@dataclass(frozen=True, slots=True)
class Seen:
    """What a route was decided from, for the fast check's identity comparisons."""

    sources: tuple[Any, ...]
    """``cluster.origin_sources``: the very objects its origin was read from."""
    shown: float | None
    lines: Lines
    latency: tuple[Any, ...]
    """``quiet.latency_inputs`` of the reading it was decided on."""


@dataclass(frozen=True, slots=True)
class Quiet:
    """A quiet route's last evaluation: its inputs, and the status it found unchanged."""

    inputs: tuple[Any, ...]
    status: Mapping[str, Any] | str
    """The snapshot's status as kept (``RouteSnapshot.status``: text as watched)."""
    state: str
    until: float
    """``quiet.stable_until``: from then on, a window's end may change the decision."""
    snap: RouteSnapshot
    """The index entry decided (the fast check wants the very same one)."""
    seen: Seen

    def matches(
        self, inputs: tuple[Any, ...], current: Mapping[str, Any] | str, now: float
    ) -> bool:
        # The status too: one edited by a person or another replica is decided again.
        return now < self.until and self.inputs == inputs and self.status == current


class QuietRoutes:
    def __init__(self) -> None:
        self._known: dict[RouteKey, Quiet] = {}

    def retain(self, keys: Container[RouteKey]) -> None:
        """Forget the routes that are gone."""
        self._known = {k: v for k, v in self._known.items() if k in keys}

    def get(self, key: RouteKey) -> Quiet | None:
        return self._known.get(key)

    def fast(
        self,
        snap: RouteSnapshot,
        spec: TimeoutBudgetSpec,
        latency: LatencyObservation | None,
        objects: Mapping[str, cluster.NamespaceObjects],
        now: float,
        edge_synced: bool,
    ) -> Quiet | None:
        """The route's last evaluation if it still holds without deciding anything; any
        doubt answers ``None`` and leaves the route to the full check."""
        known = self._known.get(snap.key)
        ns_objects = objects.get(snap.namespace)
        if (
            known is None
            or known.snap is not snap
            or latency is None
            or ns_objects is None
            or now >= known.until
            or edge_synced
        ):
            return None
        seen = known.seen
        sources = cluster.origin_sources(spec, ns_objects)
        if len(sources) != len(seen.sources):
            return None
        if any(a is not b for a, b in zip(sources, seen.sources, strict=True)):
            return None
        if quiet.latency_inputs(latency, seen.shown, seen.lines) != seen.latency:
            return None
        return known

    def refresh(self, known: Quiet, snap: RouteSnapshot, seen: Seen) -> None:
        """Still quiet by the full check: what it was read from now is what the fast check
        compares with next time (an index entry or an origin object replaced without a
        change, a relist)."""
        self._known[snap.key] = replace(known, status=snap.status, snap=snap, seen=seen)

    def keep(self, key: RouteKey, quiet_route: Quiet) -> None:
        self._known[key] = quiet_route

    def drop(self, key: RouteKey) -> None:
        """Decided afresh next cycle."""
        self._known.pop(key, None)
