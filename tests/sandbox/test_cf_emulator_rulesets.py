"""The Cache Rules entry point behaves like Cloudflare's: whole-list PUTs, stable ids for
rules sent back, versions, unique refs, plan quotas and Enterprise-only read timeouts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from sandbox.cloudflare_emulator import rulesets
from sandbox.cloudflare_emulator.api import Handler
from sandbox.cloudflare_emulator.protocol import ApiError, JsonObject, Request
from sandbox.cloudflare_emulator.state import CACHE_SETTINGS_PHASE, Plan, Store
from sandbox.cloudflare_emulator.validation import Validators
from tests.support.cache_rules import cache_settings_rule

pytestmark = pytest.mark.unit

ZONE = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def validators() -> Validators:
    return Validators.load()


def rule(ref: str, read_timeout: int | None = None) -> JsonObject:
    return cache_settings_rule(ref, f'(http.host eq "{ref}.example.com")', read_timeout)


def call(
    handler: Handler,
    store: Store,
    validators: Validators,
    body: Any = None,
    *,
    query: Mapping[str, list[str]] | None = None,
    **params: str,
) -> Any:
    request = Request("X", "/", query or {}, body, {"zone_id": ZONE, **params})
    reply = handler(store, validators, request)
    assert reply.status == 200
    assert reply.body is not None
    return reply.body["result"]


def put(store: Store, validators: Validators, rules: list[JsonObject]) -> JsonObject:
    result: JsonObject = call(
        rulesets.put_entrypoint, store, validators, {"rules": rules}, phase=CACHE_SETTINGS_PHASE
    )
    return result


def refused(
    handler: Handler, store: Store, validators: Validators, body: Any, **params: str
) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call(handler, store, validators, body, query=None, **params)
    return caught.value


def put_refused(store: Store, validators: Validators, rules: list[JsonObject]) -> ApiError:
    """The error a PUT of ``rules`` to the cache-settings entry point is refused with."""
    return refused(
        rulesets.put_entrypoint, store, validators, {"rules": rules}, phase=CACHE_SETTINGS_PHASE
    )


def zone_store(plan: Plan = Plan.ENTERPRISE) -> Store:
    store = Store()
    store.put_zone(ZONE, plan)
    return store


def holding(validators: Validators, rules: list[JsonObject]) -> tuple[Store, JsonObject]:
    """An Enterprise zone's store whose entry point holds ``rules``, and the ruleset PUT gave."""
    store = zone_store()
    return store, put(store, validators, rules)


def sent(rule: Mapping[str, Any]) -> JsonObject:
    """A rule as a client sends it back: without Cloudflare's read-only fields."""
    return {k: v for k, v in rule.items() if k not in rulesets.READ_ONLY_FIELDS}


def test_rules_sent_back_unchanged_keep_id_version_and_timestamp(validators: Validators) -> None:
    store = zone_store()
    first = put(store, validators, [rule("a", 300)])
    second = put(store, validators, [sent(first["rules"][0]), rule("b")])
    changed = {
        **sent(second["rules"][0]),
        "action_parameters": {"cache": True, "read_timeout": 600},
    }
    third = put(store, validators, [changed, sent(second["rules"][1])])

    assert [first["version"], second["version"], third["version"]] == ["1", "2", "3"]
    assert second["id"] == first["id"] == third["id"]
    assert second["rules"][0] == first["rules"][0]
    assert third["rules"][0]["id"] == first["rules"][0]["id"]
    assert third["rules"][0]["version"] == "2"
    assert third["rules"][1] == second["rules"][1]


@pytest.mark.parametrize("field", ["version", "last_updated", "categories"])
def test_read_only_fields_are_refused_in_every_write(validators: Validators, field: str) -> None:
    """readOnly in the OpenAPI; whether Cloudflare refuses them is NOT CONFIRMED: strict."""
    store = zone_store()
    first = put(store, validators, [rule("a", 300)])
    stored = first["rules"][0]
    value = stored.get(field, ["x"])
    put_error = put_refused(store, validators, [{**sent(stored), field: value}])
    assert put_error.errors[0].pointer == f"/rules/0/{field}"
    ids = {"ruleset_id": first["id"]}
    assert refused(rulesets.create_rule, store, validators, {**rule("b"), field: value}, **ids)
    assert refused(
        rulesets.edit_rule, store, validators, {field: value}, rule_id=stored["id"], **ids
    )


