"""Zone reconciliation and per-route Cache Rules, through the real SDK against the emulator.

Each test asserts what a user would see: the CloudflareZone's status and conditions, the
rules in the zone's ruleset, and the requests that reached Cloudflare.
"""

from __future__ import annotations

from typing import Any

import cloudflare
import pytest

from tests.integration.edge_fixtures import (
    API,
    NS,
    PHASE_PATH,
    TOKEN,
    ZONE,
    EdgeWorld,
    cache_rule,
    condition,
    key,
    read_timeout,
    route_spec,
    zone_spec,
)
from timeout_budget.decide import rules
from timeout_budget.edge import EdgeRefused

pytestmark = pytest.mark.integration


# -- the zone ------------------------------------------------------------------------------


def test_pro_zone_timeout_is_read_and_the_plan_condition_says_why_it_stays(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="pro", proxy_read_timeout=120)
    spec = zone_spec(zone_id, proxyReadTimeoutSeconds=300)
    route = route_spec(required=300)

    async def scenario() -> tuple[dict[str, Any], Any]:
        status = await edge.sync(spec)
        return status, edge.registry.observe(NS, API, route)

    status, seen = edge.run(scenario)
    patches = edge.emu.requests(method="PATCH")

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


def test_enterprise_zone_timeout_is_enforced_once(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="enterprise", proxy_read_timeout=100)
    spec = zone_spec(zone_id, proxyReadTimeoutSeconds=300)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        first = await edge.sync(spec)
        edge.clocks.advance(300)
        return first, await edge.sync(spec, previous=first)

    first, second = edge.run(scenario)
    patches = edge.emu.requests(method="PATCH")
    setting = edge.emu.setting(zone_id)

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


def test_zone_status_reports_requests_left_and_managed_refs(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="enterprise")
    spec = zone_spec(zone_id, apiRequestBudget=50)
    route = route_spec(required=300)

    async def scenario() -> dict[str, Any]:
        await edge.sync(spec)
        await edge.cycle_api(route, read_timeout(route, 301))
        return await edge.sync(spec)

    status = edge.run(scenario)
    sent = len(edge.emu.requests())

    assert status["managedRuleRefs"] == ["tbo_shop_api"]
    assert status["requestsRemaining"] == 50 - sent
    assert status["rateLimitedUntil"] is None


def test_cloudflare_email_in_the_environment_does_not_replace_the_token(
    monkeypatch: pytest.MonkeyPatch, edge: EdgeWorld
) -> None:
    monkeypatch.setenv("CLOUDFLARE_EMAIL", "ops@example.com")
    monkeypatch.setenv("CLOUDFLARE_API_KEY", "global-key")
    zone_id = edge.emu.add_zone(plan="enterprise")

    status = edge.run(lambda: edge.sync(zone_id))

    assert condition(status, "EdgeSynced")["status"] == "True"


# -- per-route Cache Rules -------------------------------------------------------------------


def test_route_requiring_300s_gets_exactly_one_rule_with_read_timeout_301(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="enterprise", proxy_read_timeout=120)
    route = route_spec(required=300)

    async def scenario() -> tuple[dict[str, str], Any, Any]:
        await edge.sync(zone_id)
        failures = await edge.cycle_api(route, read_timeout(route, 301))
        seen = edge.registry.observe(NS, API, route)
        return failures, seen, edge.registry.conditions(NS, API, route)

    failures, seen, conditions = edge.run(scenario)
    found = edge.emu.rules(zone_id)

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


def test_foreign_rules_survive_byte_for_byte_and_in_order(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="enterprise")
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
    edge.emu.add_rules(zone_id, [unusual, cache_rule("terraform_www", "www.example.com")])
    before = edge.emu.rules(zone_id)
    api, web = route_spec(required=300), route_spec("web.example.com", "/", required=900)
    routes = {API: api, key("web"): web}

    async def scenario() -> None:
        await edge.sync(zone_id)
        await edge.cycle(routes, {API: [read_timeout(api, 301)]})
        await edge.cycle(routes, {key("web"): [read_timeout(web, 901)]})
        await edge.cycle(routes, {API: [read_timeout(api, None)]})

    edge.run(scenario)
    after = edge.emu.rules(zone_id)

    assert after[1:] == before  # same ids, versions, timestamps, fields, order
    assert [r["ref"] for r in after] == ["tbo_shop_web", "dashboard-static", "terraform_www"]


