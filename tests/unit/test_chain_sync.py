"""Keeping the route's Ingress in line (``decide.chain_sync``, ``spec.chain.sync``): what
is raised, held, given back and refused, and when the diff still has work to do."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.ladder import make_spec
from timeout_budget.decide import chain_sync
from timeout_budget.decide.diff import is_needed
from timeout_budget.model.actions import HopTimeout, RuleTimeout
from timeout_budget.model.chain import Hop
from timeout_budget.model.observation import LatencyObservation
from timeout_budget.model.world import RouteObservation, ScaleObservation
from timeout_budget.observe.chain import held_hops, ingress_hops
from timeout_budget.observe.gateway import GatewayApi, httproute_hops

pytestmark = pytest.mark.unit

KEY = "shop/api"
BUDGET = 120


def ingress(name: str = "api", **annotations: str) -> dict[str, Any]:
    notes = {k.replace("_", "-"): v for k, v in annotations.items()}
    rule = {"host": "api.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix"}]}}
    return {
        "metadata": {"name": name, "namespace": "shop", "annotations": notes},
        "spec": {"ingressClassName": "nginx", "rules": [rule]},
    }


NGINX = "nginx.ingress.kubernetes.io/"
OWNER = "timeoutbudget.io/owner"
ORIGINAL = "timeoutbudget.io/original-proxy-read-timeout"


def seen(*ingresses: dict[str, Any], sync: str | None = "api") -> tuple[Any, tuple[Hop, ...]]:
    chain: dict[str, Any] = {} if sync is None else {"sync": {"ingressName": sync}}
    spec = make_spec(route={"host": "api.example.com", "pathPrefix": "/export"}, chain=chain)
    return spec, ingress_hops(spec, ingresses, KEY)


def held(timeout: str, original: str, owner: str = KEY) -> dict[str, Any]:
    return ingress(**{NGINX + "proxy-read-timeout": timeout, ORIGINAL: original, OWNER: owner})


def plan(*ingresses: dict[str, Any], sync: str | None = "api", budget: int = BUDGET) -> Any:
    spec, hops = seen(*ingresses, sync=sync)
    return chain_sync.plan(spec, hops, budget)


def test_a_short_ingress_is_raised_to_the_budget() -> None:
    actions, refusals = plan(ingress(**{NGINX + "proxy-read-timeout": "60"}))
    assert refusals == ()
    assert [(a.ingress, a.seconds) for a in actions] == [("api", 121)]
    assert "cuts requests at 60s, inside the 120s budget" in actions[0].reason
    # No annotation: nginx's 60 s default is short too.
    assert [(a.ingress, a.seconds) for a in plan(ingress())[0]] == [("api", 121)]


def test_a_long_enough_ingress_is_left_alone() -> None:
    assert plan(ingress(**{NGINX + "proxy-read-timeout": "300"})) == ((), ())


@pytest.mark.parametrize(
    ("ingresses", "sync", "why"),
    [
        ((ingress("other"),), "api", "Ingress shop/other serves the route, not Ingress api"),
        ((), "api", "no Ingress serves the route's host and path: nothing written"),
        ((ingress(**{NGINX + "proxy-read-timeout": "sixty"}),), "api", "cannot be read"),
    ],
)
def test_refused_and_nothing_written(
    ingresses: tuple[dict[str, Any], ...], sync: str, why: str
) -> None:
    actions, refusals = plan(*ingresses, sync=sync)
    assert actions == ()
    (refused,) = refusals
    assert why in refused.describe()


def test_held_is_restated_and_given_back_when_sync_goes() -> None:
    actions, _ = plan(held("121", "60"))
    assert [(a.ingress, a.seconds) for a in actions] == [("api", 121)]
    assert "cuts requests at 60s" in actions[0].reason
    actions, _ = plan(held("121", "60"), sync=None)
    assert [(a.ingress, a.seconds) for a in actions] == [("api", None)]


def test_held_is_given_back_when_the_original_is_enough() -> None:
    actions, _ = plan(held("121", "90"), budget=60)
    assert [(a.ingress, a.seconds) for a in actions] == [("api", None)]


def test_held_for_another_route_is_not_ours() -> None:
    _, hops = seen(held("121", "60", owner="shop/other"))
    (hop,) = hops
    assert not hop.held


def observation(hops: tuple[Hop, ...]) -> RouteObservation:
    latency = LatencyObservation.unavailable("unit")
    return RouteObservation(latency, ScaleObservation(1, 1), chain=hops)


@pytest.mark.parametrize(
    ("ing", "action", "needed"),
    [
        (ingress(**{NGINX + "proxy-read-timeout": "60"}), HopTimeout("api", 121, "r"), True),
        (held("121", "60"), HopTimeout("api", 121, "r"), False),
        (held("90", "60"), HopTimeout("api", 121, "r"), True),  # changed by someone: again
        (held("121", "60"), HopTimeout("api", None, "r"), True),
        (ingress(**{NGINX + "proxy-read-timeout": "60"}), HopTimeout("api", None, "r"), False),
    ],
)
def test_the_diff(ing: dict[str, Any], action: HopTimeout, needed: bool) -> None:
    _, hops = seen(ing)
    assert is_needed(action, observation(hops)) is needed


def test_held_is_given_back_when_the_chain_goes_from_the_spec() -> None:
    """Without spec.chain the route's hops are not read, but what it still holds is."""
    spec = make_spec(route={"host": "api.example.com", "pathPrefix": "/export"})
    hops = held_hops([held("121", "60"), held("121", "60", owner="shop/other")], KEY)
    actions, refusals = chain_sync.plan(spec, hops, BUDGET)
    assert refusals == ()
    assert [(a.ingress, a.seconds) for a in actions] == [("api", None)]


