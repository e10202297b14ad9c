"""The operator's Cache Rules writes against a foreign writer racing it, and user rules
that take its read timeout away, through the real SDK and the emulator.

A foreign writer (the dashboard, Terraform) edits, adds and deletes rules between the
operator's read of the entry point and its writes: every foreign change survives, and so
do foreign rules with fields the operator never uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cloudflare
import pytest

from tests.integration.edge_fixtures import (
    API,
    NS,
    TOKEN,
    EdgeWorld,
    cache_rule,
    key,
    read_timeout,
    route_spec,
    zone_spec,
)
from timeout_budget.clients.cloudflare import CloudflareClient
from timeout_budget.decide import rules

pytestmark = pytest.mark.integration

RICH = cache_rule(
    "team_rich",
    "rich.example.com",
    logging={"enabled": True},
    action_parameters={
        "cache": True,
        "edge_ttl": {"mode": "override_origin", "default": 60},
        "cache_key": {"ignore_query_strings_order": True},
        "serve_stale": {"disable_stale_while_updating": True},
    },
)


def _foreign_writer(emu: Any, zone_id: str) -> Callable[[], None]:
    """Edits one foreign rule, deletes another, adds a third (at the front), by the
    per-rule endpoints a dashboard uses."""

    def write() -> None:
        with cloudflare.Cloudflare(api_token=TOKEN, base_url=emu.base_url) as dashboard:
            ruleset = emu.ruleset(zone_id)
            by_ref = {r["ref"]: r for r in ruleset["rules"]}
            edit = rules.writable(by_ref["team_edit"])
            edit["action_parameters"] = {"cache": False}
            dashboard.rulesets.rules.edit(
                edit.pop("id"), ruleset_id=ruleset["id"], zone_id=zone_id, **edit
            )
            dashboard.rulesets.rules.delete(
                by_ref["team_gone"]["id"], ruleset_id=ruleset["id"], zone_id=zone_id
            )
            added = cache_rule("team_new", "new.example.com")
            dashboard.rulesets.rules.create(
                ruleset["id"], zone_id=zone_id, position={"index": 1}, **added
            )

    return write


def test_a_foreign_writer_between_read_and_write_loses_nothing(
    monkeypatch: pytest.MonkeyPatch,
    edge: EdgeWorld,
) -> None:
    zone_id = edge.emu.add_zone(plan="enterprise")
    edge.emu.add_rules(
        zone_id,
        [
            RICH,
            cache_rule("team_edit", "edit.example.com"),
            cache_rule("team_gone", "gone.example.com"),
        ],
    )
    a, b = route_spec("a.example.com", required=300), route_spec("b.example.com", required=300)
    routes = {key("a"): a, key("b"): b}
    race = _foreign_writer(edge.emu, zone_id)
    read = CloudflareClient.get_cache_rules
    raced: list[bool] = []

    async def read_then_race(self: CloudflareClient, zone: str) -> Any:
        found = await read(self, zone)
        if not raced:
            raced.append(True)
            race()  # lands between the operator's read and its writes
        return found

    async def scenario() -> dict[str, str]:
        await edge.sync(zone_id)
        first = await edge.cycle(
            routes,
            {key("a"): [read_timeout(a, 301)], key("b"): [read_timeout(b, 301)]},
        )
        monkeypatch.setattr(CloudflareClient, "get_cache_rules", read_then_race)
        second = await edge.cycle(
            routes,
            {key("a"): [read_timeout(a, 601)], key("b"): [read_timeout(b, None)]},
        )
        return {**first, **second}

    failures = edge.run(scenario)
    found = {r["ref"]: r for r in edge.emu.rules(zone_id)}

    assert raced == [True]
    assert failures == {}
    assert "team_gone" not in found  # not resurrected
    assert found["team_edit"]["action_parameters"] == {"cache": False}  # not reverted
    assert "team_new" in found  # not dropped
    rich = found["team_rich"]
    assert {k: rich[k] for k in RICH} == RICH  # fields the operator never uses, intact
    assert found[rules.rule_ref(NS, "a")]["action_parameters"]["read_timeout"] == 601
    assert rules.rule_ref(NS, "b") not in found


def test_a_later_user_bypass_is_reported_as_not_covered(edge: EdgeWorld) -> None:
    zone_id = edge.emu.add_zone(plan="enterprise", proxy_read_timeout=120)
    route = route_spec(required=300)
    spec = zone_spec(zone_id)

    async def scenario() -> Any:
        await edge.sync(spec)
        await edge.cycle_api(route, read_timeout(route, 301))
        edge.emu.add_rules(
            zone_id,
            [cache_rule("team_bypass", "api.example.com", action_parameters={"cache": False})],
        )
        edge.clocks.advance(300)
        await edge.sync(spec)
        return edge.registry.observe(NS, API, route), edge.registry.conditions(NS, API, route)

    seen, conditions = edge.run(scenario)
    edge = edge.emu.edge_request(
        zone_id, "GET", "api.example.com", "/export/x", cache_control="max-age=60"
    )

    assert edge.read_timeout == 120  # the user's later bypass wins at the edge
    assert seen.in_force_seconds == 120
    condition = conditions[0]
    assert (condition.status.value, condition.reason) == ("False", "OverriddenByRule")
    assert "team_bypass" in condition.message
    assert "not covered" in condition.message
