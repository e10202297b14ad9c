"""Per method group, what gives a route's requests their edge read timeout
(``decide.coverage``), and the ``route.methods`` field it reads."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pydantic
import pytest

from tests.support.ladder import BASE, T0, make_observation, make_spec
from timeout_budget.decide import status
from timeout_budget.decide.coverage import Coverage, coverage
from timeout_budget.decide.coverage import zone_raise_pending as coverage_pending
from timeout_budget.decide.ladder import decide
from timeout_budget.model.decision import CLOUDFLARE_ADVICE, Decision
from timeout_budget.model.memory import Memory
from timeout_budget.model.spec import TimeoutBudgetSpec, parse_timeout_budget
from timeout_budget.model.world import EdgeObservation

pytestmark = pytest.mark.unit

ZONE = EdgeObservation(zone_timeout_seconds=120, editable=True)
NO_DNS = {"serviceName": "api", "longRunningSelector": {"app": "long"}}
"""A reroute without a DNS-only hostname: nothing but the edge covers a POST."""


def with_rule(**zone: Any) -> EdgeObservation:
    """``ZONE`` with the route's 301 s Cache Rule in force, and the zone ``zone`` fields."""
    return replace(ZONE, route_timeout_seconds=301, **zone)


RULE = with_rule()


def route(methods: list[str] | None = None, **changes: Any) -> TimeoutBudgetSpec:
    body = copy.deepcopy(BASE)
    if methods is not None:
        body["route"]["methods"] = methods
    for key, value in changes.items():
        body[key] = value
    return parse_timeout_budget(body)


def test_methods_default_to_get_and_head() -> None:
    assert route().route.methods == ("GET", "HEAD")


@pytest.mark.parametrize("methods", [[], ["GET", "GET"], ["TRACE"], ["get"]])
def test_methods_refused(methods: list[str]) -> None:
    with pytest.raises(pydantic.ValidationError):
        route(methods)


def test_get_only_route_is_covered_by_its_cache_rule() -> None:
    assert coverage(route(["GET"]), RULE) == (Coverage(("GET",), "CacheRule", 301),)


def test_get_without_a_rule_gets_the_zone_timeout() -> None:
    assert coverage(route(), ZONE) == (Coverage(("GET", "HEAD"), "ZoneTimeout", 120),)


def test_post_keeps_the_zone_timeout_when_it_is_enough() -> None:
    found = coverage(route(["GET", "POST"]), ZONE)
    assert found == (
        Coverage(("GET",), "ZoneTimeout", 120),
        Coverage(("POST",), "ZoneTimeout", 120),
    )
    assert all(c.covered for c in found)


def test_post_needing_more_than_the_zone_is_not_covered_by_the_cache_rule() -> None:
    found = coverage(route(["POST", "GET"], reroute=NO_DNS), RULE)
    assert found == (
        Coverage(("GET",), "CacheRule", 301),
        Coverage(("POST",), "None", 120),
    )
    assert not found[1].covered
    assert "GET/HEAD only" in found[1].words()
    assert found[1].group == "POST"


def test_post_needing_more_is_covered_by_a_dns_only_hostname() -> None:
    dns = {"dnsOnlyHostname": "api-direct.example.com"}
    found = coverage(route(["POST", "PUT"], reroute=dns), RULE)
    assert found == (Coverage(("POST", "PUT"), "DnsOnly", None),)


def test_declared_need_without_rule_yet_counts() -> None:
    body_budget = {"timeoutSeconds": 400, "requiredSeconds": 300}
    found = coverage(route(["DELETE"], budget=body_budget, reroute=NO_DNS), ZONE)
    assert found == (Coverage(("DELETE",), "None", 120),)


def test_zone_not_read_yet() -> None:
    assert coverage(route(["GET", "POST"]), None) == (
        Coverage(("GET",), "ZoneTimeout", None),
        Coverage(("POST",), "ZoneTimeout", None),
    )


# The ladder: what a Cache Rule cannot cover is said, with Cloudflare's advice.

NEEDS_300 = {"timeoutSeconds": 360, "requiredSeconds": 300}
POST_NEEDING_300 = make_spec(
    route={"host": "api.example.com", "methods": ["GET", "POST"]}, budget=NEEDS_300, reroute=NO_DNS
)
"""A GET and POST route declaring 300 s, with no DNS-only hostname for the POST."""


def decided(spec: TimeoutBudgetSpec, edge: EdgeObservation | None = ZONE) -> Decision:
    """The ladder's decision for ``spec`` at a healthy 50 s with the zone seen as ``edge``."""
    return decide(spec, make_observation(50.0, edge=edge), Memory(), T0)


