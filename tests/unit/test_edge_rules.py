"""The operator's Cache Rules among other people's: refs, descriptions, expressions, merge.

What a user would see in the dashboard: one rule per route with a readable ref and a
description naming the TimeoutBudget, an expression that matches exactly the route's host
and path prefix whatever characters they hold, and every rule of another tool left as it
was, in its place.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from timeout_budget.decide import rules

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


def owned(name: str, seconds: int, *, host: str = "api.example.com", rule_id: str = "") -> dict:
    rule = rules.desired_rule("shop", name, host, "/export", seconds)
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


@pytest.mark.parametrize(
    ("host", "path", "expected"),
    [
        (
            "api.example.com",
            "/export",
            '(http.host eq "api.example.com" and starts_with(http.request.uri.path, "/export"))',
        ),
        ("API.Example.com", "/", '(http.host eq "api.example.com")'),
        (
            "api.example.com",
            '/a"b',
            '(http.host eq "api.example.com" and starts_with(http.request.uri.path, "/a\\"b"))',
        ),
        (
            "api.example.com",
            "/a\\",
            '(http.host eq "api.example.com" and starts_with(http.request.uri.path, "/a\\\\"))',
        ),
    ],
)
def test_expression_quotes_host_and_path(host: str, path: str, expected: str) -> None:
    assert rules.expression(host, path) == expected


@pytest.mark.parametrize(
    "path",
    [
        '/x") or (http.host ne "',
        '/x\\") or true or ("',
        '/x\\\\") or true or ("',
        '/"',
        "/\\",
    ],
)
def test_a_hostile_path_stays_inside_its_string_literal(path: str) -> None:
    built = rules.expression("api.example.com", path)
    literal = built[built.index("path, ") + len("path, ") : -2]

    assert _unquote(literal) == path
    assert built.endswith('"))')


@pytest.mark.parametrize("host", ['evil.com" or http.host ne "x', 'a\\" or true or "'])
def test_a_hostile_host_stays_inside_its_string_literal(host: str) -> None:
    built = rules.expression(host, "/")
    assert built.startswith("(http.host eq ")
    assert _unquote(built[len("(http.host eq ") : -1]) == host.lower()


@pytest.mark.parametrize("value", ["/a\nb", "/a\x00", "/\x7f"])
def test_control_characters_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="control character"):
        rules.expression("api.example.com", value)


def test_path_prefix_must_start_with_a_slash() -> None:
    with pytest.raises(ValueError, match="must start with '/'"):
        rules.expression("api.example.com", "export")


def _unquote(literal: str) -> str:
    """Read one Rules-language string literal, failing if it ends early."""
    assert literal[0] == '"'
    assert literal[-1] == '"'
    out, i, body = [], 0, literal[1:-1]
    while i < len(body):
        char = body[i]
        if char == "\\":
            out.append(body[i + 1])
            i += 2
            continue
        assert char != '"', f"the literal ends early at {i}: {literal}"
        out.append(char)
        i += 1
    return "".join(out)


# -- the rule ----------------------------------------------------------------------------


def test_desired_rule_sets_cache_and_read_timeout() -> None:
    assert rules.desired_rule("shop", "api-export", "api.example.com", "/export", 301) == {
        "ref": "tbo_shop_api-export",
        "description": "managed by timeout-budget-operator: TimeoutBudget shop/api-export",
        "expression": (
            '(http.host eq "api.example.com" and starts_with(http.request.uri.path, "/export"))'
        ),
        "action": "set_cache_settings",
        "action_parameters": {"cache": True, "read_timeout": 301},
        "enabled": True,
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


# -- merge ---------------------------------------------------------------------------------

API = rules.rule_ref("shop", "api")
WEB = rules.rule_ref("shop", "web")


@pytest.mark.parametrize(
    ("current", "desired", "expected"),
    [
        pytest.param([], {API: owned("api", 301)}, [owned("api", 301)], id="create-in-empty"),
        pytest.param(
            [FOREIGN_A, FOREIGN_B],
            {API: owned("api", 301)},
            [FOREIGN_A, FOREIGN_B, owned("api", 301)],
            id="append-after-foreign",
        ),
        pytest.param(
            [FOREIGN_A, owned("api", 200, rule_id="1" * 32), FOREIGN_B],
            {API: owned("api", 301)},
            [FOREIGN_A, {"id": "1" * 32, **owned("api", 301)}, FOREIGN_B],
            id="update-in-place-keeping-id",
        ),
        pytest.param(
            [FOREIGN_A, owned("api", 301, rule_id="1" * 32), FOREIGN_B],
            {API: owned("api", 301)},
            [FOREIGN_A, owned("api", 301, rule_id="1" * 32), FOREIGN_B],
            id="unchanged-kept-as-read",
        ),
        pytest.param(
            [FOREIGN_A, owned("api", 301, rule_id="1" * 32), FOREIGN_B],
            {API: None},
            [FOREIGN_A, FOREIGN_B],
            id="remove",
        ),
        pytest.param([FOREIGN_A], {API: None}, [FOREIGN_A], id="remove-absent"),
        pytest.param(
            [owned("web", 900, rule_id="2" * 32), FOREIGN_A],
            {API: owned("api", 301)},
            [owned("web", 900, rule_id="2" * 32), FOREIGN_A, owned("api", 301)],
            id="other-owned-untouched",
        ),
        pytest.param(
            [FOREIGN_B],
            {WEB: owned("web", 900), API: owned("api", 301)},
            [FOREIGN_B, owned("api", 301), owned("web", 900)],
            id="several-appended-in-ref-order",
        ),
        pytest.param(
            [{**owned("api", 301, rule_id="1" * 32), "enabled": False}],
            {API: owned("api", 301)},
            [{"id": "1" * 32, **owned("api", 301)}],
            id="disabled-by-hand-is-enabled-again",
        ),
    ],
)
def test_merge_keeps_foreign_rules_exactly_and_in_order(
    current: list[dict[str, Any]],
    desired: dict[str, dict[str, Any] | None],
    expected: list[dict[str, Any]],
) -> None:
    before = copy.deepcopy(current)

    merged = rules.merge(current, desired)

    assert merged == expected
    assert current == before  # the input is not modified
    foreign = [r for r in merged if not rules.is_owned(r)]
    assert foreign == [r for r in current if not rules.is_owned(r)]


def test_merge_refuses_a_ref_held_by_a_foreign_rule() -> None:
    taken = {**owned("api", 301, rule_id="1" * 32), "description": "hand-edited"}

    with pytest.raises(rules.RefConflict, match="edited by someone"):
        rules.merge([taken], {API: owned("api", 600)})
    assert rules.conflicts([taken, FOREIGN_A], [API, WEB]).keys() == {API}


@pytest.mark.parametrize(
    ("current", "desired", "write"),
    [
        pytest.param([FOREIGN_A], {API: None}, False, id="nothing-to-remove"),
        pytest.param(
            [FOREIGN_A, owned("api", 301, rule_id="1" * 32)],
            {API: owned("api", 301)},
            False,
            id="already-there",
        ),
        pytest.param([FOREIGN_A], {API: owned("api", 301)}, True, id="new-rule"),
        pytest.param(
            [owned("api", 301, rule_id="1" * 32)], {API: owned("api", 302)}, True, id="new-value"
        ),
        pytest.param([owned("api", 301, rule_id="1" * 32)], {API: None}, True, id="removal"),
        pytest.param([], {}, False, id="empty"),
    ],
)
def test_needs_write_only_for_a_real_change(
    current: list[dict[str, Any]], desired: dict[str, dict[str, Any] | None], write: bool
) -> None:
    assert rules.needs_write(current, rules.merge(current, desired)) is write


@pytest.mark.parametrize(
    ("rule", "seconds"),
    [
        pytest.param(owned("api", 301, rule_id="1" * 32), 301, id="canonical"),
        pytest.param(
            {**owned("api", 301, rule_id="1" * 32), "expression": "(true)"}, None, id="edited"
        ),
        pytest.param({**owned("api", 301, rule_id="1" * 32), "enabled": False}, None, id="off"),
        pytest.param({**owned("api", 301), "description": "x"}, None, id="not-owned"),
        pytest.param(FOREIGN_A, None, id="absent"),
    ],
)
def test_read_timeout_in_force_counts_only_the_untouched_owned_rule(
    rule: dict[str, Any], seconds: int | None
) -> None:
    found = rules.read_timeout_in_force(
        [FOREIGN_B, rule], "shop", "api", "api.example.com", "/export"
    )
    assert found == seconds


def test_a_parameter_cloudflare_adds_does_not_count_as_a_change() -> None:
    stored = {**owned("api", 301, rule_id="1" * 32)}
    stored["action_parameters"] = {
        **stored["action_parameters"],
        "origin_error_page_passthru": False,
    }

    assert rules.matches(stored, owned("api", 301))
    assert not rules.matches(stored, owned("api", 302))
    assert not rules.needs_write([stored], rules.merge([stored], {API: owned("api", 301)}))
