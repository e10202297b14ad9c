"""What one demo run recorded: the result the demo returns and its tests inspect.

The demo's claims (P95 back under the line after a scale-up, a reroute only at max
replicas, nothing released while Prometheus is down, everything restored on delete) are
checked on this data, not on printed text: one ``RouteSample`` per route per second, one
``ActionRecord`` per Kubernetes Event the operator posted, the phases and outages as time
spans, the Cloudflare Cache Rules seen in the emulator, and what deletion left behind.
Times are seconds since the scenario started (set-up is negative).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any


class ActionKind(StrEnum):
    SCALE_UP = "scale up"
    SCALE_DOWN = "scale down"
    REROUTE = "reroute"
    UNDO = "undo reroute"
    EDGE = "edge timeout"
    FAILED = "failed"
    REFUSED = "refused"
    OTHER = "other"


MARKED = (ActionKind.SCALE_UP, ActionKind.SCALE_DOWN, ActionKind.REROUTE, ActionKind.UNDO,
          ActionKind.EDGE)  # fmt: skip
"""The kinds that change something: what the summary counts and the plot marks."""


@dataclass(frozen=True)
class Span:
    name: str
    start: float
    end: float

    def contains(self, t: float) -> bool:
        return self.start <= t <= self.end

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class RouteSample:
    """One route as the demo saw it at ``t``: the operator's status and the world around."""

    t: float
    route: str
    phase: str
    p95: float | None
    """The operator's reading (``status.p95Seconds``); ``None`` without data."""
    budget: float | None
    at_risk_line: float | None
    recover_line: float | None
    ratio: float | None
    state: str
    replicas: int
    """Ready pods of the route's own Deployment."""
    spec_replicas: int
    max_replicas: int
    hpa_min_replicas: int | None
    serving_pool: str
    """The pool the route's requests go to (its Service's selector decides)."""
    serving_ready: int
    rps: float
    model_p95: float
    """What the synthetic origin serves right now (ground truth, before Prometheus)."""
    edge_timeout: int | None
    """The read timeout in force at Cloudflare for the route (its Cache Rule, else the zone's)."""
    last_action: str
    prometheus_up: bool
    release_seconds: float | None = None
    """How long P95 must stay below the recover line before the operator undoes a reroute or
    lowers an edge raise (``decide.timers.release_window``): where an at-risk episode ends."""
    edge_coverage: str = ""
    chain: str = ""
    """The inner hops of ``status.chain`` in a table cell: ``ingress-nginx 60s FiresFirst``."""
    """What covers the route's methods at the edge, from ``status.edgeCoverage``
    (``GET rule 301s · POST none 120s``); empty before the operator has said."""
    long_share: int | None = None
    """For a route with a weighted reroute: the percent of its HTTPRoute rule's traffic on
    the long-running backend, as the demo read it (``None``: the route has none)."""


@dataclass(frozen=True)
class EdgeCount:
    """Requests the Cloudflare edge answered with ``status`` in the second from ``t``."""

    t: float
    host: str
    path: str
    method: str
    status: int
    count: int


@dataclass(frozen=True)
class ActionRecord:
    t: float
    route: str
    kind: ActionKind
    reason: str
    """The Kubernetes Event's reason (``Scaled``, ``Rerouted``, ``RerouteUndone``...)."""
    message: str
    replicas: int | None = None
    """For a scale action: the replicas (or HPA minReplicas) asked for."""

    @property
    def what(self) -> str:
        """The message's first clause: what was done, without the why."""
        return self.message.split(": ", 1)[0]


_SCALE_TO = re.compile(r"scale Deployment \S+ to (\d+)")