def test_ten_routes_changing_in_one_cycle_cost_one_read_and_one_create_each(
    edge: EdgeWorld,
) -> None:
    zone_id = edge.emu.add_zone(plan="enterprise")
    edge.emu.add_rules(zone_id, [cache_rule("other", "other.example.com")])
    routes = {key(f"r{i}"): route_spec(f"h{i}.example.com", required=300) for i in range(10)}
    actions = {k: [read_timeout(s, 301 + i)] for i, (k, s) in enumerate(routes.items())}

    async def scenario() -> dict[str, str]:
        await edge.sync(zone_id)
        edge.emu.clear_requests()
        return await edge.cycle(routes, actions)

    failures = edge.run(scenario)
    traffic = [(e.method, e.path.endswith(PHASE_PATH)) for e in edge.emu.requests()]
    found = edge.emu.rules(zone_id)

    assert failures == {}
    assert traffic == [("GET", True)] + [("POST", False)] * 10  # read, then one per rule
    assert len(found) == 11
    assert found[-1]["ref"] == "other"  # the user's rule stays last: it still wins
    assert sorted(r["action_parameters"].get("read_timeout", 0) for r in found[:-1]) == list(
        range(301, 311)
    )


def test_nothing_to_change_sends_no_write(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="enterprise")
    route = route_spec(required=300)

    async def scenario() -> None:
        await edge.sync(zone_id)
        await edge.cycle_api(route, read_timeout(route, 301))
        await edge.cycle_api(route, read_timeout(route, 301))
        await edge.cycle_api(route)

    edge.run(scenario)
    writes = [e for e in edge.emu.requests() if e.method != "GET"]

    assert len(writes) == 1


def test_rule_quota_refusal_is_reported_for_each_route(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="enterprise")
    edge.emu.add_rules(zone_id, [cache_rule(f"f{i}", f"f{i}.example.com") for i in range(299)])
    a, b = route_spec("a.example.com", required=300), route_spec("b.example.com", required=300)
    routes = {key("a"): a, key("b"): b}

    async def scenario() -> tuple[dict[str, str], Any]:
        await edge.sync(zone_id)
        failures = await edge.cycle(
            routes,
            {key("a"): [read_timeout(a, 301)], key("b"): [read_timeout(b, 301)]},
        )
        return failures, edge.registry.conditions(NS, key("a"), a)

    failures, conditions = edge.run(scenario)
    count = len(edge.emu.rules(zone_id))

    # One refused rule fails only its route: the other is written.
    assert failures.keys() == {key("b")}
    assert "exceeded maximum number of rules" in failures[key("b")]
    assert "the enterprise plan allows 300" in failures[key("b")]
    assert (conditions[0].status.value, conditions[0].reason) == ("True", "Synced")
    assert count == 300


def test_plan_without_read_timeout_refuses_before_sending(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="business")
    route = route_spec(required=300)

    async def scenario() -> str:
        await edge.sync(zone_id)
        edge.registry.observe(NS, API, route)
        sent = len(edge.emu.requests())
        with pytest.raises(EdgeRefused) as refused:
            await edge.registry.apply(NS, API, route, [read_timeout(route, 301)])
        failures = await edge.registry.flush()
        assert len(edge.emu.requests()) == sent
        assert failures[API] == str(refused.value)
        return str(refused.value)

    message = edge.run(scenario)

    assert "Enterprise only" in message


def test_a_foreign_rule_holding_our_ref_fails_only_that_route(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="enterprise")
    taken = rules.desired_rule(NS, "a", "a.example.com", "/export", 301)
    edge.emu.add_rules(zone_id, [{**taken, "description": "mine now"}])
    a, b = route_spec("a.example.com", required=600), route_spec("b.example.com", required=300)
    routes = {key("a"): a, key("b"): b}

    async def scenario() -> dict[str, str]:
        await edge.sync(zone_id)
        return await edge.cycle(
            routes,
            {key("a"): [read_timeout(a, 601)], key("b"): [read_timeout(b, 301)]},
        )

    failures = edge.run(scenario)
    found = edge.emu.rules(zone_id)

    assert list(failures) == [key("a")]
    assert "exists but its description is not" in failures[key("a")]
    assert [(r["ref"], r["description"]) for r in found] == [
        ("tbo_shop_b", "managed by timeout-budget-operator: TimeoutBudget shop/b"),
        ("tbo_shop_a", "mine now"),
    ]


