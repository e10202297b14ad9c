"""Per method group, what gives a route's requests their edge read timeout
(``decide.coverage``), and the ``route.methods`` field it reads."""

from __future__ import annotations

import copy
from typing import Any

import pydantic
import pytest

from tests.unit.test_ladder_helpers import _BASE
from timeout_budget.decide.coverage import Coverage, coverage
from timeout_budget.model.spec import TimeoutBudgetSpec, parse_timeout_budget
from timeout_budget.model.world import EdgeObservation

pytestmark = pytest.mark.unit

ZONE = EdgeObservation(zone_timeout_seconds=120, editable=True)
RULE = EdgeObservation(zone_timeout_seconds=120, editable=True, route_timeout_seconds=301)


def route(methods: list[str] | None = None, **changes: Any) -> TimeoutBudgetSpec:
    body = copy.deepcopy(_BASE)
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
    no_dns = {"serviceName": "api", "longRunningSelector": {"app": "long"}}
    found = coverage(route(["POST", "GET"], reroute=no_dns), RULE)
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
    no_dns = {"serviceName": "api", "longRunningSelector": {"app": "long"}}
    found = coverage(route(["DELETE"], budget=body_budget, reroute=no_dns), ZONE)
    assert found == (Coverage(("DELETE",), "None", 120),)


def test_zone_not_read_yet() -> None:
    assert coverage(route(["GET", "POST"]), None) == (
        Coverage(("GET",), "ZoneTimeout", None),
        Coverage(("POST",), "ZoneTimeout", None),
    )