def action_from_event(event: Mapping[str, Any], t: float) -> ActionRecord:
    reason = str(event.get("reason", ""))
    message = str(event.get("message", ""))
    route = str(event.get("involvedObject", {}).get("name", ""))
    match = _SCALE_TO.search(message)
    replicas = int(match.group(1)) if match else None
    kind = {
        "Rerouted": ActionKind.REROUTE,
        "RerouteUndone": ActionKind.UNDO,
        "EdgeTimeoutSet": ActionKind.EDGE,
        "ActionFailed": ActionKind.FAILED,
        "Refused": ActionKind.REFUSED,
    }.get(reason, ActionKind.OTHER)
    if reason == "Scaled":
        kind = ActionKind.SCALE_DOWN if "scaling down" in message else ActionKind.SCALE_UP
    return ActionRecord(t, route, kind, reason, message, replicas)


@dataclass(frozen=True)
class Restoration:
    """What deleting the TimeoutBudgets left behind (the finalizer's work)."""

    deleted: bool
    """All TimeoutBudgets went away (their finalizers finished)."""
    service_selectors: Mapping[str, Mapping[str, str]]
    hpa_min_replicas: Mapping[str, int]
    operator_annotations: Mapping[str, list[str]]
    """Per object (``kind/name``), the operator's annotations still on it."""
    operator_rules: Sequence[Mapping[str, Any]]
    """Cache Rules the operator created that are still in the emulator."""
    problems: list[str] = field(default_factory=list)
    """What is not as it was before the demo; empty when everything was restored."""

    @property
    def ok(self) -> bool:
        return self.deleted and not self.problems


@dataclass
class DemoResult:
    scenario: str
    interval_seconds: float
    samples: list[RouteSample] = field(default_factory=list)
    actions: list[ActionRecord] = field(default_factory=list)
    phases: list[Span] = field(default_factory=list)
    outages: list[Span] = field(default_factory=list)
    edge_rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per route, the operator's Cache Rule as last seen in the emulator during the run."""
    edge_rules_seen: dict[str, set[int]] = field(default_factory=dict)
    """Per route, every ``read_timeout`` its Cache Rule had during the run."""
    restoration: Restoration | None = None
    httproutes_at_end: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The weighted routes' HTTPRoutes by name, as read at the end of the scenario (before
    the TimeoutBudgets are deleted)."""
    shift_restored: dict[str, list[str]] = field(default_factory=dict)
    """Per HTTPRoute of a weighted route, what was not as the manifest had it at the end
    of the scenario (``demo_shift.rules_restored``); empty: restored exactly."""
    edge_counts: list[EdgeCount] = field(default_factory=list)
    """What the edge answered, per second, by host, path, method and status, from set-up
    to the end of the scenario (the emulator's ``/edge-requests/summary``)."""
    edge_routes: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Per route, its host and path prefix: which of the edge's requests are its."""
    load_steps: list[str] = field(default_factory=list)
    """The phases whose load rises (``Scenario.load_steps``): where ``demo_edge`` splits."""
    edge_report_errors: int = 0
    """Batches of requests the origin could not report to the edge (dropped)."""
    unbudgeted_paths: list[dict[str, Any]] | None = None
    """The CloudflareZone's ``status.edgeView.unbudgetedPaths`` at the end of the scenario
    (``None``: the operator does not report it)."""
    plots: dict[str, Path] = field(default_factory=dict)
    summary_text: str = ""
    interrupted: bool = False
    setup_seconds: float = 0.0
    kubeconfig: Path | None = None
    workdir: Path | None = None
    wall0: float = 0.0
    """The epoch time of the scenario's t=0."""

    def route_samples(self, route: str) -> list[RouteSample]:
        return [s for s in self.samples if s.route == route]

    def route_actions(
        self, route: str, kinds: Iterable[ActionKind] | None = None
    ) -> list[ActionRecord]:
        wanted = set(kinds) if kinds is not None else None
        return [
            a for a in self.actions if a.route == route and (wanted is None or a.kind in wanted)
        ]

    def phase(self, name: str) -> Span:
        return next(p for p in self.phases if p.name == name)

    def routes(self) -> list[str]:
        return list(dict.fromkeys(s.route for s in self.samples))
