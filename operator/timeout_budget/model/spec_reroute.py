"""``spec.reroute`` of a TimeoutBudget: where the route's slow requests go when scaling is
not enough. Three kinds, alike for the ladder (``decide.rerouting``): a Service's selector
switched to the long-running pool, a dedicated hostname switched to DNS-only, and a
weighted, gradual shift on an HTTPRoute rule (the Gateway API's ``backendRefs[].weight``,
as Flagger and Argo Rollouts shift traffic)."""

from __future__ import annotations

from itertools import pairwise
from typing import Annotated, ClassVar

from pydantic import Field

from timeout_budget.model.rules import Check, Keys, Text
from timeout_budget.model.spec_base import (
    HOSTNAME,
    LABEL_KEY,
    LABEL_VALUE,
    SpecModel,
    object_name_rule,
)

SERVICE_NAME = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
SECTION_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
"""A Gateway API ``SectionName`` (an HTTPRoute rule's ``name``)."""
MAX_STEPS = 10


class LongRunningBackend(SpecModel):
    """The Service (same namespace) and port that serve long requests."""

    name: Annotated[
        str,
        Field(max_length=63),
        Text(
            SERVICE_NAME,
            "reroute.httpRoute.backend.name must be a Service name (lowercase letters, digits "
            "and '-', starting with a letter)",
        ),
    ]
    port: int = Field(ge=1, le=65535)


def _increasing(steps: list[int]) -> bool:
    return all(a < b for a, b in pairwise(steps))


class HttpRouteReroute(SpecModel):
    """Shift the rule's traffic to the long-running backend by ``backendRefs[].weight``,
    step by step while the route stays at risk, and back the same way after recovery."""

    name: Annotated[
        str, Field(max_length=253), object_name_rule("reroute.httpRoute.name", "an HTTPRoute")
    ]
    rule_name: (
        Annotated[
            str,
            Field(max_length=253),
            Text(
                SECTION_NAME,
                "reroute.httpRoute.ruleName must be the name of a rule of the HTTPRoute "
                "(lowercase letters, digits and '-', starting and ending with a letter or digit)",
            ),
        ]
        | None
    ) = None
    """The rule that carries the route; without it, the rule whose match serves the route's
    path (refused when two rules serve it alike)."""
    backend: LongRunningBackend
    steps: list[Annotated[int, Field(ge=1, le=100)]] = Field(
        default=[25, 50, 100], min_length=1, max_length=MAX_STEPS
    )
    """The long-running backend's share of the rule's traffic at each step, in percent."""
    hold_seconds: int = Field(default=60, ge=0, le=86400)
    """How long each step holds (P95 read all along) before the next one."""
    set_timeouts: bool = False
    """While shifted, the rule's ``timeouts.request`` (and a ``backendRequest`` it has) allow
    the budget; given back exactly with the weights."""

    checks: ClassVar[tuple[Check[HttpRouteReroute], ...]] = (
        Check(
            "[1, 2, 3, 4, 5, 6, 7, 8, 9].all(i, i >= size(self.steps) "
            "|| self.steps[i - 1] < self.steps[i])",
            "reroute.httpRoute.steps must increase from one step to the next",
            lambda h: _increasing(h.steps),
        ),
        Check(
            "self.steps[size(self.steps) - 1] == 100",
            "reroute.httpRoute.steps must end at 100 (the whole rule on the long-running backend)",
            lambda h: h.steps[-1] == 100,
        ),
    )


class RerouteSpec(SpecModel):
    service_name: (
        Annotated[
            str,
            Field(max_length=63),
            Text(
                r"^[a-z]([-a-z0-9]*[a-z0-9])?$",
                "reroute.serviceName must be a Service name (lowercase letters, digits and '-', "
                "starting with a letter)",
            ),
        ]
        | None
    ) = None
    long_running_selector: (
        Annotated[
            dict[
                str,
                Annotated[
                    str,
                    Field(max_length=63),
                    Text(
                        LABEL_VALUE,
                        "reroute.longRunningSelector values must be Kubernetes label values: "
                        "at most 63 letters, digits, '-', '_' and '.', starting and ending "
                        "with a letter or digit (or empty)",
                    ),
                ],
            ],
            Field(max_length=16),
            Keys(
                Text(
                    LABEL_KEY,
                    "reroute.longRunningSelector keys must be Kubernetes label keys: a name of "
                    "at most 63 letters, digits, '-', '_' and '.', starting and ending with a "
                    "letter or digit, optionally after a DNS prefix of at most 253 characters "
                    "and '/' (e.g. pool or example.com/pool)",
                    prefix_max_length=253,
                )
            ),
        ]
        | None
    ) = None
    dns_only_hostname: (
        Annotated[
            str,
            Field(max_length=253),
            Text(HOSTNAME, "reroute.dnsOnlyHostname must be a lowercase DNS hostname"),
        ]
        | None
    ) = None
    http_route: HttpRouteReroute | None = None
    """A weighted, gradual shift on the route's own HTTPRoute rule (``actions.weights``)."""
    after_evaluations: int = Field(default=3, ge=1, le=100)
    recovery_seconds: int = Field(default=300, ge=0, le=86400)

    checks: ClassVar[tuple[Check[RerouteSpec], ...]] = (
        Check(
            "has(self.serviceName) || has(self.dnsOnlyHostname) || has(self.httpRoute)",
            "reroute needs serviceName (with longRunningSelector), dnsOnlyHostname or httpRoute",
            lambda r: (
                r.service_name is not None
                or r.dns_only_hostname is not None
                or r.http_route is not None
            ),
        ),
        Check(
            "has(self.serviceName) == has(self.longRunningSelector)",
            "reroute.serviceName and reroute.longRunningSelector go together",
            lambda r: (r.service_name is None) == (r.long_running_selector is None),
        ),
    )
