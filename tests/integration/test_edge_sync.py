"""Zone reconciliation and per-route Cache Rules, through the real SDK against the emulator.

Each test asserts what a user would see: the CloudflareZone's status and conditions, the
rules in the zone's ruleset, and the requests that reached Cloudflare.
"""

from __future__ import annotations

from typing import Any

import cloudflare
import pytest

from tests.integration.edge_fixtures import (
    NS,
    PHASE_PATH,
    TOKEN,
    ZONE,
    Clocks,
    cache_rule,
    condition,
    cycle,
    emulated,
    key,
    read_timeout,
    registry_for,
    route_spec,
    run,
    zone_spec,
)
from timeout_budget.decide import rules
from timeout_budget.edge import EdgeRefused

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_ambient_credentials")]


# -- the zone ------------------------------------------------------------------------------


def test_pro_zone_timeout_is_read_and_the_plan_condition_says_why_it_stays() -> None:
    clocks = Clocks()
    with emulated(clocks) as emu:
        zone_id = emu.add_zone(plan="pro", proxy_read_timeout=120)
        registry = registry_for(emu, clocks)
        spec = zone_spec(zone_id, proxyReadTimeoutSeconds=300)
        route = route_spec(required=300)

        async def scenario() -> tuple[dict[str, Any], Any]:
            status = await registry.reconcile_zone(NS, ZONE, spec, TOKEN)
            return status, registry.observe(NS, key("api"), route)

        status, seen = run(registry, scenario)
        patches = emu.requests(method="PATCH")

    assert status["effectiveProxyReadTimeoutSeconds"] == 120
    assert (status["editable"], status["plan"]) == (False, "not-editable")
    enforced = condition(status, "ProxyReadTimeoutEnforced")
    assert (enforced["status"], enforced["reason"]) == ("False", "NotEditable")
    assert enforced["message"] == (
        "the zone's plan does not allow changing proxy_read_timeout (Enterprise only): "
        "it stays at 120s, not the 300s asked for"
    )
    assert condition(status, "EdgeSynced")["status"] == "True"
    assert patches == []  # never a blind PATCH
    # The zone's effective timeout is what the route's default budget becomes.
    assert (seen.zone_timeout_seconds, seen.editable) == (120, False)
    assert route.budget_seconds(seen.zone_timeout_seconds) == 120


def test_enterprise_zone_timeout_is_enforced_once() -> None:
    clocks = Clocks()
    with emulated(clocks) as emu:
        zone_id = emu.add_zone(plan="enterprise", proxy_read_timeout=100)
        registry = registry_for(emu, clocks)
        spec = zone_spec(zone_id, proxyReadTimeoutSeconds=300)

        async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
            first = await registry.reconcile_zone(NS, ZONE, spec, TOKEN)
            clocks.advance(300)
            return first, await registry.reconcile_zone(
                NS, ZONE, spec, TOKEN, previous_status=first
            )

        first, second = run(registry, scenario)
        patches = emu.requests(method="PATCH")
        setting = emu.setting(zone_id)

    assert [(p.path.rsplit("/", 1)[-1], p.body) for p in patches] == [
        ("proxy_read_timeout", {"value": 300})
    ]
    assert setting["value"] == 300
    assert first["effectiveProxyReadTimeoutSeconds"] == second["effectiveProxyReadTimeoutSeconds"]
    assert condition(second, "ProxyReadTimeoutEnforced")["reason"] == "Enforced"
    assert first["lastSyncTime"] != second["lastSyncTime"]
    # The condition held: its transition time did not move.
    assert (
        condition(first, "EdgeSynced")["lastTransitionTime"]
        == condition(second, "EdgeSynced")["lastTransitionTime"]
    )


def test_zone_status_reports_requests_left_and_managed_refs() -> None:
    clocks = Clocks()
    with emulated(clocks) as emu:
        zone_id = emu.add_zone(plan="enterprise")
        registry = registry_for(emu, clocks)
        spec = zone_spec(zone_id, apiRequestBudget=50)
        route = route_spec(required=300)

        async def scenario() -> dict[str, Any]:
            await registry.reconcile_zone(NS, ZONE, spec, TOKEN)
            await cycle(registry, {key("api"): route}, {key("api"): [read_timeout(route, 301)]})
            return await registry.reconcile_zone(NS, ZONE, spec, TOKEN)

        status = run(registry, scenario)
        sent = len(emu.requests())

    assert status["managedRuleRefs"] == ["tbo_shop_api"]
    assert status["requestsRemaining"] == 50 - sent
    assert status["rateLimitedUntil"] is None