@pytest.mark.parametrize(
    "expression",
    [
        'starts_with(http.request.uri.path, "/x"',
        'http.hots eq "a"',
        'http.host eq "a" and',
        f'http.host eq "{"a" * 4100}"',
    ],
)
def test_an_expression_cloudflares_parser_refuses_is_refused(
    validators: Validators, expression: str
) -> None:
    error = put_refused(zone_store(), validators, [{**rule("a"), "expression": expression}])
    assert error.errors[0].pointer == "/rules/0/expression"


def test_creating_the_entry_point_never_replaces_one(validators: Validators) -> None:
    store = zone_store()
    body = {"kind": "zone", "name": "default", "phase": CACHE_SETTINGS_PHASE}
    created = call(rulesets.create_ruleset, store, validators, {**body, "rules": [rule("a")]})
    assert [r["ref"] for r in created["rules"]] == ["a"]

    again = refused(rulesets.create_ruleset, store, validators, {**body, "rules": [rule("b")]})
    assert "already exists" in again.errors[0].message
    assert [r["ref"] for r in put(store, validators, [sent(created["rules"][0])])["rules"]] == ["a"]


def test_rules_without_id_are_new_rules(validators: Validators) -> None:
    store = zone_store()
    first = put(store, validators, [rule("a")])
    second = put(store, validators, [rule("a")])

    assert first["rules"][0]["id"] != second["rules"][0]["id"]
    assert second["rules"][0]["version"] == "1"


def test_defaults_are_filled_in(validators: Validators) -> None:
    stored = put(zone_store(), validators, [rule("a")])["rules"][0]

    assert (stored["enabled"], stored["description"], stored["ref"]) == (True, "", "a")
    assert len(stored["id"]) == 32


def test_ref_defaults_to_the_rule_id(validators: Validators) -> None:
    body = {k: v for k, v in rule("a").items() if k != "ref"}
    stored = put(zone_store(), validators, [body])["rules"][0]

    assert stored["ref"] == stored["id"]


@pytest.mark.parametrize(
    ("plan", "quota"),
    [(Plan.FREE, 10), (Plan.PRO, 25), (Plan.BUSINESS, 50), (Plan.ENTERPRISE, 300)],
)
def test_plan_quota(validators: Validators, plan: Plan, quota: int) -> None:
    store = zone_store(plan)
    put(store, validators, [rule(f"r{i}") for i in range(quota)])

    error = put_refused(store, validators, [rule(f"r{i}") for i in range(quota + 1)])
    assert error.status == 400
    assert error.errors[0].pointer == "/rules"
    assert f"the {plan.value} plan allows {quota}" in error.errors[0].message


@pytest.mark.parametrize("plan", [Plan.FREE, Plan.PRO, Plan.BUSINESS])
def test_read_timeout_only_on_enterprise(validators: Validators, plan: Plan) -> None:
    error = put_refused(zone_store(plan), validators, [rule("a", 300)])
    assert [e.pointer for e in error.errors] == ["/rules/0/action_parameters/read_timeout"]


def test_unknown_rule_id_in_put_is_refused(validators: Validators) -> None:
    error = put_refused(zone_store(), validators, [{**rule("a"), "id": "f" * 32}])
    assert [e.pointer for e in error.errors] == ["/rules/0/id"]


def test_blank_expression_is_refused(validators: Validators) -> None:
    error = put_refused(zone_store(), validators, [{**rule("a"), "expression": "   "}])
    assert [e.pointer for e in error.errors] == ["/rules/0/expression"]


def test_other_phases_are_not_emulated(validators: Validators) -> None:
    error = refused(rulesets.get_entrypoint, zone_store(), validators, None, phase="http_ratelimit")
    assert error.status == 404


