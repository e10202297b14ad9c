"""Helpers for the edge-sync integration tests: specs, one engine-like cycle, clocks.

The tests drive ``ZoneRegistry`` through the real ``cloudflare`` SDK against the sandbox's
Cloudflare emulator, the way the engine and the CloudflareZone handlers do: the handlers
call ``reconcile_zone``; each cycle the engine calls ``observe``/``rerouted`` for every
route, ``apply`` for the routes with edge changes, then ``flush`` once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sandbox.cloudflare_emulator import CloudflareEmulator, ManualClock
from timeout_budget.decide import diff
from timeout_budget.edge import ZoneRegistry
from timeout_budget.model.actions import Action, EdgeTimeout, Reroute, RerouteTarget, RerouteVia
from timeout_budget.model.observation import LatencyObservation
from timeout_budget.model.spec import (
    CloudflareZoneSpec,
    RouteKey,
    TimeoutBudgetSpec,
    parse_cloudflare_zone,
    parse_timeout_budget,
)
from timeout_budget.model.world import RouteObservation, ScaleObservation

T = TypeVar("T")

TOKEN = "tbo-test-token-7f3a9c"  # distinctive, so a leak is easy to find
NS = "shop"
ZONE = "edge"
T0 = 1_780_000_000.0
PHASE_PATH = "/rulesets/phases/http_request_cache_settings/entrypoint"

CREDENTIAL_ENV = (
    "CLOUDFLARE_EMAIL",
    "CLOUDFLARE_API_KEY",
    "CLOUDFLARE_API_USER_SERVICE_KEY",
    "CLOUDFLARE_API_TOKEN",
    "CLOUDFLARE_BASE_URL",
)


def zone_spec(zone_id: str, **fields: Any) -> CloudflareZoneSpec:
    """A zone's spec; its analytics are off unless ``fields`` give ``analytics``: the
    REST tests count every request, and a GraphQL query counts against the same budget
    (tests/integration/test_edge_analytics.py covers analytics)."""
    return parse_cloudflare_zone(
        {
            "zoneId": zone_id,
            "apiTokenSecretRef": {"name": "cf", "key": "token"},
            "analytics": {"enabled": False},
            **fields,
        }
    )


def route_spec(
    host: str = "api.example.com",
    path: str = "/export",
    *,
    required: int | None = None,
    dns_only: str | None = None,
    zone: str = ZONE,
) -> TimeoutBudgetSpec:
    body: dict[str, Any] = {
        "route": {"host": host, "pathPrefix": path},
        "latency": {"metric": "http_request_duration_seconds"},
        "origin": {"deploymentName": "api"},
        "edge": {"zoneRef": {"name": zone}},
    }
    if required is not None:
        body["budget"] = {"requiredSeconds": required}
    if dns_only is not None:
        body["reroute"] = {"dnsOnlyHostname": dns_only}
    return parse_timeout_budget(body)


def key(name: str) -> RouteKey:
    return RouteKey(f"{NS}/{name}")


API = key("api")
"""TimeoutBudget shop/api: the route of the tests that sync only one."""


def read_timeout(spec: TimeoutBudgetSpec, seconds: int | None) -> EdgeTimeout:
    return EdgeTimeout(spec.route.host, spec.route.path_prefix, seconds, "test")


def dns_only(hostname: str, *, on: bool = True) -> Reroute:
    return Reroute(RerouteTarget(RerouteVia.DNS_ONLY, hostname), apply=on, reason="test")


def cache_rule(ref: str, host: str, **extra: Any) -> dict[str, Any]:
    """A rule as another tool (the dashboard, Terraform) would write it."""
    return {
        "ref": ref,
        "description": f"someone else's rule for {host}",
        "expression": f'(http.host eq "{host}")',
        "action": "set_cache_settings",
        "action_parameters": {"cache": True},
        **extra,
    }


@dataclass
class Clocks:
    """The registry's wall clock and the emulator's rate-limit clock, moved together."""

    registry: ManualClock = field(default_factory=lambda: ManualClock(T0))
    emulator: ManualClock = field(default_factory=ManualClock)

    def advance(self, seconds: float) -> None:
        self.registry.advance(seconds)
        self.emulator.advance(seconds)


@contextmanager
def emulated(clocks: Clocks | None = None, **kwargs: Any) -> Iterator[CloudflareEmulator]:
    clock = clocks.emulator if clocks is not None else ManualClock()
    with CloudflareEmulator(token=[TOKEN, "another-token"], clock=clock, **kwargs).running() as emu:
        if clocks is not None:
            emu.traffic.clock = clocks.registry  # Cloudflare's analytics on the registry's time
        yield emu


def registry_for(emu: CloudflareEmulator, clocks: Clocks, **kwargs: Any) -> ZoneRegistry:
    return ZoneRegistry(base_url=emu.base_url, clock=clocks.registry, **kwargs)


def run(registry: ZoneRegistry, scenario: Callable[[], Awaitable[T]]) -> T:
    """One event loop for the whole scenario (the SDK's connections belong to it)."""

    async def main() -> T:
        try:
            return await scenario()
        finally:
            await registry.aclose()

    return asyncio.run(main())


async def cycle(
    registry: ZoneRegistry,
    routes: Mapping[RouteKey, TimeoutBudgetSpec],
    actions: Mapping[RouteKey, Sequence[Action]],
) -> dict[RouteKey, str]:
    """One engine cycle's edge calls: observe every route, apply only what the diff says
    is still needed (an ``apply`` that raises is that route's failure), flush once."""
    failures: dict[RouteKey, str] = {}
    seen = {
        route: RouteObservation(
            latency=LatencyObservation.unavailable("not observed in this test"),
            scale=ScaleObservation(spec_replicas=1, ready_replicas=1),
            rerouted=registry.rerouted(NS, route, spec),
            edge=registry.observe(NS, route, spec),
        )
        for route, spec in routes.items()
    }
    for route, wanted in actions.items():
        needed = diff.changes(wanted, seen[route])
        if not needed:
            continue
        try:
            await registry.apply(NS, route, routes[route], needed)
        except Exception as exc:
            failures[route] = str(exc)
    failures.update(await registry.flush())
    return failures


@dataclass
class EdgeWorld:
    """One edge-sync test's set-up: the emulator, the two clocks, and a ZoneRegistry on them."""

    clocks: Clocks
    emu: CloudflareEmulator
    registry: ZoneRegistry

    def new_registry(self, **kwargs: Any) -> ZoneRegistry:
        """Replace the registry with a fresh one (``kwargs``: a timeout, metrics, a budget
        cap): a restarted operator, or a registry set up differently."""
        self.registry = registry_for(self.emu, self.clocks, **kwargs)
        return self.registry

    async def sync(
        self,
        zone: CloudflareZoneSpec | str,
        token: str = TOKEN,
        previous: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The CloudflareZone handler's reconcile of zone shop/edge: ``zone`` is its spec, or
        a zone id for ``zone_spec(zone_id)`` (nothing but the id and the token's Secret)."""
        spec = zone_spec(zone) if isinstance(zone, str) else zone
        return await self.registry.reconcile_zone(NS, ZONE, spec, token, previous_status=previous)

    async def cycle(
        self,
        routes: Mapping[RouteKey, TimeoutBudgetSpec],
        actions: Mapping[RouteKey, Sequence[Action]],
    ) -> dict[RouteKey, str]:
        """One engine cycle's edge calls on this registry (``cycle``)."""
        return await cycle(self.registry, routes, actions)

    async def cycle_api(self, route: TimeoutBudgetSpec, *wanted: Action) -> dict[RouteKey, str]:
        """One engine cycle with ``route`` as the only route (``API``), wanting ``wanted``."""
        return await self.cycle({API: route}, {API: list(wanted)})

    def run(self, scenario: Callable[[], Awaitable[T]]) -> T:
        """The scenario in one event loop, closing this registry after it (``run``)."""
        return run(self.registry, scenario)


@contextmanager
def edge_world(**emulator: Any) -> Iterator[EdgeWorld]:
    """An EdgeWorld on a fresh emulator (``emulator``: its settings, such as a rate limit)."""
    clocks = Clocks()
    with emulated(clocks, **emulator) as emu:
        yield EdgeWorld(clocks, emu, registry_for(emu, clocks))


@dataclass
class MetricsRecorder:
    """Stands in for ``report.metrics.OperatorMetrics``: keeps what it is told."""

    requests: list[tuple[str, str]] = field(default_factory=list)
    not_sent: list[str] = field(default_factory=list)
    budgets: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    synced: dict[tuple[str, str], bool] = field(default_factory=dict)

    def cloudflare_request(
        self, operation: str, outcome: str = "ok", duration_seconds: float | None = None
    ) -> None:
        self.requests.append((operation, outcome))

    def cloudflare_not_sent(self, reason: str) -> None:
        self.not_sent.append(reason)

    def cloudflare_budget(self, namespace: str, zone: str, remaining: int, limit: int) -> None:
        self.budgets[(namespace, zone)] = (remaining, limit)

    def cloudflare_zone_synced(self, namespace: str, zone: str, synced: bool) -> None:
        self.synced[(namespace, zone)] = synced

    def forget_cloudflare_zone(self, namespace: str, zone: str) -> None:
        self.budgets.pop((namespace, zone), None)
        self.synced.pop((namespace, zone), None)


def condition(status: Mapping[str, Any], kind: str) -> dict[str, Any]:
    found = [c for c in status.get("conditions", []) if c["type"] == kind]
    assert found, f"no {kind} condition in {status}"
    return dict(found[0])
