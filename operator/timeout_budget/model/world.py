"""What the observe step found around one route, besides its latency: the facts the ladder
decides on and the diff compares with.

Everything here is read from the world each evaluation (never remembered), so a change made
by someone else — a person scaling the Deployment, an HPA moving replicas, a Service selector
put back by hand — is seen on the next evaluation. The observe step fills it; tests build it
by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

from timeout_budget.model.actions import RerouteTarget
from timeout_budget.model.chain import Hop
from timeout_budget.model.observation import LatencyObservation
from timeout_budget.model.spec import MAX_EDGE_TIMEOUT_SECONDS


@dataclass(frozen=True, slots=True)
class Hpa:
    """An autoscaling/v2 HPA that targets the origin Deployment and so owns its replicas."""

    name: str
    min_replicas: int
    max_replicas: int


@dataclass(frozen=True, slots=True)
class ScaleObservation:
    spec_replicas: int
    """The Deployment's ``spec.replicas`` (with an HPA: the HPA's current choice)."""
    ready_replicas: int
    hpa: Hpa | None = None
    baseline_replicas: int | None = None
    """What the operator found before its first scale-up, read back from its annotation on
    the Deployment (or the HPA's original ``minReplicas``). ``None``: the operator has added
    nothing, so it has nothing to give back and never scales down."""


@dataclass(frozen=True, slots=True)
class EdgeObservation:
    """The zone's Cloudflare state as far as this route is concerned."""

    zone_timeout_seconds: int
    """The zone's effective Proxy Read Timeout."""
    editable: bool
    """Whether the zone's plan lets the read timeout be changed (Cloudflare's ``editable``)."""
    max_timeout_seconds: int = MAX_EDGE_TIMEOUT_SECONDS
    """The longest read timeout the plan allows."""
    route_timeout_seconds: int | None = None
    """The read timeout of the route's own Cache Rule (created by the operator), if any."""
    route_rule_overridden: bool = False
    """A later foreign Cache Rule (a bypass, its own read timeout) takes the route's rule
    away from its requests: the rule is there as wanted, but not in force."""
    zone_raised_seconds: int | None = None
    """The zone's ``proxy_read_timeout`` while the operator holds it raised (for methods a
    Cache Rule cannot cover); ``zone_timeout_seconds`` is then the value it gives back."""
    zone_raise_ceiling_seconds: int | None = None
    """How far the operator may raise the zone's timeout (the CloudflareZone's opt-in on an
    editable zone); ``None``: no raise allowed."""
    tunnel: str | None = None
    """For a route checking its chain: the Cloudflare Tunnel (``<id>.cfargotunnel.com``)
    its host's DNS record points at; ``""``: none; ``None``: not known."""

    @property
    def in_force_seconds(self) -> int:
        """The read timeout Cloudflare applies to this route right now."""
        if self.route_timeout_seconds is not None and not self.route_rule_overridden:
            return self.route_timeout_seconds
        return self.zone_timeout_seconds


@dataclass(frozen=True, slots=True)
class RouteObservation:
    latency: LatencyObservation
    scale: ScaleObservation
    rerouted: frozenset[RerouteTarget] = frozenset()
    """Targets found rerouted by the operator (its annotation present and in force)."""
    edge: EdgeObservation | None = None
    """``None`` when the route has no zone or the zone's state is not known yet."""
    edge_unread: bool = False
    """The route's zone has not been read by this process yet (a start, a shard taken
    over; ``cycle.ports.EdgeSync.unread``): its edge changes wait for that read."""
    shift_percent: int | None = None
    """The weighted reroute's share in force on the HTTPRoute rule, as the operator last
    wrote it (``None``: not shifted)."""
    shift_changed: str | None = None
    """What someone else changed in the shifted rule since the operator wrote it."""
    chain: tuple[Hop, ...] = ()
    """The hops in front of the origin the cluster tells (its Ingress), when the spec asks
    for the chain (``spec.chain``); ``decide.chain`` judges them."""
