"""The emulated edge serving visitor requests through the real HTTP path (the admin
endpoint an origin reports to, ``POST /__emulator/edge-requests``): the read timeout in
force decides between the origin's answer and a 524 (a Cache Rule's ``read_timeout`` for a
GET, the zone's for a POST), a host Cloudflare does not proxy is never seen, and the
GraphQL Analytics API, through the ``cloudflare`` SDK's own client, counts the 524s only
once they are ``delaySeconds`` old."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import cloudflare
import httpx
import pytest

from sandbox.cloudflare_emulator import CloudflareEmulator
from sandbox.origin_exporter import OriginExporter
from tests.support.cache_rules import cache_settings_rule
from timeout_budget.decide import rules

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_ambient_credentials")]

TOKEN = "edge-serving-token"
ZONE = "023e105f4ecef8ad9ca31a8372d0c353"
SHOP = "22222222222222222222222222222222"
API = "api.example.com"
EXPORT_RULE = '(http.host eq "api.example.com" and starts_with(http.request.uri.path, "/export"))'
QUERY = """
query Edge($zone: string!, $start: Time!, $end: Time!) {
  viewer {
    zones(filter: {zoneTag: $zone}) {
      httpRequestsAdaptiveGroups(
        limit: 100, filter: {datetime_geq: $start, datetime_lt: $end, edgeResponseStatus: 524}
      ) {
        count
        dimensions { clientRequestHTTPHost clientRequestPath clientRequestHTTPMethodName }
        quantiles { originResponseDurationMsP95 }
      }
    }
  }
}
"""


class Clock:
    """The analytics' clock, moved by hand (a real epoch time: GraphQL filters are dates)."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def emu() -> Iterator[CloudflareEmulator]:
    with CloudflareEmulator(token=TOKEN).running() as emu:
        emu.add_zone(ZONE, "enterprise", name="example.com", proxy_read_timeout=120)
        emu.add_zone(SHOP, "enterprise", name="shop.example.com", proxy_read_timeout=200)
        emu.add_dns_record(ZONE, API, "A", "192.0.2.10", proxied=True)
        emu.add_dns_record(ZONE, "direct.example.com", "A", "192.0.2.11", proxied=False)
        emu.add_dns_record(SHOP, "api.shop.example.com", "A", "192.0.2.12", proxied=True)
        emu.add_rules(ZONE, [cache_settings_rule("export", EXPORT_RULE, read_timeout=300)])
        yield emu


def request(host: str, path: str, method: str, ttfb: float, **extra: Any) -> dict[str, Any]:
    return {"host": host, "path": path, "method": method, "ttfbSeconds": ttfb, **extra}


