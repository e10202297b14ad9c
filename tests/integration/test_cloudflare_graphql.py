"""The emulator's GraphQL Analytics API through the real HTTP path, driven by the real
``cloudflare`` SDK's own client (``client.post("/graphql")``: the SDK does not model
GraphQL): the query validated against the schema, counts by status per host and path and
the origin's P95 as the edge measured it, data shown only once it is late enough, and
Cloudflare's limits with their messages (10 zones, the 300-per-5-minutes budget, a plan
without access, a token without Analytics Read)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import cloudflare
import pytest

from sandbox.cloudflare_emulator import CloudflareEmulator
from sandbox.cloudflare_emulator.analytics import Hit
from sandbox.cloudflare_emulator.state import Plan
from sandbox.cloudflare_emulator.tokens import ALL_PERMISSIONS, ANALYTICS_READ

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_ambient_credentials")]

TOKEN = "graphql-token"
NO_ANALYTICS = "graphql-token-without-analytics"
PAID = "023e105f4ecef8ad9ca31a8372d0c353"
FREE = "11111111111111111111111111111111"
QUERY = """
query Edge($zones: [string!], $start: Time!, $end: Time!) {
  viewer {
    zones(filter: {zoneTag_in: $zones}) {
      zoneTag
      statuses: httpRequestsAdaptiveGroups(
        limit: 1000, filter: {datetime_geq: $start, datetime_lt: $end}
      ) {
        count
        dimensions { clientRequestHTTPHost clientRequestPath edgeResponseStatus }
      }
      latency: httpRequestsAdaptiveGroups(
        limit: 1000,
        filter: {datetime_geq: $start, datetime_lt: $end, clientRequestPath_like: "/export%"}
      ) {
        count
        quantiles { originResponseDurationMsP95 }
      }
    }
  }
}
"""


def rfc3339(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


@pytest.fixture
def emulator() -> Iterator[CloudflareEmulator]:
    tokens = {TOKEN: ALL_PERMISSIONS, NO_ANALYTICS: ALL_PERMISSIONS - {ANALYTICS_READ}}
    zones = {PAID: Plan.ENTERPRISE, FREE: Plan.FREE}
    with CloudflareEmulator(token=list(tokens), zones=zones).running() as emu:
        for token, permissions in tokens.items():
            emu.tokens.add(token, permissions)
        yield emu


def ask(emu: CloudflareEmulator, body: dict[str, Any], token: str = TOKEN) -> Any:
    with cloudflare.Cloudflare(api_token=token, base_url=emu.base_url, max_retries=0) as sdk:
        return sdk.post("/graphql", body=body, cast_to=object)


def variables(zones: list[str], start: float, end: float) -> dict[str, Any]:
    return {"zones": zones, "start": rfc3339(start), "end": rfc3339(end)}


def test_counts_by_status_and_the_origins_p95_once_the_data_is_late_enough(
    emulator: CloudflareEmulator,
) -> None:
    now = time.time()
    emulator.traffic.delay_seconds = 120
    old, fresh = now - 200, now - 30  # shown; not yet (Cloudflare's data is minutes late)
    for i in range(20):
        slow = 1000.0 * (10 + i)  # 10 s .. 29 s at the origin
        emulator.traffic.record(Hit(old, PAID, "api.example.com", "/export/a", "GET", 200, slow))
    for _ in range(3):
        emulator.traffic.record(Hit(old, PAID, "api.example.com", "/export/b", "GET", 524, 125e3))
        emulator.traffic.record(Hit(fresh, PAID, "api.example.com", "/export/b", "GET", 524, 9e5))
    emulator.traffic.record(Hit(old, PAID, "api.example.com", "/cart", "GET", 200, 50.0))
    answer = ask(emulator, {"query": QUERY, "variables": variables([PAID], now - 600, now)})
    assert answer["errors"] is None
    (zone,) = answer["data"]["viewer"]["zones"]
    counts = {
        (g["dimensions"]["clientRequestPath"], g["dimensions"]["edgeResponseStatus"]): g["count"]
        for g in zone["statuses"]
    }
    assert counts == {("/export/a", 200): 20, ("/export/b", 524): 3, ("/cart", 200): 1}
    (latency,) = zone["latency"]
    assert latency["count"] == 23
    assert latency["quantiles"]["originResponseDurationMsP95"] == 125e3


def refusal(emu: CloudflareEmulator, body: dict[str, Any], token: str = TOKEN) -> tuple[int, str]:
    with pytest.raises(cloudflare.APIStatusError) as refused:
        ask(emu, body, token)
    error = refused.value.response.json()
    assert error["data"] is None
    return refused.value.status_code, error["errors"][0]["message"]


def test_a_query_the_schema_does_not_have_is_refused(emulator: CloudflareEmulator) -> None:
    body = {"query": "{ viewer { zones { zoneTag edgeP95 } } }"}
    status, message = refusal(emulator, body)
    assert (status, message) == (400, "Cannot query field 'edgeP95' on type 'zone'.")
    missing_limit = QUERY.replace("limit: 1000, filter", "filter")
    now = time.time()
    status, message = refusal(
        emulator, {"query": missing_limit, "variables": variables([PAID], now - 60, now)}
    )
    assert status == 400
    assert "argument 'limit' of type 'uint64!' is required" in message


def test_more_than_ten_zones_and_a_spent_budget_are_refused(emulator: CloudflareEmulator) -> None:
    now = time.time()
    eleven = {"query": QUERY, "variables": variables([PAID] * 11, now - 60, now)}
    assert refusal(emulator, eleven) == (
        429,
        "in combination, your request queries too many nodes, zones and accounts",
    )
    ten = {"query": QUERY, "variables": variables([PAID] * 10, now - 60, now)}
    for _ in range(15):  # 10 zones x 2 dataset nodes = 20 of the 300 each
        ask(emulator, ten)
    assert refusal(emulator, ten) == (
        429,
        "rate limiter budget depleted, try again after 5 minutes",
    )


def test_a_plan_without_the_dataset_and_a_token_without_analytics_read(
    emulator: CloudflareEmulator,
) -> None:
    now = time.time()
    body = {"query": QUERY, "variables": variables([FREE], now - 60, now)}
    status, message = refusal(emulator, body)
    assert status == 403
    assert message.startswith(f"zone '{FREE}' does not have access to the path.")
    settings = ask(
        emulator,
        {
            "query": "query($z: string!) { viewer { zones(filter: {zoneTag: $z}) "
            "{ settings { httpRequestsAdaptiveGroups { enabled maxPageSize } } } } }",
            "variables": {"z": FREE},
        },
    )
    (zone,) = settings["data"]["viewer"]["zones"]
    assert zone["settings"]["httpRequestsAdaptiveGroups"] == {
        "enabled": False,
        "maxPageSize": 10000,
    }
    body = {"query": QUERY, "variables": variables([PAID], now - 60, now)}
    assert refusal(emulator, body, NO_ANALYTICS) == (403, f"zones ['{PAID}'] are not authorized")
