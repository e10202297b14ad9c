"""What the emulated edge does with a visitor's request under a zone's Cache Rules, and
whether the operator's reading of the rule list (in force, or taken away by a user's rule)
agrees with it."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.cloudflare_emulator import edge_cache
from sandbox.cloudflare_emulator.edge_cache import EdgeRequest
from tests.support.cache_rules import user_rule
from timeout_budget.decide import rules

pytestmark = pytest.mark.unit

ZONE_TIMEOUT = 120.0
HOST = "api.example.com"
STORED = "public, max-age=60"
OURS = {"id": "1" * 32, **rules.desired_rule("shop", "api", HOST, "/export", 301)}


def user(expression: str, **params: Any) -> dict[str, Any]:
    return user_rule(expression, "2" * 32, **params)


def timeout(
    rule_list: list[dict[str, Any]],
    method: str = "GET",
    path: str = "/export/a.csv",
    cache_control: str | None = STORED,
    **kwargs: Any,
) -> float:
    request = EdgeRequest(method, HOST, path, origin_cache_control=cache_control)
    return edge_cache.evaluate(rule_list, ZONE_TIMEOUT, request, **kwargs).read_timeout


@pytest.mark.parametrize(
    ("path", "seconds"),
    [
        ("/export", 301),
        ("/export/", 301),
        ("/export/big/file", 301),
        ("//export//x", 301),  # normalized before matching
        ("/%65xport/x", 301),
        ("/exports", ZONE_TIMEOUT),
        ("/export-admin", ZONE_TIMEOUT),
        ("/other", ZONE_TIMEOUT),
    ],
)
def test_the_operators_rule_covers_exactly_its_prefix(path: str, seconds: float) -> None:
    assert timeout([OURS], path=path) == seconds


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_a_method_that_is_never_cached_gets_the_zone_timeout(method: str) -> None:
    verdict = edge_cache.evaluate(
        [OURS], ZONE_TIMEOUT, EdgeRequest(method, HOST, "/export", origin_cache_control=STORED)
    )
    assert verdict.read_timeout == ZONE_TIMEOUT
    assert not verdict.cacheable
    assert timeout([OURS], method="HEAD") == 301


def test_bypass_by_default_without_a_stored_response_is_strict() -> None:
    """NOT CONFIRMED whether read_timeout applies to a response that is not stored: the
    emulator says no unless told otherwise."""
    assert timeout([OURS], cache_control=None) == ZONE_TIMEOUT
    assert timeout([OURS], cache_control="private, max-age=60") == ZONE_TIMEOUT
    assert timeout([OURS], cache_control=None, bypass_by_default_keeps_read_timeout=True) == 301


def test_the_operators_rule_changes_no_caching_default() -> None:
    verdict = edge_cache.evaluate([OURS], ZONE_TIMEOUT, EdgeRequest("GET", HOST, "/export"))
    assert verdict.settings["edge_ttl"] == {"mode": "bypass_by_default"}
    assert verdict.settings["browser_ttl"] == {"mode": "respect_origin"}


BYPASS = user(f'(http.host eq "{HOST}")', cache=False)
OWN_TIMEOUT = user(f'(http.host eq "{HOST}")', cache=True, read_timeout=900)
OTHER_HOST = user('(http.host eq "img.example.com")', cache=False)
SIBLING = user('starts_with(http.request.uri.path, "/exports")', cache=False)


@pytest.mark.parametrize(
    ("rule_list", "seconds"),
    [
        pytest.param([OURS, BYPASS], ZONE_TIMEOUT, id="later-bypass-wins"),
        pytest.param([BYPASS, OURS], 301, id="earlier-bypass-loses"),
        pytest.param([OURS, OWN_TIMEOUT], 900, id="later-timeout-wins"),
        pytest.param([OURS, OTHER_HOST], 301, id="other-host"),
        pytest.param([OURS, SIBLING], 301, id="sibling-prefix"),
        pytest.param([OURS, {**BYPASS, "enabled": False}], 301, id="disabled"),
    ],
)
def test_the_last_matching_rule_wins(rule_list: list[dict[str, Any]], seconds: float) -> None:
    assert timeout(rule_list) == seconds


@pytest.mark.parametrize(
    "rule_list",
    [[OURS], [OURS, BYPASS], [OURS, OWN_TIMEOUT], [OURS, OTHER_HOST], [OURS, SIBLING]],
)
def test_the_operator_never_claims_a_timeout_the_edge_does_not_give(
    rule_list: list[dict[str, Any]],
) -> None:
    """Where the operator says its rule is in force and not overridden, every cacheable
    request of the route waits at least that long at the emulated edge (a later, longer
    read timeout takes nothing away); where the edge gives less, the operator names the
    rule that takes it away."""
    found = rules.in_force(rule_list, "shop", "api", HOST, "/export")
    assert found is not None
    for path in ("/export", "/export/x"):
        edge = timeout(rule_list, path=path)
        if not found.overridden_by:
            assert edge >= found.seconds
        if edge < found.seconds:
            assert found.overridden_by


@pytest.mark.parametrize(
    ("expression", "holds"),
    [
        ('http.host in {"a.example.com" "api.example.com"}', True),
        ('not http.host eq "api.example.com"', False),
        ('http.request.method eq "GET" and ends_with(http.request.uri.path, ".csv")', True),
        ('lower(http.host) eq "api.example.com"', True),
        ('http.request.uri.path matches "^/export/[0-9]+"', False),
        ('any(http.request.headers["x"][*] eq "y")', True),  # unread: strict, it holds
    ],
)
def test_expressions_are_evaluated_or_strictly_assumed_to_hold(
    expression: str, holds: bool
) -> None:
    request = EdgeRequest("GET", HOST, "/export/a.csv")
    assert edge_cache.matches(expression, request) is holds
