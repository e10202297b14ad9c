"""The operator's Cache Rules among other people's: refs, expressions, per-rule writes.

What a user would see in the dashboard: one rule per route with a readable ref and a
description naming the TimeoutBudget, an expression that matches exactly the route's host
and path prefix whatever characters they hold, and every rule of another tool left as it
was, in its place.
"""

from __future__ import annotations

import copy
from typing import Any, cast

import octorules_wirefilter as wirefilter
import pytest
from cloudflare.types.rulesets.set_cache_settings_rule_param import SetCacheSettingsRuleParam

from tests.support.cache_rules import user_rule
from timeout_budget.clients.cloudflare import CloudflareClient
from timeout_budget.clients.cloudflare_values import ApiToken, Entrypoint
from timeout_budget.decide import rule_paths, rules
from timeout_budget.edge.zone import ZoneState
from timeout_budget.model.spec import parse_cloudflare_zone

pytestmark = pytest.mark.unit

FOREIGN_A: dict[str, Any] = {
    "id": "a" * 32,
    "version": "3",
    "ref": "dashboard-static",
    "description": "static assets",
    "expression": '(http.host eq "static.example.com")',
    "action": "set_cache_settings",
    "action_parameters": {"cache": True, "edge_ttl": {"mode": "override_origin", "default": 60}},
    "enabled": False,
    "logging": {"enabled": True},
    "last_updated": "2026-01-01T00:00:00Z",
}
FOREIGN_B: dict[str, Any] = {
    "id": "b" * 32,
    "version": "1",
    "ref": "terraform_api",
    "description": "",
    "expression": '(http.host eq "api.example.com")',
    "action": "set_cache_settings",
    "action_parameters": {"cache": False},
    "enabled": True,
    "last_updated": "2026-01-02T00:00:00Z",
}


def owned(
    name: str,
    seconds: int,
    *,
    host: str = "api.example.com",
    rule_id: str = "",
    prefix: str = "/export",
) -> dict:
    rule = rules.desired_rule("shop", name, host, prefix, seconds)
    return {"id": rule_id, "version": "1", **rule, "last_updated": "x"} if rule_id else rule


# -- refs and descriptions ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("namespace", "name", "expected"),
    [
        ("shop", "api-export", "tbo_shop_api-export"),
        ("shop", "api.export.v2", "tbo_shop_api_export_v2"),
        ("a", "b", "tbo_a_b"),
    ],
)
def test_ref_is_readable_when_short(namespace: str, name: str, expected: str) -> None:
    assert rules.rule_ref(namespace, name) == expected


def test_ref_of_a_long_name_is_a_stable_digest_within_the_limit() -> None:
    name = "x" * 200
    ref = rules.rule_ref("payments-production", name)

    assert ref == rules.rule_ref("payments-production", name)  # stable
    assert ref.startswith(rules.HASHED_REF_PREFIX)
    assert len(ref) <= rules.MAX_REF_LENGTH
    assert ref != rules.rule_ref("payments-production", name + "y")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("a-b", "c"), ("a", "b-c")),
        (("shop", "a.b"), ("shop", "a-b")),
        (("ns", "x" * 60), ("ns", "x" * 61)),
    ],
)
def test_different_routes_never_share_a_ref(
    first: tuple[str, str], second: tuple[str, str]
) -> None:
    assert rules.rule_ref(*first) != rules.rule_ref(*second)


def test_unexpected_characters_in_a_name_give_a_digest_ref() -> None:
    ref = rules.rule_ref("shop", 'x" or true')
    assert ref.startswith(rules.HASHED_REF_PREFIX)
    assert '"' not in ref
    assert " " not in ref


def test_description_names_the_resource_and_marks_ownership() -> None:
    assert rules.description("shop", "api-export") == (
        "managed by timeout-budget-operator: TimeoutBudget shop/api-export"
    )


# -- expressions -------------------------------------------------------------------------

PATH = "http.request.uri.path"


def _exact(prefix: str, host: str = "api.example.com") -> str:
    return f'(http.host eq "{host}" and ({PATH} eq "{prefix}" or starts_with({PATH}, "{prefix}/")))'


@pytest.mark.parametrize(
    ("host", "path", "expected"),
    [
        ("api.example.com", "/export", _exact("/export")),
        ("API.Example.com", "/", '(http.host eq "api.example.com")'),
        (
            "api.example.com",
            "/export/",
            f'(http.host eq "api.example.com" and starts_with({PATH}, "/export/"))',
        ),
        ("api.example.com", '/a"b', _exact('/a\\"b')),
        ("api.example.com", "/a\\b", _exact("/a/b")),  # Cloudflare turns \ into /
        ("api.example.com", "//a///b", _exact("/a/b")),
        ("api.example.com", "/%65xport", _exact("/export")),  # unreserved decoded
        ("api.example.com", "/a%2fb", _exact("/a%2Fb")),  # reserved kept, upper-cased
        ("api.example.com", "/a/./b/../c", _exact("/a/c")),
    ],
)
def test_expression_quotes_and_normalizes(host: str, path: str, expected: str) -> None:
    assert rules.expression(host, path) == expected