def test_ladder_says_a_post_route_needing_more_than_the_zone_is_not_covered() -> None:
    decision = decided(POST_NEEDING_300, RULE)
    assert decision.edge_coverage == (
        Coverage(("GET",), "CacheRule", 301),
        Coverage(("POST",), "None", 120),
    )
    assert "cover POST at the edge" in decision.message
    assert "covers GET/HEAD only" in decision.message
    assert decision.advice == CLOUDFLARE_ADVICE


def test_ladder_gives_no_advice_for_a_get_route_or_a_post_the_zone_covers() -> None:
    get_only = make_spec(route={"host": "api.example.com", "methods": ["GET"]}, budget=NEEDS_300)
    decision = decided(get_only, RULE)
    assert decision.edge_coverage == (Coverage(("GET",), "CacheRule", 301),)
    assert decision.advice is None
    post = make_spec(route={"host": "api.example.com", "methods": ["POST"]}, reroute=NO_DNS)
    decision = decided(post)
    assert decision.edge_coverage == (Coverage(("POST",), "ZoneTimeout", 120),)
    assert decision.advice is None


def test_status_shows_the_coverage() -> None:
    spec = make_spec(route={"host": "api.example.com", "methods": ["GET", "POST"]})
    observation = make_observation(50.0)
    decision = decide(spec, observation, Memory(), T0)
    built = status.build(decision, observation, previous=None, now=T0, generation=1)
    assert built["edgeCoverage"] == [
        {"methods": ["GET"], "by": "ZoneTimeout", "timeoutSeconds": 120},
        {"methods": ["POST"], "by": "ZoneTimeout", "timeoutSeconds": 120},
    ]
    without_zone = make_observation(50.0, edge=None)
    decision = decide(spec, without_zone, Memory(), T0)
    assert (
        status.build(decision, without_zone, previous=None, now=T0, generation=1)["edgeCoverage"]
        is None
    )


def test_an_overridden_rule_still_says_what_the_post_needs() -> None:
    overridden = EdgeObservation(120, True, route_timeout_seconds=121, route_rule_overridden=True)
    assert coverage(route(["GET", "POST"], reroute=NO_DNS), overridden) == (
        Coverage(("GET",), "ZoneTimeout", 120),
        Coverage(("POST",), "None", 120),
    )


# The zone-wide raise (CloudflareZone spec.raiseProxyReadTimeout): what covers a POST once
# the operator holds the zone's proxy_read_timeout raised, and what is said before it is.

RAISED = with_rule(zone_raised_seconds=301, zone_raise_ceiling_seconds=600)
RAISE_ALLOWED = with_rule(zone_raise_ceiling_seconds=600)


def test_post_is_covered_by_the_raised_zone_timeout() -> None:
    found = coverage(route(["GET", "POST"], reroute=NO_DNS), RAISED)
    assert found == (
        Coverage(("GET",), "CacheRule", 301),
        Coverage(("POST",), "ZoneTimeout", 301),
    )


def test_a_raise_short_of_the_need_does_not_cover_and_shows_the_raised_value() -> None:
    short = with_rule(zone_raised_seconds=200, zone_raise_ceiling_seconds=200)
    found = coverage(route(["POST"], reroute=NO_DNS), short)
    assert found == (Coverage(("POST",), "None", 200),)
    assert coverage_pending(route(["POST"], reroute=NO_DNS), short) is None


def test_a_raise_the_zone_allows_is_pending_until_it_is_in_force() -> None:
    spec = route(["POST"], reroute=NO_DNS)
    assert coverage_pending(spec, RAISE_ALLOWED) == 301
    assert coverage_pending(spec, RAISED) is None
    assert coverage_pending(spec, RULE) is None  # no opt-in: nothing pending


def test_ladder_says_the_raise_is_coming_without_the_advice() -> None:
    decision = decided(POST_NEEDING_300, RAISE_ALLOWED)
    assert decision.edge_coverage[1] == Coverage(("POST",), "None", 120)
    assert "being raised to 301s" in decision.message
    assert "cannot cover POST" not in decision.message
    assert decision.advice is None
    decision = decided(POST_NEEDING_300, RAISED)
    assert decision.edge_coverage[1] == Coverage(("POST",), "ZoneTimeout", 301)
    assert decision.advice is None


def test_ladder_names_the_opt_in_when_nothing_covers_the_post() -> None:
    spec = make_spec(
        route={"host": "api.example.com", "methods": ["POST"]}, budget=NEEDS_300, reroute=NO_DNS
    )
    decision = decided(spec, RULE)
    assert "spec.raiseProxyReadTimeout" in decision.message
    assert decision.advice == CLOUDFLARE_ADVICE
    decision = decided(spec, with_rule(zone_raise_ceiling_seconds=200))
    assert "the CloudflareZone's raise stops at 200s" in decision.message
    assert decision.advice == CLOUDFLARE_ADVICE
