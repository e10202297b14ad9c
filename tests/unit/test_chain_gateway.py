"""The HTTPRoute in front of a route (``observe.gateway.httproute_hops``): which rule serves
it by the Gateway API's precedence, whether its GatewayClass honours ``timeouts``, and what
stays unknown."""

from __future__ import annotations

import math
from typing import Any

import pytest

from tests.support.ladder import make_spec
from timeout_budget.decide.chain import judge
from timeout_budget.model.chain import Hop, Verdict
from timeout_budget.observe.gateway import GatewayApi, duration_seconds, httproute_hops

pytestmark = pytest.mark.unit

HOST = "api.example.com"
ENVOY = "gateway.envoyproxy.io/gatewayclass-controller"
BOTH = ["HTTPRouteBackendRequestTimeout", "HTTPRouteRequestTimeout"]


def rule(
    path: str = "/", kind: str = "PathPrefix", name: str | None = None, **timeouts: str
) -> dict[str, Any]:
    out: dict[str, Any] = {"matches": [{"path": {"type": kind, "value": path}}]}
    if name:
        out["name"] = name
    if timeouts:
        out["timeouts"] = timeouts
    return out


def httproute(
    *rules: dict[str, Any],
    name: str = "api",
    hostnames: list[str] | None = None,
    created: str = "2026-01-01T00:00:00Z",
    gateway: str = "edge",
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "shop", "creationTimestamp": created},
        "spec": {
            "hostnames": [HOST] if hostnames is None else hostnames,
            "parentRefs": [{"name": gateway, "namespace": "infra"}],
            "rules": list(rules) or [rule()],
        },
    }


def api(
    *routes: dict[str, Any],
    features: list[str] | None = BOTH,
    controller: str = "example.net/gateway",
    gateway_readable: bool = True,
) -> GatewayApi:
    status = {} if features is None else {"supportedFeatures": [{"name": f} for f in features]}
    gateway_class = {"spec": {"controllerName": controller}, "status": status}
    gateway = {"spec": {"gatewayClassName": "public"}} if gateway_readable else None
    return GatewayApi(tuple(routes), {("infra", "edge"): gateway}, {"public": gateway_class})


def hops(
    found: GatewayApi, path: str = "/export", methods: list[str] | None = None
) -> tuple[Hop, ...]:
    route: dict[str, Any] = {"host": HOST, "pathPrefix": path}
    if methods is not None:
        route["methods"] = methods
    return httproute_hops(make_spec(route=route, chain={}), found)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("1m30s", 90), ("500ms", 0.5), ("1h", 3600), ("0s", 0), ("2m", 120)],
)
def test_durations(text: str, seconds: float) -> None:
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("junk", ["30", "1.5s", "-1s", "1d", "s", "123456s", ""])
def test_junk_durations_are_not_read(junk: str) -> None:
    assert duration_seconds(junk) is None


def test_honoured_request_timeout() -> None:
    (hop,) = hops(api(httproute(rule(request="300s"))))
    assert (hop.hop, hop.object, hop.timeout_seconds, hop.measures, hop.source) == (
        "gateway",
        "HTTPRoute shop/api rule 0 via GatewayClass public",
        300,
        "total",
        "timeouts.request",
    )


def test_backend_request_fires_before_request() -> None:
    (hop,) = hops(api(httproute(rule(request="300s", backendRequest="90s"))))
    assert (hop.timeout_seconds, hop.source) == (90, "timeouts.backendRequest")


def test_zero_turns_the_timeout_off() -> None:
    (hop,) = hops(api(httproute(rule(request="0s"))))
    assert hop.timeout_seconds == math.inf
    assert "timeoutSeconds" not in hop.to_status()
    judged = judge(Hop("cloudflare", "zone", 120, "idle", "zone"), (hop,), 120)
    assert judged.hops[1].verdict is Verdict.OK


def test_ignored_timeouts_fall_back_to_the_known_default() -> None:
    """Envoy Gateway that does not list the feature: its 15 s route timeout applies."""
    (hop,) = hops(api(httproute(rule(request="300s")), features=[], controller=ENVOY))
    assert (hop.timeout_seconds, hop.source) == (15, "default")
    assert "not honoured" in hop.object


def test_no_timeouts_on_envoy_is_fifteen_seconds_and_fires_first() -> None:
    (hop,) = hops(api(httproute(rule()), controller=ENVOY))
    chain = judge(Hop("cloudflare", "zone", 120, "idle", "zone"), (hop,), 120)
    assert chain.first_to_fire is not None
    assert chain.first_to_fire.hop == "gateway"
    assert "504 after 15s" in chain.condition.message


@pytest.mark.parametrize(
    ("found", "why"),
    [
        (api(httproute(rule())), "default of example.net/gateway is not known"),
        (api(httproute(rule(request="300s")), features=None), "does not list its supported"),
        (api(httproute(rule(request="300s")), gateway_readable=False), "Gateway infra/edge"),
        (api(httproute(rule(request="5 minutes"))), "is not a duration"),
        (GatewayApi(problem="not read: forbidden"), "not read: forbidden"),
    ],
)
def test_unknown_never_guessed(found: GatewayApi, why: str) -> None:
    (hop,) = hops(found)
    assert hop.timeout_seconds is None
    assert why in hop.object


def test_precedence_exact_then_longest_then_oldest() -> None:
    rules = (rule("/", request="10s"), rule("/export", request="20s"), rule("/exp", request="30s"))
    (hop,) = hops(api(httproute(*rules)))
    assert hop.timeout_seconds == 20
    exact = httproute(rule("/export", "Exact", name="slow", request="40s"), name="z-exact")
    (hop,) = hops(api(httproute(*rules), exact))
    assert (hop.timeout_seconds, hop.object.split(" via")[0]) == (
        40,
        "HTTPRoute shop/z-exact rule slow",
    )
    older = httproute(rule("/export", request="50s"), name="b", created="2025-01-01T00:00:00Z")
    (hop,) = hops(api(httproute(rule("/export", request="60s"), name="a"), older))
    assert hop.timeout_seconds == 50


@pytest.mark.parametrize(
    ("found", "path"),
    [
        (api(httproute(rule("/exports"))), "/export"),  # a longer prefix does not cover it
        (api(httproute(rule("/export", "Exact"))), "/export/csv"),
        (api(httproute(rule("/export.*", "RegularExpression"))), "/export"),
        (api(httproute(hostnames=["www.example.com"])), "/export"),
    ],
)
def test_routes_that_do_not_serve(found: GatewayApi, path: str) -> None:
    assert hops(found, path=path) == ()


def test_hostnames_wildcard_and_empty() -> None:
    assert hops(api(httproute(hostnames=["*.example.com"])))
    assert hops(api(httproute(hostnames=[])))
    assert not hops(api(httproute(hostnames=["*.api.example.com"])))


def test_method_matches() -> None:
    only_get = {"matches": [{"path": {"type": "PathPrefix", "value": "/"}, "method": "GET"}]}
    assert not hops(api(httproute(only_get)), methods=["POST"])
    assert hops(api(httproute(only_get)), methods=["GET"])


def test_many_rules_stay_clear() -> None:
    rules = [rule(f"/p{i}", request=f"{i + 1}s") for i in range(64)]
    (hop,) = hops(api(httproute(*rules)), path="/p42/x")
    assert hop.timeout_seconds == 43
