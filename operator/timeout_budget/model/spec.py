"""Typed views of the two custom resources' specs.

The CRD schemas in ``crds/`` are what the API server enforces; these models parse a
resource body (camelCase, defaults already applied by the API server) into typed objects
before any I/O, apply the same defaults when a body comes from somewhere else (unit tests,
dry runs), and refuse what the CRD refuses, with the CRD's messages: the same bounds, the
same patterns (``rules.Text``) and the same rules across fields (``rules.Check``).
``tests/unit/test_crd_model_agreement.py`` fails on any bound found on one side only. The
patterns, the shared rules and the base model are in ``spec_base``.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, NewType

from pydantic import BaseModel, Field

from timeout_budget.model.rules import Check, Keys, Text
from timeout_budget.model.spec_base import (
    HOSTNAME,
    PROMETHEUS_LABEL,
    PROMETHEUS_METRIC,
    SpecModel,
    fraction_rule,
    object_name_rule,
)
from timeout_budget.model.spec_chain import Chain
from timeout_budget.model.spec_reroute import RerouteSpec

ZoneId = NewType("ZoneId", str)
RouteKey = NewType("RouteKey", str)
"""``namespace/name`` of a TimeoutBudget: the identity of a route inside the operator."""

DEFAULT_BUDGET_SECONDS = 120
"""Cloudflare's default Proxy Read Timeout (Error 524 page)."""
MAX_EDGE_TIMEOUT_SECONDS = 6000
"""The most any Cloudflare plan allows (Enterprise)."""


DeploymentName = Annotated[
    str, Field(max_length=253), object_name_rule("origin.deploymentName", "a Deployment")
]
ZoneName = Annotated[
    str, Field(max_length=253), object_name_rule("edge.zoneRef.name", "a CloudflareZone")
]
SecretName = Annotated[
    str, Field(max_length=253), object_name_rule("apiTokenSecretRef.name", "a Secret")
]


HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
"""A method a route serves. Cloudflare caches only GET (HEAD as GET at the origin), so a
Cache Rule's read timeout covers GET and HEAD only; the others keep the zone's timeout."""
CACHEABLE_METHODS: frozenset[str] = frozenset({"GET", "HEAD"})


class RouteSpec(SpecModel):
    host: Annotated[
        str,
        Field(max_length=253),
        Text(
            HOSTNAME,
            "route.host must be a lowercase DNS hostname such as api.example.com (letters, "
            "digits, '-' and '.', at least one dot; no scheme, port, path or wildcard)",
        ),
    ]
    path_prefix: Annotated[
        str,
        Field(max_length=512),
        Text(
            r"^/([A-Za-z0-9._~!$&()*+,;=:@/-]|%[0-9A-Fa-f]{2})*$",
            "route.pathPrefix must start with '/' and contain only URL path characters (no "
            "quotes, backslashes, spaces or query string; '%' only as an escape such as %20)",
        ),
    ] = "/"
    methods: tuple[HttpMethod, ...] = Field(default=("GET", "HEAD"), min_length=1, max_length=7)

    checks: ClassVar[tuple[Check[RouteSpec], ...]] = (
        Check(
            "self.methods.all(m, self.methods.exists_one(x, x == m))",
            "route.methods must not name a method twice",
            lambda r: len(set(r.methods)) == len(r.methods),
        ),
    )


class Budget(SpecModel):
    timeout_seconds: int | None = Field(default=None, ge=1, le=MAX_EDGE_TIMEOUT_SECONDS)
    at_risk_ratio: Annotated[float, fraction_rule("budget.atRiskRatio", 0.1, 1)] = Field(
        default=0.8, ge=0.1, le=1
    )
    recover_ratio: Annotated[float, fraction_rule("budget.recoverRatio", 0.05, 0.95)] = Field(
        default=0.6, ge=0.05, le=0.95
    )
    required_seconds: int | None = Field(default=None, ge=1, le=MAX_EDGE_TIMEOUT_SECONDS)

    checks: ClassVar[tuple[Check[Budget], ...]] = (
        Check(
            "self.recoverRatio < self.atRiskRatio",
            "budget.recoverRatio must be lower than budget.atRiskRatio (hysteresis, e.g. 0.6 "
            "and 0.8)",
            lambda b: b.recover_ratio < b.at_risk_ratio,
        ),
        Check(
            "!has(self.requiredSeconds) || !has(self.timeoutSeconds) || "
            "self.requiredSeconds <= self.timeoutSeconds",
            "budget.requiredSeconds cannot exceed budget.timeoutSeconds; raise timeoutSeconds "
            "(at most 6000) or leave it unset",
            lambda b: (
                b.required_seconds is None
                or b.timeout_seconds is None
                or b.required_seconds <= b.timeout_seconds
            ),
        ),
    )