@pytest.mark.parametrize(
    ("path", "prefix", "covered"),
    [
        ("/export", "/export", True),
        ("/export/", "/export", True),
        ("/export/a/b", "/export", True),
        ("/exports", "/export", False),
        ("/export-admin", "/export", False),
        ("/expor", "/export", False),
        ("/export", "/export/", False),
        ("/export/x", "/export/", True),
        ("/anything", "/", True),
    ],
)
def test_a_prefix_covers_whole_segments(path: str, prefix: str, covered: bool) -> None:
    assert rule_paths.covers(rule_paths.normalize(prefix), path) is covered


@pytest.mark.parametrize(
    "value", ["/a b", "/a?b", "/a#b", "/a\nb", "/a\x00", "/\x7f", "/é", "/a%zz", "/50%"]
)
def test_a_prefix_no_request_path_can_hold_is_refused(value: str) -> None:
    with pytest.raises(rule_paths.UnmatchablePrefix):
        rules.expression("api.example.com", value)


@pytest.mark.parametrize(
    "path",
    ['/x")or(http.host.ne"', '/x"or"1"eq"1', '/"', "/a\\", '/a"))or((true', "/%22)or(true"],
)
def test_the_expression_holds_exactly_the_literals_meant(path: str) -> None:
    """Cloudflare's own parser (wirefilter) reads the host and the prefix back, nothing
    else: no clause can be smuggled in through a value."""
    prefix = rule_paths.normalize(path)
    parsed = wirefilter.parse_expression(rules.expression("api.example.com", path))

    assert "error" not in parsed
    assert parsed["fields"] == ["http.host", PATH]
    assert sorted(parsed["functions"]) == ["starts_with"]
    expected = {"api.example.com", prefix, prefix.rstrip("/") + "/"}
    assert set(parsed["string_literals"]) == expected


@pytest.mark.parametrize("host", ['evil.com" or http.host ne "x', 'a\\" or true or "'])
def test_a_hostile_host_stays_inside_its_string_literal(host: str) -> None:
    parsed = wirefilter.parse_expression(rules.expression(host, "/"))
    assert "error" not in parsed
    assert parsed["string_literals"] == [host.lower()]
    assert parsed["operators"] == ["eq"]


def test_path_prefix_must_start_with_a_slash() -> None:
    with pytest.raises(ValueError, match="must start with '/'"):
        rules.expression("api.example.com", "export")


# -- the rule ----------------------------------------------------------------------------


def test_desired_rule_holds_the_timeout_and_changes_no_caching_default() -> None:
    assert rules.desired_rule("shop", "api-export", "api.example.com", "/export", 301) == {
        "ref": "tbo_shop_api-export",
        "description": "managed by timeout-budget-operator: TimeoutBudget shop/api-export",
        "expression": _exact("/export"),
        "action": "set_cache_settings",
        "action_parameters": {
            "cache": True,
            "edge_ttl": {"mode": "bypass_by_default"},
            "browser_ttl": {"mode": "respect_origin"},
            "read_timeout": 301,
        },
        "enabled": True,
    }


def test_writable_fields_are_the_sdks_rule_params() -> None:
    assert set(SetCacheSettingsRuleParam.__annotations__) == rules.WRITABLE_FIELDS
    assert rules.writable({**FOREIGN_A, "categories": ["x"], "position": {"index": 1}}) == {
        k: v for k, v in FOREIGN_A.items() if k not in ("version", "last_updated")
    }


@pytest.mark.parametrize(
    ("rule", "is_owned"),
    [
        (owned("api", 301), True),
        ({**owned("api", 301), "description": "mine now"}, False),
        ({**owned("api", 301), "ref": "someone"}, False),
        (FOREIGN_A, False),
        ({"ref": "tbo_x", "description": None}, False),
    ],
)
def test_ownership_needs_both_marks(rule: dict[str, Any], is_owned: bool) -> None:
    assert rules.is_owned(rule) is is_owned


# -- per-rule writes -----------------------------------------------------------------------

API = rules.rule_ref("shop", "api")
WEB = rules.rule_ref("shop", "web")
ID1, ID2 = "1" * 32, "2" * 32
BODY_301 = {k: v for k, v in owned("api", 301).items() if k in rules.OWNED_FIELDS}


