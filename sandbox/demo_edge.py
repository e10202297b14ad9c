"""The 524s at the Cloudflare edge per route, before and after the operator acted (pure).

The synthetic origin reports each request it serves to the emulated edge, which answers 524
for a request slower than the read timeout in force for it (``cloudflare_emulator.
edge_serving``). The demo reads the counts back per second (``DemoResult.edge_counts``);
here they are given to the routes (host, then the longest path prefix) and split around
what the operator did.

Each load step (the set-up's first load, then every phase whose load rises: the surge,
beyond max) runs until the next one begins, the last until the end of the scenario. In a
step, the operator has *acted* for a route once it has taken every step it took there that
adds capacity or headroom (scale-ups, a reroute or weight shifts, edge read timeout
raises): the route's 524s before its last such action are ``before``, those from then to
the step's end ``after`` (an action is dated by its Event, in whole seconds: it counts as
taken at the end of that second); in a step where it did not act for the route,
``unacted``. (The first action is not where to cut: a raise of the edge read timeout from
120 s to 121 s comes first at times and spares few requests; the reroute after it is what
helps.)
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sandbox.demo_timeline import ActionKind, ActionRecord, DemoResult

TIMEOUT_STATUS = 524
SETUP = "set-up"
EVENT_RESOLUTION_SECONDS = 1.0
"""An action's time is its Event's, in whole seconds: it was taken up to a second later."""


def route_of(routes: Mapping[str, tuple[str, str]], host: str, path: str) -> str | None:
    """The route whose host is ``host`` and whose path prefix is the longest that ``path``
    is under (``/export`` holds ``/export`` and ``/export/a``, not ``/exports``)."""
    found = [
        (len(trimmed), name)
        for name, (route_host, prefix) in routes.items()
        if route_host == host
        and ((trimmed := prefix.rstrip("/")) == path or path.startswith(trimmed + "/"))
    ]
    return max(found)[1] if found else None


def _acts(action: ActionRecord) -> bool:
    """An action that adds capacity or headroom (not a release)."""
    if action.kind is ActionKind.EDGE:
        return action.what.startswith("set ")
    return action.kind in (ActionKind.SCALE_UP, ActionKind.REROUTE)


@dataclass(frozen=True)
class Step:
    """One load step of one route: its 524s around the operator's first action in it."""

    name: str
    start: float
    end: float
    acts: tuple[ActionRecord, ...]
    """The operator's actions in the step that add capacity or headroom, in order."""
    before: int
    after: int

    @property
    def acted(self) -> ActionRecord | None:
        """The last of ``acts``: where the step's 524s are split."""
        return self.acts[-1] if self.acts else None

    def describe(self) -> str:
        if not self.acts:
            return f"{self.name}: {self.before + self.after} (the operator did not act)"
        what = ", ".join(f"{a.kind.value} at t={a.t:.0f}s" for a in self.acts)
        return f"{self.name}: {self.before} before {what}, {self.after} after"


@dataclass(frozen=True)
class RouteEdge:
    route: str
    requests: int
    """Requests of the route the edge saw (0: Cloudflare never saw one)."""
    errors: int
    """Its 524s."""
    steps: tuple[Step, ...]

    @property
    def before(self) -> int:
        return sum(s.before for s in self.steps if s.acted is not None)

    @property
    def after(self) -> int:
        return sum(s.after for s in self.steps if s.acted is not None)

    @property
    def unacted(self) -> int:
        return sum(s.before + s.after for s in self.steps if s.acted is None)

    def headline(self) -> str:
        """``api: 524s at the edge: 37 before the operator acted, 0 after``."""
        if not self.requests:
            return f"{self.route}: the edge saw none of its requests (its host is not proxied)"
        text = f"{self.route}: 524s at the edge: {self.before} before the operator acted, "
        text += f"{self.after} after"
        if self.unacted:
            text += f"; {self.unacted} in load steps where it did not act"
        return text + f" (of {self.requests} requests)"