def test_dry_run_validates_without_applying(validators: Validators) -> None:
    store = zone_store()
    result = call(
        rulesets.put_entrypoint,
        store,
        validators,
        {"rules": [rule("a")]},
        query={"dry_run": ["true"]},
        phase=CACHE_SETTINGS_PHASE,
    )

    assert result is None
    assert store.zones[ZONE].entrypoints == {}


@pytest.mark.parametrize(
    ("position", "order"),
    [
        (None, ["a", "b", "new"]),
        ({"index": 1}, ["new", "a", "b"]),
        ({"index": 2}, ["a", "new", "b"]),
        ({"index": 99}, ["a", "b", "new"]),
        ({"before": ""}, ["new", "a", "b"]),
        ({"after": ""}, ["a", "b", "new"]),
        ({"before": "B"}, ["a", "new", "b"]),
        ({"after": "A"}, ["a", "new", "b"]),
    ],
)
def test_created_rule_goes_where_position_says(
    validators: Validators, position: Any, order: list[str]
) -> None:
    store, existing = holding(validators, [rule("a"), rule("b")])
    ids = {"A": existing["rules"][0]["id"], "B": existing["rules"][1]["id"]}
    if position and position.get("before") in ids:
        position = {"before": ids[position["before"]]}
    if position and position.get("after") in ids:
        position = {"after": ids[position["after"]]}
    body = {**rule("new"), **({"position": position} if position else {})}

    result = call(rulesets.create_rule, store, validators, body, ruleset_id=existing["id"])

    assert [r["ref"] for r in result["rules"]] == order
    assert "position" not in result["rules"][order.index("new")]


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        pytest.param(
            {**rule("new"), "position": {"before": "e" * 32}},
            "/position/before",
            id="position-naming-an-unknown-rule",
        ),
        pytest.param(rule("a"), "/ref", id="taken-ref"),
    ],
)
def test_created_rule_is_refused(validators: Validators, body: JsonObject, pointer: str) -> None:
    store, existing = holding(validators, [rule("a")])
    error = refused(rulesets.create_rule, store, validators, body, ruleset_id=existing["id"])
    assert [e.pointer for e in error.errors] == [pointer]


def test_edit_is_a_partial_update_that_bumps_the_rule_version(validators: Validators) -> None:
    store, existing = holding(validators, [{**rule("a", 300), "description": "kept"}, rule("b")])
    target = existing["rules"][0]

    result = call(
        rulesets.edit_rule,
        store,
        validators,
        {"action_parameters": {"cache": True, "read_timeout": 900}, "position": {"index": 2}},
        ruleset_id=existing["id"],
        rule_id=target["id"],
    )

    moved = result["rules"][1]
    assert (moved["id"], moved["version"], moved["description"]) == (target["id"], "2", "kept")
    assert moved["action_parameters"] == {"cache": True, "read_timeout": 900}
    assert result["version"] == "2"


def test_edit_that_breaks_the_rule_is_refused(validators: Validators) -> None:
    store, existing = holding(validators, [rule("a")])
    error = refused(
        rulesets.edit_rule,
        store,
        validators,
        {"action": "log"},
        ruleset_id=existing["id"],
        rule_id=existing["rules"][0]["id"],
    )
    assert [e.pointer for e in error.errors] == ["/action"]
    assert store.zones[ZONE].entrypoints[CACHE_SETTINGS_PHASE].version == 1


def test_delete_removes_the_rule_and_makes_a_new_version(validators: Validators) -> None:
    store, existing = holding(validators, [rule("a"), rule("b")])

    result = call(
        rulesets.delete_rule,
        store,
        validators,
        ruleset_id=existing["id"],
        rule_id=existing["rules"][0]["id"],
    )

    assert [r["ref"] for r in result["rules"]] == ["b"]
    assert result["version"] == "2"


def test_seeded_foreign_rules_are_appended(validators: Validators) -> None:
    store = zone_store()
    put(store, validators, [rule("ours")])

    seeded = rulesets.seed_rules(store, validators, ZONE, [rule("theirs")])

    assert [r["ref"] for r in seeded["rules"]] == ["ours", "theirs"]