class Matcher(SpecModel):
    label: Annotated[
        str,
        Field(max_length=128),
        Text(
            PROMETHEUS_LABEL,
            "matcher label must be a Prometheus label name (letters, digits and '_', not "
            "starting with a digit or '__')",
            not_prefix="__",
        ),
    ]
    operator: Literal["=", "!=", "=~", "!~"] = "="
    value: str = Field(max_length=1024)


class Latency(SpecModel):
    metric: (
        Annotated[
            str,
            Field(max_length=200),
            Text(
                PROMETHEUS_METRIC,
                "latency.metric must be a Prometheus metric name (letters, digits, '_' and ':') "
                "without the _bucket suffix",
                not_suffix="_bucket",
            ),
        ]
        | None
    ) = None
    selector: Annotated[
        dict[str, Annotated[str, Field(max_length=1024)]],
        Field(max_length=16),
        Keys(
            Text(
                PROMETHEUS_LABEL,
                "latency.selector keys must be Prometheus label names (letters, digits and '_', "
                "not starting with a digit or '__')",
                not_prefix="__",
            )
        ),
    ] = Field(default_factory=dict)
    matchers: tuple[Matcher, ...] = Field(default=(), max_length=16)
    quantile: float = Field(default=0.95, gt=0, lt=1)
    window: Annotated[
        str,
        Field(max_length=16),
        Text(
            r"^[1-9][0-9]*(s|m|h)$",
            "latency.window must be a duration like 30s, 5m or 1h (a whole number followed by "
            "s, m or h)",
        ),
    ] = "5m"
    query: str | None = Field(default=None, max_length=4096)
    signal: Literal["ttfb", "total"] = "ttfb"

    checks: ClassVar[tuple[Check[Latency], ...]] = (
        Check(
            "has(self.metric) || has(self.query)",
            "latency needs either metric (a histogram name) or query (a full PromQL override)",
            lambda lat: lat.metric is not None or lat.query is not None,
        ),
        Check(
            "!(has(self.metric) && has(self.query))",
            "latency.metric and latency.query are exclusive; set one",
            lambda lat: lat.metric is None or lat.query is None,
        ),
    )


class Origin(SpecModel):
    deployment_name: DeploymentName
    min_replicas: int = Field(default=1, ge=1, le=10000)
    max_replicas: int = Field(default=10, ge=1, le=10000)
    scale_up_step: int = Field(default=2, ge=1, le=1000)
    scale_up_cooldown_seconds: int = Field(default=60, ge=0, le=3600)
    scale_down_stabilization_seconds: int = Field(default=300, ge=0, le=86400)

    checks: ClassVar[tuple[Check[Origin], ...]] = (
        Check(
            "self.minReplicas <= self.maxReplicas",
            "origin.minReplicas must be less than or equal to origin.maxReplicas",
            lambda o: o.min_replicas <= o.max_replicas,
        ),
    )


class ZoneRef(SpecModel):
    name: ZoneName


class Edge(SpecModel):
    zone_ref: ZoneRef
    sync: bool = True


class TimeoutBudgetSpec(SpecModel):
    route: RouteSpec
    budget: Budget = Field(default_factory=Budget)
    latency: Latency
    origin: Origin
    reroute: RerouteSpec | None = None
    edge: Edge | None = None
    chain: Chain | None = None
    paused: bool = False
    dry_run: bool = False

    checks: ClassVar[tuple[Check[TimeoutBudgetSpec], ...]] = (
        Check(
            "!has(self.budget.requiredSeconds) || has(self.edge)",
            "budget.requiredSeconds needs edge.zoneRef, since the edge read timeout is what "
            "allows a long route",
            lambda s: s.budget.required_seconds is None or s.edge is not None,
        ),
        Check(
            "!has(self.reroute) || !has(self.reroute.httpRoute) "
            "|| !self.reroute.httpRoute.setTimeouts || !has(self.chain) "
            "|| !has(self.chain.sync) || !has(self.chain.sync.httpRouteName) "
            "|| self.chain.sync.httpRouteName != self.reroute.httpRoute.name",
            "reroute.httpRoute.setTimeouts and chain.sync.httpRouteName would both set the "
            "timeouts of the same HTTPRoute: keep one of them",
            lambda s: not _both_set_rule_timeouts(s),
        ),
    )

    def budget_seconds(self, zone_timeout: int | None) -> int:
        """The budget in force: the spec's, else the zone's effective timeout, else 120."""
        if self.budget.timeout_seconds is not None:
            return self.budget.timeout_seconds
        return zone_timeout if zone_timeout is not None else DEFAULT_BUDGET_SECONDS