def steps_of(result: DemoResult) -> list[tuple[str, float, float]]:
    """``(name, start, end)`` of each load step: the set-up's, then each rising phase's."""
    end = result.phases[-1].end if result.phases else 0.0
    starts = [(SETUP, -math.inf)]
    starts += [(p.name, p.start) for p in result.phases if p.name in result.load_steps]
    bounds = [s for _, s in starts[1:]] + [end]
    return [(name, start, stop) for (name, start), stop in zip(starts, bounds, strict=True)]


def per_second(result: DemoResult, route: str | None) -> dict[float, Counter[int]]:
    """Per second (its start), the route's requests by edge status (``None``: unbudgeted)."""
    found: dict[float, Counter[int]] = defaultdict(Counter)
    for count in result.edge_counts:
        if route_of(result.edge_routes, count.host, count.path) == route:
            found[count.t][count.status] += count.count
    return dict(found)


def route_edge(result: DemoResult, route: str) -> RouteEdge:
    seconds = per_second(result, route)
    actions = [a for a in result.route_actions(route) if _acts(a)]
    steps = []
    for name, start, end in steps_of(result):
        acts = tuple(a for a in actions if start <= a.t < end)
        split = acts[-1].t + EVENT_RESOLUTION_SECONDS if acts else end
        # A second's 524s count before the action if the second began before it (could).
        before = sum(c[TIMEOUT_STATUS] for t, c in seconds.items() if start <= t < split)
        after = sum(c[TIMEOUT_STATUS] for t, c in seconds.items() if split <= t < end)
        steps.append(Step(name, start, end, acts, before, after))
    return RouteEdge(
        route,
        requests=sum(sum(c.values()) for c in seconds.values()),
        errors=sum(c[TIMEOUT_STATUS] for c in seconds.values()),
        steps=tuple(steps),
    )


def unbudgeted(result: DemoResult) -> dict[tuple[str, str], tuple[int, int]]:
    """Per (host, path) no route covers: (requests, 524s) the edge saw."""
    found: dict[tuple[str, str], tuple[int, int]] = {}
    for count in result.edge_counts:
        if route_of(result.edge_routes, count.host, count.path) is not None:
            continue
        requests, errors = found.get((count.host, count.path), (0, 0))
        errors += count.count if count.status == TIMEOUT_STATUS else 0
        found[(count.host, count.path)] = (requests + count.count, errors)
    return found


def render(result: DemoResult, routes: Sequence[str]) -> list[str]:
    """The summary's lines on the edge."""
    if not result.edge_counts:
        return ["Cloudflare edge: no request was reported to it"]
    lines = [
        "Cloudflare edge (524: the origin slower than the read timeout in force; each load "
        "step runs until the next, the last to the end):"
    ]
    for route in routes:
        edge = route_edge(result, route)
        lines.append(f"  {edge.headline()}")
        if edge.requests:
            lines.append(f"    {'; '.join(s.describe() for s in edge.steps)}")
    for (host, path), (requests, errors) in sorted(unbudgeted(result).items()):
        lines.append(
            f"  {host}{path} (no TimeoutBudget): {errors} 524s at the edge of {requests} requests"
        )
    if result.edge_report_errors:
        lines.append(f"  ({result.edge_report_errors} batches of requests could not be reported)")
    lines += _unbudgeted_paths(result)
    return lines


def _unbudgeted_paths(result: DemoResult) -> list[str]:
    """The CloudflareZone's ``status.edgeView.unbudgetedPaths``, as the operator wrote it."""
    found = result.unbudgeted_paths
    if found is None:
        return ["  CloudflareZone status.edgeView.unbudgetedPaths: not reported"]
    if not found:
        return ["  CloudflareZone status.edgeView.unbudgetedPaths: none"]
    lines = ["  CloudflareZone status.edgeView.unbudgetedPaths (the operator's view):"]
    for entry in found:
        p95 = entry.get("originP95Seconds")
        lines.append(
            f"    {entry.get('host')}{entry.get('path')}: {entry.get('requests')} requests, "
            f"{entry.get('errors524')} 524s, origin P95 "
            + ("—" if p95 is None else f"{float(p95):.0f}s")
        )
    return lines
