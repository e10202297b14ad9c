"""The changes the policy ladder may ask for, each carrying the reason a person can read.

The pure core says *what* should be true and *why*; the apply step makes it true. An action
names its target and desired value, never how to reach it: ``ScaleTo`` does not know whether
the scale subresource or an HPA is patched beyond its ``via_hpa`` flag, ``Reroute`` does not
know the original Service selector (that lives in an annotation on the Service, written by
the apply step), ``EdgeTimeout`` does not know the ruleset. Actions are desired values, so
the diff step can drop the ones the world already matches, and applying one twice is
harmless.

A ``Refusal`` is something the route would need that the operator will not or cannot do
(the zone's plan does not allow a longer read timeout, a DNS-only reroute without a zone),
with the reason: the apply step turns it into a Warning event, status into a message.

Each action declares what the rest of the operator needs to know of its kind, so no step
dispatches on its type: ``kind`` (the metric label's family and the refusals' kind),
``event_reason`` (the Kubernetes Event), ``metric_label`` and ``at_edge`` (made by the
zone's batched Cloudflare writer rather than executed against the cluster). How each is
executed and undone lives in ``actions.kinds``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

MIN_ROUTE_READ_TIMEOUT_SECONDS = 100
"""The least a Cache Rule ``read_timeout`` may be (Terraform validates 100..6000)."""


class ActionKind(StrEnum):
    """The kinds of change the ladder asks for (the ``action`` metric label's family)."""

    SCALE = "scale"
    REROUTE = "reroute"
    EDGE_TIMEOUT = "edge_timeout"
    HOP_TIMEOUT = "hop_timeout"


class RerouteVia(StrEnum):
    SERVICE = "Service"
    """Switch a Service's selector to the long-running pool."""
    DNS_ONLY = "DnsOnly"
    """Set a dedicated hostname's DNS records to DNS-only (grey cloud)."""
    HTTPROUTE = "HTTPRoute"
    """Shift an HTTPRoute rule's weight to the long-running backend, step by step."""


@dataclass(frozen=True, order=True)
class RerouteTarget:
    via: RerouteVia
    name: str
    """The Service name, the DNS-only hostname, or the HTTPRoute name."""

    def describe(self) -> str:
        if self.via is RerouteVia.SERVICE:
            return f"Service {self.name}"
        if self.via is RerouteVia.HTTPROUTE:
            return f"HTTPRoute {self.name}"
        return f"DNS-only hostname {self.name}"


@dataclass(frozen=True)
class ScaleTo:
    """Desired replicas: the HPA's ``minReplicas`` when ``via_hpa``, else ``spec.replicas``."""

    deployment: str
    replicas: int
    via_hpa: bool
    reason: str
    restores_baseline: bool = False
    """True when this gives back the last replica the operator added: the apply step may then
    forget the original value it remembered in an annotation."""

    kind: ClassVar[ActionKind] = ActionKind.SCALE
    at_edge: ClassVar[bool] = False

    @property
    def event_reason(self) -> str:
        return "Scaled"

    @property
    def metric_label(self) -> str:
        return "scale"

    def describe(self) -> str:
        knob = "HPA minReplicas" if self.via_hpa else "replicas"
        return f"scale Deployment {self.deployment} to {self.replicas} ({knob})"


@dataclass(frozen=True)
class Reroute:
    """Desired reroute of one target: in force (``apply``) or restored (undo)."""

    target: RerouteTarget
    apply: bool
    reason: str
    percent: int | None = None
    """For an HTTPRoute (``apply``): the long-running backend's share of the rule's traffic
    at this step; the other kinds switch all at once."""
    rule_timeout_seconds: int | None = None
    """For an HTTPRoute with ``setTimeouts``: what the rule's timeouts must allow."""

    kind: ClassVar[ActionKind] = ActionKind.REROUTE

    @property
    def at_edge(self) -> bool:
        """A DNS-only hostname is switched by the zone's writer, a Service in the cluster."""
        return self.target.via is RerouteVia.DNS_ONLY

    @property
    def event_reason(self) -> str:
        return "Rerouted" if self.apply else "RerouteUndone"

    @property
    def metric_label(self) -> str:
        return "reroute" if self.apply else "undo_reroute"

    def describe(self) -> str:
        verb = "reroute" if self.apply else "undo reroute of"
        share = f" ({self.percent}% to the long-running backend)" if self.percent else ""
        return f"{verb} {self.target.describe()}{share}"


@dataclass(frozen=True)
class EdgeTimeout:
    """Desired Cloudflare read timeout of the route's own Cache Rule.

    ``seconds`` is within ``MIN_ROUTE_READ_TIMEOUT_SECONDS..6000`` (and the plan's maximum);
    ``None`` means the route needs no rule of its own (the zone's timeout is enough), so a
    rule the operator created earlier should go.
    """

    host: str
    path_prefix: str
    seconds: int | None
    reason: str

    kind: ClassVar[ActionKind] = ActionKind.EDGE_TIMEOUT
    at_edge: ClassVar[bool] = True

    @property
    def event_reason(self) -> str:
        return "EdgeTimeoutSet"

    @property
    def metric_label(self) -> str:
        return "edge_timeout"

    def describe(self) -> str:
        route = f"{self.host}{self.path_prefix}"
        if self.seconds is None:
            return f"remove the read timeout rule of {route}"
        return f"set the edge read timeout of {route} to {self.seconds}s"


class _HopInLine:
    """What both ``chain.sync`` changes declare: set (``seconds``) or give back (``None``)."""

    seconds: int | None

    kind: ClassVar[ActionKind] = ActionKind.HOP_TIMEOUT
    at_edge: ClassVar[bool] = False

    @property
    def event_reason(self) -> str:
        return "HopTimeoutSet" if self.seconds is not None else "HopTimeoutRestored"

    @property
    def metric_label(self) -> str:
        return "hop_timeout" if self.seconds is not None else "undo_hop_timeout"


@dataclass(frozen=True)
class HopTimeout(_HopInLine):
    """Desired read timeout of an inner hop (``chain.sync``): the ingress-nginx
    ``proxy-read-timeout`` annotation of the Ingress the route names; ``seconds=None``
    gives back the value it had before the operator raised it."""

    ingress: str
    seconds: int | None
    reason: str

    def describe(self) -> str:
        if self.seconds is None:
            return f"give back the proxy-read-timeout of Ingress {self.ingress}"
        return f"set the proxy-read-timeout of Ingress {self.ingress} to {self.seconds}s"


@dataclass(frozen=True)
class RuleTimeout(_HopInLine):
    """Desired ``timeouts`` of the HTTPRoute rule serving the route (``chain.sync``):
    ``request`` (and a shorter ``backendRequest``) at ``seconds``; ``None`` gives back the
    rule's own timeouts."""

    httproute: str
    rule: str
    """The rule's name, or its index where it has none."""
    seconds: int | None
    reason: str

    def describe(self) -> str:
        where = f"HTTPRoute {self.httproute} rule {self.rule}"
        if self.seconds is None:
            return f"give back the timeouts of {where}"
        return f"set the timeouts of {where} to {self.seconds}s"


Action = ScaleTo | Reroute | EdgeTimeout | HopTimeout | RuleTimeout


@dataclass(frozen=True)
class Refusal:
    kind: ActionKind
    """The kind of change refused (counted by it in the metrics)."""
    action: str
    """What was wanted, in words: "switch api-direct.example.com to DNS-only"."""
    reason: str

    def describe(self) -> str:
        return f"cannot {self.action}: {self.reason}"