@pytest.mark.parametrize(
    ("current", "desired", "expected"),
    [
        pytest.param([], {API: owned("api", 301)}, [rules.Create(API, owned("api", 301))]),
        pytest.param(
            [FOREIGN_A, FOREIGN_B],
            {API: owned("api", 301)},
            [rules.Create(API, owned("api", 301))],
            id="create-touches-no-foreign-rule",
        ),
        pytest.param(
            [owned("api", 200, rule_id=ID1), FOREIGN_A],
            {API: owned("api", 301)},
            [rules.Edit(API, ID1, BODY_301)],
            id="edit-by-id-found-through-ref",
        ),
        pytest.param(
            [owned("api", 301, rule_id=ID1), FOREIGN_A], {API: owned("api", 301)}, [], id="same"
        ),
        pytest.param(
            [FOREIGN_A, owned("api", 301, rule_id=ID1)],
            {API: owned("api", 301)},
            [rules.Edit(API, ID1, BODY_301, move=True)],
            id="behind-a-foreign-rule-moves-in-front",
        ),
        pytest.param(
            [owned("api", 301, rule_id=ID1), FOREIGN_A],
            {API: None},
            [rules.Delete(API, ID1)],
            id="delete",
        ),
        pytest.param([FOREIGN_A], {API: None}, [], id="delete-absent"),
        pytest.param(
            [owned("web", 900, rule_id=ID2)],
            {API: owned("api", 301), WEB: None},
            [rules.Create(API, owned("api", 301)), rules.Delete(WEB, ID2)],
            id="several",
        ),
        pytest.param(
            [{**owned("api", 301, rule_id=ID1), "enabled": False}],
            {API: owned("api", 301)},
            [rules.Edit(API, ID1, BODY_301)],
            id="disabled-by-hand-is-enabled-again",
        ),
    ],
)
def test_plan_writes_only_the_operators_own_rules(
    current: list[dict[str, Any]],
    desired: dict[str, dict[str, Any] | None],
    expected: list[rules.Write],
) -> None:
    before = copy.deepcopy(current)
    plan = rules.plan(current, desired)
    assert plan.writes == expected
    assert current == before
    for write in plan.writes:
        if not isinstance(write, rules.Delete):
            assert set(write.body) <= rules.WRITABLE_FIELDS - {"id"}


def test_plan_leaves_a_ref_held_by_a_foreign_rule() -> None:
    taken = {**owned("api", 301, rule_id=ID1), "description": "hand-edited"}
    plan = rules.plan([taken, FOREIGN_A], {API: owned("api", 600), WEB: owned("web", 900)})
    assert plan.conflicts.keys() == {API}
    assert plan.writes == [rules.Create(WEB, owned("web", 900))]


# -- in force, or taken away by a user's rule ---------------------------------------------


def _user(expression: str, **params: Any) -> dict[str, Any]:
    return user_rule(expression, "c" * 32, **params)


@pytest.mark.parametrize(
    ("rule", "seconds"),
    [
        pytest.param(owned("api", 301, rule_id=ID1), 301, id="canonical"),
        pytest.param({**owned("api", 301, rule_id=ID1), "expression": "(true)"}, None, id="edit"),
        pytest.param({**owned("api", 301, rule_id=ID1), "enabled": False}, None, id="off"),
        pytest.param({**owned("api", 301), "description": "x"}, None, id="not-owned"),
        pytest.param(FOREIGN_A, None, id="absent"),
    ],
)
def test_read_timeout_in_force_counts_only_the_untouched_owned_rule(
    rule: dict[str, Any], seconds: int | None
) -> None:
    found = rules.read_timeout_in_force(
        [rule, FOREIGN_A], "shop", "api", "api.example.com", "/export"
    )
    assert found == seconds


def test_a_rule_behind_a_matching_user_rule_is_not_in_force() -> None:
    """It would win over the user's bypass (the last matching rule wins): not as wanted."""
    current = [FOREIGN_B, owned("api", 301, rule_id=ID1)]
    assert rules.in_force(current, "shop", "api", "api.example.com", "/export") is None
    behind_unrelated = [FOREIGN_A, owned("api", 301, rule_id=ID1)]
    assert (
        rules.read_timeout_in_force(behind_unrelated, "shop", "api", "api.example.com", "/export")
        == 301
    )