def test_cloudflare_email_in_the_environment_does_not_replace_the_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLOUDFLARE_EMAIL", "ops@example.com")
    monkeypatch.setenv("CLOUDFLARE_API_KEY", "global-key")
    clocks = Clocks()
    with emulated(clocks) as emu:
        zone_id = emu.add_zone(plan="enterprise")
        registry = registry_for(emu, clocks)

        status = run(registry, lambda: registry.reconcile_zone(NS, ZONE, zone_spec(zone_id), TOKEN))

    assert condition(status, "EdgeSynced")["status"] == "True"


# -- per-route Cache Rules -------------------------------------------------------------------


def test_route_requiring_300s_gets_exactly_one_rule_with_read_timeout_301() -> None:
    clocks = Clocks()
    with emulated(clocks) as emu:
        zone_id = emu.add_zone(plan="enterprise", proxy_read_timeout=120)
        registry = registry_for(emu, clocks)
        route = route_spec(required=300)

        async def scenario() -> tuple[dict[str, str], Any, Any]:
            await registry.reconcile_zone(NS, ZONE, zone_spec(zone_id), TOKEN)
            failures = await cycle(
                registry, {key("api"): route}, {key("api"): [read_timeout(route, 301)]}
            )
            seen = registry.observe(NS, key("api"), route)
            return failures, seen, registry.conditions(NS, key("api"), route)

        failures, seen, conditions = run(registry, scenario)
        found = emu.rules(zone_id)

    assert failures == {}
    assert len(found) == 1
    rule = found[0]
    assert rule["ref"] == "tbo_shop_api"
    assert rule["description"] == "managed by timeout-budget-operator: TimeoutBudget shop/api"
    assert rule["expression"] == (
        '(http.host eq "api.example.com" and (http.request.uri.path eq "/export" or '
        'starts_with(http.request.uri.path, "/export/")))'
    )
    assert rule["action_parameters"] == {**rules.CACHE_PARAMETERS, "read_timeout": 301}
    assert seen.route_timeout_seconds == 301
    assert [(c.type, c.status.value, c.reason) for c in conditions] == [
        ("EdgeSynced", "True", "Synced")
    ]
    assert "Cache Rule tbo_shop_api sets the read timeout to 301s" in conditions[0].message


def test_foreign_rules_survive_byte_for_byte_and_in_order() -> None:
    clocks = Clocks()
    with emulated(clocks) as emu:
        zone_id = emu.add_zone(plan="enterprise")
        unusual = cache_rule(
            "dashboard-static",
            "static.example.com",
            enabled=False,
            logging={"enabled": True},
            action_parameters={
                "cache": True,
                "browser_ttl": {"mode": "respect_origin"},
                "serve_stale": {"disable_stale_while_updating": True},
            },
        )
        emu.add_rules(zone_id, [unusual, cache_rule("terraform_www", "www.example.com")])
        before = emu.rules(zone_id)
        registry = registry_for(emu, clocks)
        api, web = route_spec(required=300), route_spec("web.example.com", "/", required=900)
        routes = {key("api"): api, key("web"): web}

        async def scenario() -> None:
            await registry.reconcile_zone(NS, ZONE, zone_spec(zone_id), TOKEN)
            await cycle(registry, routes, {key("api"): [read_timeout(api, 301)]})
            await cycle(registry, routes, {key("web"): [read_timeout(web, 901)]})
            await cycle(registry, routes, {key("api"): [read_timeout(api, None)]})

        run(registry, scenario)
        after = emu.rules(zone_id)

    assert after[1:] == before  # same ids, versions, timestamps, fields, order
    assert [r["ref"] for r in after] == ["tbo_shop_web", "dashboard-static", "terraform_www"]


def test_ten_routes_changing_in_one_cycle_cost_one_read_and_one_create_each() -> None:
    clocks = Clocks()
    with emulated(clocks) as emu:
        zone_id = emu.add_zone(plan="enterprise")
        emu.add_rules(zone_id, [cache_rule("other", "other.example.com")])
        registry = registry_for(emu, clocks)
        routes = {key(f"r{i}"): route_spec(f"h{i}.example.com", required=300) for i in range(10)}
        actions = {k: [read_timeout(s, 301 + i)] for i, (k, s) in enumerate(routes.items())}

        async def scenario() -> dict[str, str]:
            await registry.reconcile_zone(NS, ZONE, zone_spec(zone_id), TOKEN)
            emu.clear_requests()
            return await cycle(registry, routes, actions)

        failures = run(registry, scenario)
        traffic = [(e.method, e.path.endswith(PHASE_PATH)) for e in emu.requests()]
        found = emu.rules(zone_id)

    assert failures == {}
    assert traffic == [("GET", True)] + [("POST", False)] * 10  # read, then one per rule
    assert len(found) == 11
    assert found[-1]["ref"] == "other"  # the user's rule stays last: it still wins
    assert sorted(r["action_parameters"].get("read_timeout", 0) for r in found[:-1]) == list(
        range(301, 311)
    )