# -- the HTTPRoute rule (chain.sync.httpRouteName) ---------------------------------------
def gateway_api(timeouts: dict[str, str], features: list[str], **notes: str) -> GatewayApi:
    rule = {"name": "slow", "matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}
    httproute = {
        "metadata": {"name": "api", "namespace": "shop", "annotations": notes},
        "spec": {
            "hostnames": ["api.example.com"],
            "parentRefs": [{"name": "edge"}],
            "rules": [{**rule, "timeouts": timeouts}],
        },
    }
    gateway_class = {
        "spec": {"controllerName": "example.net/gw"},
        "status": {"supportedFeatures": [{"name": f} for f in features]},
    }
    return GatewayApi(
        (httproute,), {("shop", "edge"): {"spec": {"gatewayClassName": "c"}}}, {"c": gateway_class}
    )


HONOURED = ["HTTPRouteRequestTimeout"]
HELD = {
    OWNER: KEY,
    "timeoutbudget.io/original-rule-timeouts": '{"rule": "slow", "timeouts": {"request": "60s"}}',
}


def rule_plan(found: GatewayApi, sync: bool = True) -> Any:
    chain: dict[str, Any] = {"sync": {"httpRouteName": "api"}} if sync else {}
    spec = make_spec(route={"host": "api.example.com", "pathPrefix": "/export"}, chain=chain)
    return chain_sync.plan(spec, httproute_hops(spec, found, KEY), BUDGET)


def test_a_short_rule_is_raised_where_its_class_honours_timeouts() -> None:
    actions, refusals = rule_plan(gateway_api({"request": "60s"}, HONOURED))
    assert refusals == ()
    assert [(a.httproute, a.rule, a.seconds) for a in actions] == [("api", "slow", 121)]


def test_a_held_rule_is_restated_and_given_back_when_sync_goes() -> None:
    held = gateway_api({"request": "121s"}, HONOURED, **HELD)
    assert [(a.rule, a.seconds) for a in rule_plan(held)[0]] == [("slow", 121)]
    assert [(a.rule, a.seconds) for a in rule_plan(held, sync=False)[0]] == [("slow", None)]
    spec = make_spec(route={"host": "api.example.com", "pathPrefix": "/export"}, chain={})
    hops = httproute_hops(spec, held, KEY)
    assert is_needed(RuleTimeout("api", "slow", 121, "r"), observation(hops)) is False
    assert is_needed(RuleTimeout("api", "slow", None, "r"), observation(hops)) is True


def test_a_class_that_ignores_timeouts_is_refused() -> None:
    actions, refusals = rule_plan(gateway_api({"request": "60s"}, []))
    assert actions == ()
    (refused,) = refusals
    assert "the operator cannot set its timeout there" in refused.describe()