def test_an_owned_rule_edited_or_deleted_by_hand_is_restored(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="enterprise")
    route = route_spec(required=300)
    routes = {API: route}
    spec = zone_spec(zone_id)
    wanted = {API: [read_timeout(route, 301)]}

    def by_hand(change: dict[str, Any] | None) -> None:
        with cloudflare.Cloudflare(api_token=TOKEN, base_url=edge.emu.base_url) as dashboard:
            current = [rules.writable(r) for r in edge.emu.rules(zone_id)]
            edited = [{**r, **change} for r in current] if change is not None else []
            dashboard.rulesets.phases.update(
                "http_request_cache_settings", zone_id=zone_id, rules=edited
            )

    async def drift(change: dict[str, Any] | None) -> Any:
        by_hand(change)
        edge.clocks.advance(300)
        await edge.sync(spec)  # the periodic re-read
        seen = edge.registry.observe(NS, API, route)
        await edge.cycle(routes, wanted if seen.route_timeout_seconds != 301 else {})
        return seen.route_timeout_seconds

    async def scenario() -> list[Any]:
        await edge.sync(spec)
        await edge.cycle(routes, wanted)
        edited = await drift({"action_parameters": {**rules.CACHE_PARAMETERS, "read_timeout": 100}})
        after_edit = edge.emu.rules(zone_id)[0]["action_parameters"]
        deleted = await drift(None)
        return [edited, after_edit, deleted]

    edited, after_edit, deleted = edge.run(scenario)
    final = edge.emu.rules(zone_id)

    assert edited == 100  # seen as drift
    assert after_edit == {**rules.CACHE_PARAMETERS, "read_timeout": 301}  # and put back
    assert deleted is None
    assert [r["action_parameters"]["read_timeout"] for r in final] == [301]


def test_finalize_removes_only_the_routes_rule(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="enterprise")
    edge.emu.add_rules(zone_id, [cache_rule("other", "other.example.com")])
    a, b = route_spec("a.example.com", required=300), route_spec("b.example.com", required=300)
    routes = {key("a"): a, key("b"): b}

    async def scenario() -> None:
        await edge.sync(zone_id)
        await edge.cycle(
            routes,
            {key("a"): [read_timeout(a, 301)], key("b"): [read_timeout(b, 301)]},
        )
        await edge.registry.finalize_route(NS, key("a"), a)
        assert edge.registry.routes_using(NS, ZONE) == [key("b")]

    edge.run(scenario)
    found = [r["ref"] for r in edge.emu.rules(zone_id)]

    assert found == ["tbo_shop_b", "other"]


def test_route_of_an_unknown_zone_is_reported_not_ready(edge: EdgeWorld) -> None:
    route = route_spec(required=300, zone="missing")

    async def scenario() -> tuple[Any, dict[str, str], Any]:
        seen = edge.registry.observe(NS, API, route)
        failures = await edge.cycle_api(route, read_timeout(route, 301))
        return seen, failures, edge.registry.conditions(NS, API, route)

    seen, failures, conditions = edge.run(scenario)

    assert seen is None
    assert "CloudflareZone shop/missing: not created, or not read" in failures[API]
    assert (conditions[0].reason, conditions[0].status.value) == ("ZoneNotReady", "False")


@pytest.mark.parametrize("analytics", [False, True])
def test_a_route_waits_for_its_zones_first_read_in_this_process(
    edge: EdgeWorld, analytics: bool
) -> None:
    """Until the CloudflareZone handler has read the zone (and, when on, tried its
    analytics), the route's status keeps the edge it shows (``decide.status.kept_edge``)."""
    zone_id = edge.emu.add_zone(plan="enterprise")
    route = route_spec(required=300)

    async def scenario() -> tuple[bool, bool]:
        before = edge.registry.unread(NS, API, route)
        await edge.sync(zone_spec(zone_id, analytics={"enabled": analytics}))
        return before, edge.registry.unread(NS, API, route)

    before, after = edge.run(scenario)

    assert (before, after) == (True, False)


def test_a_dns_only_route_waits_for_its_hostnames_records(edge: EdgeWorld) -> None:
    """Its DNS-only reroute is known in force or not only once the hostname's records are
    read: the zone read before the route was seen reads them at the next flush."""
    zone_id = edge.emu.add_zone(plan="enterprise")
    route = route_spec(dns_only="dl.example.com")

    async def scenario() -> tuple[bool, bool]:
        await edge.sync(zone_spec(zone_id))
        first = edge.registry.unread(NS, API, route)
        await edge.registry.flush()
        return first, edge.registry.unread(NS, API, route)

    assert edge.run(scenario) == (True, False)


def test_second_cloudflarezone_for_the_same_zone_id_is_refused(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="enterprise")

    async def scenario() -> dict[str, Any]:
        await edge.sync(zone_id)
        return await edge.registry.reconcile_zone("other", "dup", zone_spec(zone_id), TOKEN)

    status = edge.run(scenario)

    synced = condition(status, "EdgeSynced")
    assert (synced["status"], synced["reason"]) == ("False", "ZoneIdInUse")
    assert "already synced through CloudflareZone shop/edge" in synced["message"]