def test_nothing_to_change_sends_no_write() -> None:
    clocks = Clocks()
    with emulated(clocks) as emu:
        zone_id = emu.add_zone(plan="enterprise")
        registry = registry_for(emu, clocks)
        route = route_spec(required=300)
        routes = {key("api"): route}

        async def scenario() -> None:
            await registry.reconcile_zone(NS, ZONE, zone_spec(zone_id), TOKEN)
            await cycle(registry, routes, {key("api"): [read_timeout(route, 301)]})
            await cycle(registry, routes, {key("api"): [read_timeout(route, 301)]})
            await cycle(registry, routes, {})

        run(registry, scenario)
        writes = [e for e in emu.requests() if e.method != "GET"]

    assert len(writes) == 1


def test_rule_quota_refusal_is_reported_for_each_route() -> None:
    clocks = Clocks()
    with emulated(clocks) as emu:
        zone_id = emu.add_zone(plan="enterprise")
        emu.add_rules(zone_id, [cache_rule(f"f{i}", f"f{i}.example.com") for i in range(299)])
        registry = registry_for(emu, clocks)
        a, b = route_spec("a.example.com", required=300), route_spec("b.example.com", required=300)
        routes = {key("a"): a, key("b"): b}

        async def scenario() -> tuple[dict[str, str], Any]:
            await registry.reconcile_zone(NS, ZONE, zone_spec(zone_id), TOKEN)
            failures = await cycle(
                registry,
                routes,
                {key("a"): [read_timeout(a, 301)], key("b"): [read_timeout(b, 301)]},
            )
            return failures, registry.conditions(NS, key("a"), a)

        failures, conditions = run(registry, scenario)
        count = len(emu.rules(zone_id))

    # One refused rule fails only its route: the other is written.
    assert failures.keys() == {key("b")}
    assert "exceeded maximum number of rules" in failures[key("b")]
    assert "the enterprise plan allows 300" in failures[key("b")]
    assert (conditions[0].status.value, conditions[0].reason) == ("True", "Synced")
    assert count == 300


def test_plan_without_read_timeout_refuses_before_sending() -> None:
    clocks = Clocks()
    with emulated(clocks) as emu:
        zone_id = emu.add_zone(plan="business")
        registry = registry_for(emu, clocks)
        route = route_spec(required=300)

        async def scenario() -> str:
            await registry.reconcile_zone(NS, ZONE, zone_spec(zone_id), TOKEN)
            registry.observe(NS, key("api"), route)
            sent = len(emu.requests())
            with pytest.raises(EdgeRefused) as refused:
                await registry.apply(NS, key("api"), route, [read_timeout(route, 301)])
            failures = await registry.flush()
            assert len(emu.requests()) == sent
            assert failures[key("api")] == str(refused.value)
            return str(refused.value)

        message = run(registry, scenario)

    assert "Enterprise only" in message


def test_a_foreign_rule_holding_our_ref_fails_only_that_route() -> None:
    clocks = Clocks()
    with emulated(clocks) as emu:
        zone_id = emu.add_zone(plan="enterprise")
        taken = rules.desired_rule(NS, "a", "a.example.com", "/export", 301)
        emu.add_rules(zone_id, [{**taken, "description": "mine now"}])
        registry = registry_for(emu, clocks)
        a, b = route_spec("a.example.com", required=600), route_spec("b.example.com", required=300)
        routes = {key("a"): a, key("b"): b}

        async def scenario() -> dict[str, str]:
            await registry.reconcile_zone(NS, ZONE, zone_spec(zone_id), TOKEN)
            return await cycle(
                registry,
                routes,
                {key("a"): [read_timeout(a, 601)], key("b"): [read_timeout(b, 301)]},
            )

        failures = run(registry, scenario)
        found = emu.rules(zone_id)

    assert list(failures) == [key("a")]
    assert "exists but its description is not" in failures[key("a")]
    assert [(r["ref"], r["description"]) for r in found] == [
        ("tbo_shop_b", "managed by timeout-budget-operator: TimeoutBudget shop/b"),
        ("tbo_shop_a", "mine now"),
    ]


