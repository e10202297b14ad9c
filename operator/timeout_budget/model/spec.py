"""Typed views of the two custom resources' specs.

The CRD schemas in ``crds/`` are the source of truth and the API server enforces them;
these models parse a resource body (camelCase, defaults already applied by the API
server) into typed objects before any I/O, and apply the same defaults when a body
comes from somewhere else (unit tests, dry runs).
"""

from __future__ import annotations

from typing import Any, Literal, NewType

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

ZoneId = NewType("ZoneId", str)
RouteKey = NewType("RouteKey", str)
"""``namespace/name`` of a TimeoutBudget: the identity of a route inside the operator."""

DEFAULT_BUDGET_SECONDS = 120
"""Cloudflare's default Proxy Read Timeout (Error 524 page)."""
MAX_EDGE_TIMEOUT_SECONDS = 6000
"""The most any Cloudflare plan allows (Enterprise)."""


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore"
    )


class Route(_Model):
    host: str
    path_prefix: str = "/"


class Budget(_Model):
    timeout_seconds: int | None = Field(default=None, ge=1, le=MAX_EDGE_TIMEOUT_SECONDS)
    at_risk_ratio: float = Field(default=0.8, ge=0.1, le=1)
    recover_ratio: float = Field(default=0.6, ge=0.05, le=0.95)
    required_seconds: int | None = Field(default=None, ge=1, le=MAX_EDGE_TIMEOUT_SECONDS)

    @model_validator(mode="after")
    def _hysteresis(self) -> Budget:
        if self.recover_ratio >= self.at_risk_ratio:
            raise ValueError("budget.recoverRatio must be lower than budget.atRiskRatio")
        return self


class Matcher(_Model):
    label: str
    operator: Literal["=", "!=", "=~", "!~"] = "="
    value: str


class Latency(_Model):
    metric: str | None = None
    selector: dict[str, str] = Field(default_factory=dict)
    matchers: tuple[Matcher, ...] = ()
    quantile: float = Field(default=0.95, gt=0, lt=1)
    window: str = "5m"
    query: str | None = None
    signal: Literal["ttfb", "total"] = "ttfb"

    @model_validator(mode="after")
    def _metric_or_query(self) -> Latency:
        if (self.metric is None) == (self.query is None):
            raise ValueError("latency needs exactly one of metric or query")
        return self


class Origin(_Model):
    deployment_name: str
    min_replicas: int = Field(default=1, ge=1)
    max_replicas: int = Field(default=10, ge=1)
    scale_up_step: int = Field(default=2, ge=1)
    scale_up_cooldown_seconds: int = Field(default=60, ge=0)
    scale_down_stabilization_seconds: int = Field(default=300, ge=0)

    @model_validator(mode="after")
    def _bounds(self) -> Origin:
        if self.min_replicas > self.max_replicas:
            raise ValueError("origin.minReplicas must be <= origin.maxReplicas")
        return self


class Reroute(_Model):
    service_name: str | None = None
    long_running_selector: dict[str, str] | None = None
    dns_only_hostname: str | None = None
    after_evaluations: int = Field(default=3, ge=1)
    recovery_seconds: int = Field(default=300, ge=0)


class ZoneRef(_Model):
    name: str


class Edge(_Model):
    zone_ref: ZoneRef
    sync: bool = True


class TimeoutBudgetSpec(_Model):
    route: Route
    budget: Budget = Field(default_factory=Budget)
    latency: Latency
    origin: Origin
    reroute: Reroute | None = None
    edge: Edge | None = None
    paused: bool = False
    dry_run: bool = False

    def budget_seconds(self, zone_timeout: int | None) -> int:
        """The budget in force: the spec's, else the zone's effective timeout, else 120."""
        if self.budget.timeout_seconds is not None:
            return self.budget.timeout_seconds
        return zone_timeout if zone_timeout is not None else DEFAULT_BUDGET_SECONDS


class SecretKeyRef(_Model):
    name: str
    key: str = "token"


class CloudflareZoneSpec(_Model):
    zone_id: ZoneId
    api_token_secret_ref: SecretKeyRef
    proxy_read_timeout_seconds: int | None = Field(default=None, ge=1, le=6000)
    api_request_budget: int = Field(default=600, ge=10, le=1200)
    sync_interval_seconds: int = Field(default=300, ge=30)


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