@pytest.mark.parametrize(
    ("user", "overridden"),
    [
        pytest.param(_user('(http.host eq "api.example.com")', cache=False), True, id="bypass"),
        pytest.param(
            _user('(http.host eq "api.example.com")', cache=True, read_timeout=60),
            True,
            id="shorter-timeout",
        ),
        pytest.param(
            _user('(http.host eq "api.example.com")', cache=True, read_timeout=900),
            False,
            id="longer-timeout-takes-nothing-away",
        ),
        pytest.param(
            _user('(http.host eq "api.example.com")', cache=True), False, id="also-cacheable"
        ),
        pytest.param(_user('(http.host eq "img.example.com")', cache=False), False, id="host"),
        pytest.param(
            _user(f'starts_with({PATH}, "/exports")', cache=False), False, id="sibling-path"
        ),
        pytest.param(
            _user(f'starts_with({PATH}, "/export/big")', cache=False), True, id="deeper-path"
        ),
        pytest.param(_user(f'starts_with({PATH}, "/")', cache=False), True, id="every-path"),
        pytest.param(_user(f'{PATH} eq "/exports"', cache=False), False, id="other-exact"),
        pytest.param(
            _user('http.host in {"a.example.com" "api.example.com"}', cache=False), True, id="in"
        ),
        pytest.param(
            _user('not http.host eq "api.example.com"', cache=False), False, id="not-this-host"
        ),
        pytest.param(_user('http.request.method eq "POST"', cache=False), True, id="unread-counts"),
        pytest.param(_user('lower(http.host) eq "x"', cache=False), True, id="function"),
        pytest.param(_user("((garbage", cache=False), True, id="unreadable"),
        pytest.param(
            {**_user('(http.host eq "api.example.com")', cache=False), "enabled": False},
            False,
            id="disabled",
        ),
    ],
)
def test_a_later_user_rule_that_can_match_takes_the_timeout_away(
    user: dict[str, Any], overridden: bool
) -> None:
    found = rules.in_force(
        [owned("api", 301, rule_id=ID1), user], "shop", "api", "api.example.com", "/export"
    )
    assert found is not None
    assert bool(found.overridden_by) is overridden
    if overridden:
        assert "user_rule (by hand)" in str(found.overridden_by[0])


def test_another_routes_longer_rule_for_a_deeper_path_takes_nothing_away() -> None:
    """The demo's case: ``api`` (``/``) raised to 121 s, ``export`` (``/export``) at 301 s
    after it. Requests under /export wait 301 s: api's timeout is not taken away there."""
    whole_host = owned("api", 121, rule_id=ID1, prefix="/")
    deeper = owned("export", 301, prefix="/export")
    found = rules.in_force([whole_host, deeper], "shop", "api", "api.example.com", "/")
    assert found is not None
    assert found.overridden_by == ()
    shorter = owned("export", 60, prefix="/export")
    found = rules.in_force([whole_host, shorter], "shop", "api", "api.example.com", "/")
    assert found is not None
    assert "60s" in str(found.overridden_by[0])


def test_a_parameter_cloudflare_adds_does_not_count_as_a_change() -> None:
    stored = {**owned("api", 301, rule_id=ID1)}
    stored["action_parameters"] = {
        **stored["action_parameters"],
        "origin_error_page_passthru": False,
    }

    assert rules.matches(stored, owned("api", 301))
    assert not rules.matches(stored, owned("api", 302))
    assert rules.plan([stored], {API: owned("api", 301)}).writes == []


def test_the_zone_finds_a_routes_rule_once_per_entry_point() -> None:
    """Each pass asks every edge route's rule; the zone answers from what it found in the
    same entry point, and a read or a write (a new entry point) is looked at afresh."""
    zone = ZoneState(
        "edge",
        "zone",
        parse_cloudflare_zone({"zoneId": "0" * 32, "apiTokenSecretRef": {"name": "cf"}}),
        ApiToken("secret-token"),
        cast(CloudflareClient, None),  # never called here
    )
    ask = ("shop", "api", "api.example.com", "/export")
    assert zone.rule_in_force(*ask) is None  # no entry point read yet
    zone.entrypoint = Entrypoint("e" * 32, "1", [FOREIGN_A, owned("api", 301, rule_id=ID1)])
    first = zone.rule_in_force(*ask)
    assert first == rules.in_force(zone.rules, *ask)
    assert first is not None
    assert first.seconds == 301
    assert zone.rule_in_force(*ask) is first  # not looked for again
    assert zone.rule_in_force("shop", "api", "api.example.com", "/other") is None
    zone.entrypoint = Entrypoint("e" * 32, "2", [FOREIGN_B, owned("api", 301, rule_id=ID1)])
    assert zone.rule_in_force(*ask) is None  # now behind the user's rule
    zone.entrypoint = Entrypoint("e" * 32, "3", [owned("api", 600, rule_id=ID1)])
    found = zone.rule_in_force(*ask)
    assert found is not None
    assert found.seconds == 600