class SecretKeyRef(SpecModel):
    name: SecretName
    key: str = Field(default="token", max_length=253)


class RaiseProxyReadTimeout(SpecModel):
    """The opt-in for the zone-wide raise: a Cache Rule's read timeout covers only what
    Cloudflare could cache (GET/HEAD), so a route serving POST and friends is covered at
    the edge only by the zone's ``proxy_read_timeout``. With this on, the operator raises
    it (up to ``ceilingSeconds``) while a route of the zone needs more, and gives the value
    it found back afterwards. It raises every route of the zone, hence the explicit
    opt-in and the ceiling."""

    enabled: bool = False
    ceiling_seconds: int = Field(ge=1, le=MAX_EDGE_TIMEOUT_SECONDS)


class Analytics(SpecModel):
    """Reading Cloudflare's GraphQL Analytics for the zone (``decide.edge_view``)."""

    enabled: bool = True
    interval_seconds: int = Field(default=300, ge=10, le=86400)
    delay_seconds: int = Field(default=300, ge=0, le=3600)
    agreement_fraction: Annotated[float, fraction_rule("analytics.agreementFraction", 0.05, 1)] = (
        Field(default=0.25, ge=0.05, le=1)
    )
    near_fraction: Annotated[float, fraction_rule("analytics.nearFraction", 0.1, 1)] = Field(
        default=0.8, ge=0.1, le=1
    )


class CloudflareZoneSpec(SpecModel):
    zone_id: Annotated[
        ZoneId,
        Field(max_length=32),
        Text(
            r"^[0-9a-f]{32}$",
            "zoneId must be the 32-character hexadecimal Cloudflare zone id (not the domain name)",
        ),
    ]
    api_token_secret_ref: SecretKeyRef
    proxy_read_timeout_seconds: int | None = Field(default=None, ge=1, le=6000)
    raise_proxy_read_timeout: RaiseProxyReadTimeout | None = None
    api_request_budget: int = Field(default=600, ge=10, le=1200)
    sync_interval_seconds: int = Field(default=300, ge=30, le=86400)
    analytics: Analytics = Field(default_factory=Analytics)


def parse_timeout_budget(spec: dict[str, Any]) -> TimeoutBudgetSpec:
    parsed = TimeoutBudgetSpec.model_validate(spec)
    _share_fields_sets(parsed)
    return parsed


_FIELDS_SETS: dict[frozenset[str], set[str]] = {}


def _share_fields_sets(model: BaseModel) -> None:
    """Every pydantic model keeps its own set of the fields the input gave; a spec is five
    or more models, so 10,000 routes held ~50,000 such sets (~16 MB, counted with
    ``gc.get_objects``). The models are frozen, so those sets never change in place
    (pydantic's ``model_copy`` copies the set before it adds to it): equal sets are
    shared instead, a handful for all routes."""
    fields = model.__pydantic_fields_set__
    shared = _FIELDS_SETS.setdefault(frozenset(fields), set(fields))
    object.__setattr__(model, "__pydantic_fields_set__", shared)
    for value in model.__dict__.values():
        children = value if isinstance(value, tuple) else (value,)
        for child in children:
            if isinstance(child, BaseModel):
                _share_fields_sets(child)


def parse_cloudflare_zone(spec: dict[str, Any]) -> CloudflareZoneSpec:
    return CloudflareZoneSpec.model_validate(spec)


def route_key(namespace: str, name: str) -> RouteKey:
    return RouteKey(f"{namespace}/{name}")


def _both_set_rule_timeouts(s: TimeoutBudgetSpec) -> bool:
    shift = s.reroute.http_route if s.reroute is not None else None
    sync = s.chain.sync if s.chain is not None else None
    return (
        shift is not None
        and shift.set_timeouts
        and sync is not None
        and sync.http_route_name == shift.name
    )