def test_an_owned_rule_edited_or_deleted_by_hand_is_restored() -> None:
    clocks = Clocks()
    with emulated(clocks) as emu:
        zone_id = emu.add_zone(plan="enterprise")
        registry = registry_for(emu, clocks)
        route = route_spec(required=300)
        routes = {key("api"): route}
        spec = zone_spec(zone_id)
        wanted = {key("api"): [read_timeout(route, 301)]}

        def by_hand(change: dict[str, Any] | None) -> None:
            with cloudflare.Cloudflare(api_token=TOKEN, base_url=emu.base_url) as dashboard:
                current = [rules.writable(r) for r in emu.rules(zone_id)]
                edited = [{**r, **change} for r in current] if change is not None else []
                dashboard.rulesets.phases.update(
                    "http_request_cache_settings", zone_id=zone_id, rules=edited
                )

        async def drift(change: dict[str, Any] | None) -> Any:
            by_hand(change)
            clocks.advance(300)
            await registry.reconcile_zone(NS, ZONE, spec, TOKEN)  # the periodic re-read
            seen = registry.observe(NS, key("api"), route)
            await cycle(registry, routes, wanted if seen.route_timeout_seconds != 301 else {})
            return seen.route_timeout_seconds

        async def scenario() -> list[Any]:
            await registry.reconcile_zone(NS, ZONE, spec, TOKEN)
            await cycle(registry, routes, wanted)
            edited = await drift(
                {"action_parameters": {**rules.CACHE_PARAMETERS, "read_timeout": 100}}
            )
            after_edit = emu.rules(zone_id)[0]["action_parameters"]
            deleted = await drift(None)
            return [edited, after_edit, deleted]

        edited, after_edit, deleted = run(registry, scenario)
        final = emu.rules(zone_id)

    assert edited == 100  # seen as drift
    assert after_edit == {**rules.CACHE_PARAMETERS, "read_timeout": 301}  # and put back
    assert deleted is None
    assert [r["action_parameters"]["read_timeout"] for r in final] == [301]


def test_finalize_removes_only_the_routes_rule() -> None:
    clocks = Clocks()
    with emulated(clocks) as emu:
        zone_id = emu.add_zone(plan="enterprise")
        emu.add_rules(zone_id, [cache_rule("other", "other.example.com")])
        registry = registry_for(emu, clocks)
        a, b = route_spec("a.example.com", required=300), route_spec("b.example.com", required=300)
        routes = {key("a"): a, key("b"): b}

        async def scenario() -> None:
            await registry.reconcile_zone(NS, ZONE, zone_spec(zone_id), TOKEN)
            await cycle(
                registry,
                routes,
                {key("a"): [read_timeout(a, 301)], key("b"): [read_timeout(b, 301)]},
            )
            await registry.finalize_route(NS, key("a"), a)
            assert registry.routes_using(NS, ZONE) == [key("b")]

        run(registry, scenario)
        found = [r["ref"] for r in emu.rules(zone_id)]

    assert found == ["tbo_shop_b", "other"]


def test_route_of_an_unknown_zone_is_reported_not_ready() -> None:
    clocks = Clocks()
    with emulated(clocks) as emu:
        registry = registry_for(emu, clocks)
        route = route_spec(required=300, zone="missing")

        async def scenario() -> tuple[Any, dict[str, str], Any]:
            seen = registry.observe(NS, key("api"), route)
            failures = await cycle(
                registry, {key("api"): route}, {key("api"): [read_timeout(route, 301)]}
            )
            return seen, failures, registry.conditions(NS, key("api"), route)

        seen, failures, conditions = run(registry, scenario)

    assert seen is None
    assert "CloudflareZone shop/missing: not created, or not read" in failures[key("api")]
    assert (conditions[0].reason, conditions[0].status.value) == ("ZoneNotReady", "False")


def test_second_cloudflarezone_for_the_same_zone_id_is_refused() -> None:
    clocks = Clocks()
    with emulated(clocks) as emu:
        zone_id = emu.add_zone(plan="enterprise")
        registry = registry_for(emu, clocks)

        async def scenario() -> dict[str, Any]:
            await registry.reconcile_zone(NS, ZONE, zone_spec(zone_id), TOKEN)
            return await registry.reconcile_zone("other", "dup", zone_spec(zone_id), TOKEN)

        status = run(registry, scenario)

    synced = condition(status, "EdgeSynced")
    assert (synced["status"], synced["reason"]) == ("False", "ZoneIdInUse")
    assert "already synced through CloudflareZone shop/edge" in synced["message"]