def report(emu: CloudflareEmulator, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{emu.admin_url}/edge-requests", json=body, timeout=10)


def served(emu: CloudflareEmulator, *requests: dict[str, Any], **top: Any) -> list[int | None]:
    answer = report(emu, {"requests": list(requests), **top})
    assert answer.status_code == 200, answer.text
    statuses: list[int | None] = answer.json()["result"]["statuses"]
    return statuses


def summary(emu: CloudflareEmulator, **query: Any) -> list[dict[str, Any]]:
    answer = httpx.get(f"{emu.admin_url}/edge-requests/summary", params=query, timeout=10)
    assert answer.status_code == 200, answer.text
    counts: list[dict[str, Any]] = answer.json()["result"]["counts"]
    return counts


def test_the_read_timeout_in_force_decides_between_the_origins_answer_and_a_524(
    emu: CloudflareEmulator,
) -> None:
    at = float(int(time.time()))
    statuses = served(
        emu,
        request(API, "/export/a.csv", "GET", 130, at=at),  # the rule's 300 s
        request(API, "/cart", "GET", 130, at=at),  # no rule: the zone's 120 s
        request(API, "/export/a.csv", "POST", 130, at=at),  # a POST is never cached: 120 s
        request(API, "/export/a.csv", "POST", 110, status=201, at=at),
        request(API, "/export/b.csv", "GET", 301, at=at),
        request(API, "/export/c.csv", "HEAD", 300, at=at),  # not past it: served
        request("direct.example.com", "/export/a.csv", "GET", 130, at=at),  # DNS-only
        request("nothing.example.com", "/", "GET", 1, at=at),  # no record
        request("api.example.org", "/", "GET", 1, at=at),  # no zone
        request("api.shop.example.com", "/", "GET", 130, at=at),  # its zone's 200 s
        request("api.shop.example.com", "/", "GET", 201, status=200, at=at),
    )
    assert statuses == [200, 524, 524, 201, 524, 200, None, None, None, 200, 524]
    # What the edge recorded: a 524 took the time it waited (the emulator's choice).
    hits = [(h.zone_id, h.path, h.method, h.status, h.origin_ms) for h in emu.traffic.hits]
    assert hits == [
        (ZONE, "/export/a.csv", "GET", 200, 130_000.0),
        (ZONE, "/cart", "GET", 524, 120_000.0),
        (ZONE, "/export/a.csv", "POST", 524, 120_000.0),
        (ZONE, "/export/a.csv", "POST", 201, 110_000.0),
        (ZONE, "/export/b.csv", "GET", 524, 300_000.0),
        (ZONE, "/export/c.csv", "HEAD", 200, 300_000.0),
        (SHOP, "/", "GET", 200, 130_000.0),
        (SHOP, "/", "GET", 524, 200_000.0),
    ]
    # The summary counts them per window by host, path, method and edge status, at once.
    counts = summary(emu, windowSeconds=60, host=API)
    window = at - at % 60
    assert counts == [
        {"start": window, "host": API, "path": p, "method": m, "status": s, "count": 1}
        for p, m, s in sorted(
            [
                ("/cart", "GET", 524),
                ("/export/a.csv", "GET", 200),
                ("/export/a.csv", "POST", 201),
                ("/export/a.csv", "POST", 524),
                ("/export/b.csv", "GET", 524),
                ("/export/c.csv", "HEAD", 200),
            ]
        )
    ]
    assert summary(emu, since=at + 1) == []
    assert sum(c["count"] for c in summary(emu)) == 8


def test_a_bad_batch_is_refused_whole(emu: CloudflareEmulator) -> None:
    body = {"requests": [request(API, "/a", "GET", 1), request(API, "/b", "GET", -1)]}
    answer = report(emu, body)
    assert answer.status_code == 400
    assert "ttfb_seconds must be >= 0" in answer.json()["errors"][0]["message"]
    answer = report(emu, {"requests": [{**request(API, "/a", "GET", 1), "ttfb": 1}]})
    assert answer.status_code == 400
    assert "unknown request fields ['ttfb']" in answer.json()["errors"][0]["message"]
    assert emu.traffic.hits == []


def test_the_operators_rule_under_bypass_by_default_is_strict_unless_told(
    emu: CloudflareEmulator,
) -> None:
    """The operator's rule stores nothing the origin did not allow. Whether its read_timeout
    still holds for a response that is not stored is NOT CONFIRMED: the edge says no
    (strict) until told the other answer."""
    ours = rules.desired_rule("shop", "export", API, "/reports", 301)
    emu.add_rules(ZONE, [ours])
    stored = request(API, "/reports/x", "GET", 130, cacheControl="public, max-age=60")
    not_stored = request(API, "/reports/x", "GET", 130)
    assert served(emu, stored, not_stored) == [200, 524]
    assert emu.serve(API, "/reports/x", "GET", 130) == 524
    assert served(emu, not_stored, bypassByDefaultKeepsReadTimeout=True) == [200]
    assert emu.bypass_by_default_keeps_read_timeout is True
    assert emu.serve(API, "/reports/x", "GET", 130) == 200
    assert emu.serve(API, "/reports/x", "POST", 130) == 524


def test_the_graphql_dataset_counts_the_524s_only_after_the_delay(
    emu: CloudflareEmulator,
) -> None:
    clock = Clock()
    emu.traffic.clock = clock
    emu.traffic.delay_seconds = 60
    start = clock.now
    batch = [request(API, "/export/a.csv", "GET", 130) for _ in range(5)]
    batch += [request(API, "/cart", "GET", 121) for _ in range(3)]
    batch += [request(API, "/export/a.csv", "POST", 125) for _ in range(2)]
    batch += [request(API, "/cart", "GET", 1) for _ in range(4)]
    batch += [request("direct.example.com", "/cart", "GET", 500)]
    assert served(emu, *batch) == [200] * 5 + [524] * 5 + [200] * 4 + [None]

    def ask() -> list[dict[str, Any]]:
        variables = {"zone": ZONE, "start": rfc3339(start - 60), "end": rfc3339(clock.now + 1)}
        with cloudflare.Cloudflare(api_token=TOKEN, base_url=emu.base_url, max_retries=0) as sdk:
            answer: Any = sdk.post(
                "/graphql", body={"query": QUERY, "variables": variables}, cast_to=object
            )
        assert answer["errors"] is None
        groups: list[dict[str, Any]] = answer["data"]["viewer"]["zones"][0][
            "httpRequestsAdaptiveGroups"
        ]
        return groups

    assert ask() == []  # Cloudflare's data is late
    clock.now += 59
    assert ask() == []
    clock.now += 1
    found = {
        (
            g["dimensions"]["clientRequestHTTPHost"],
            g["dimensions"]["clientRequestPath"],
            g["dimensions"]["clientRequestHTTPMethodName"],
        ): (g["count"], g["quantiles"]["originResponseDurationMsP95"])
        for g in ask()
    }
    assert found == {
        (API, "/cart", "GET"): (3, 120_000.0),
        (API, "/export/a.csv", "POST"): (2, 120_000.0),
    }
    # The summary (the demo's) had them all along.
    assert sum(c["count"] for c in summary(emu) if c["status"] == 524) == 5


def rfc3339(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def test_the_synthetic_origin_reports_what_it_serves_to_the_edge(
    emu: CloudflareEmulator,
) -> None:
    """The demo's origin: every request it serves goes to the edge in a batch, with the
    model's host, path and method, and the edge's answer is counted per model."""
    origin = OriginExporter(edge_url=emu.admin_url)
    # A P95 of 130 s with a narrow spread (126 to 131 s): all past the zone's 120 s.
    origin.set_route("slow", p95=130.0, rps=20, host=API, path="/cart", sigma=0.01)
    origin.set_route("export", p95=130.0, rps=10, host=API, path="/export/a.csv", sigma=0.01)
    origin.set_route("direct", p95=1.0, rps=10, host="direct.example.com")
    origin.tick(1.0)
    assert origin.report_to_edge() == 40
    assert origin.report_to_edge() == 0  # nothing new
    assert dict(origin.edge_statuses) == {
        ("slow", 524): 20,
        ("export", 200): 10,
        ("direct", None): 10,
    }
    assert (origin.edge_errors, len(emu.traffic.hits)) == (0, 30)
    origin.edge_url = "http://127.0.0.1:9/__emulator"  # nothing listens there
    origin.tick(1.0)
    assert origin.report_to_edge(timeout=2) == 0
    assert origin.edge_errors == 1
    assert len(emu.traffic.hits) == 30
