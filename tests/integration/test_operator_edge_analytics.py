"""The operator process reads Cloudflare's analytics (the emulator's GraphQL API, through
the real SDK's HTTP client) and checks them against Prometheus over the same window: a
route whose origin histogram says 40 s (within its 360 s budget) while the edge returned
524s gets ``EdgeErrors`` True and ``EdgeAgrees`` False, with the counts in
``status.edge``; a slow path no TimeoutBudget covers is listed in the CloudflareZone's
status and announced by an Event.
Real API server, real Prometheus scraping the synthetic origin, the emulator's edge."""

from __future__ import annotations

import time
from typing import Any

import pytest

from sandbox.cloudflare_emulator.analytics import Hit
from tests.support import kube
from tests.support.emulator import ZONE_NAME, EdgeCluster
from tests.support.objects import HOST, apply, edge_route, status_of, zone

pytestmark = pytest.mark.integration

TOKEN = "cf-token-analytics-5e1f0a"
ZONE_ID = "9a7806061c88ada191ed06f989cc3dac"
ANALYTICS = {"intervalSeconds": 10, "delaySeconds": 3}


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == kind), {})


def test_the_edge_view_reaches_the_route_and_the_zone(edge_cluster: EdgeCluster) -> None:
    cp, ns, emulator = edge_cluster.cp, edge_cluster.ns, edge_cluster.emulator
    emulator.traffic.delay_seconds = 1  # Cloudflare's lateness, shortened for the test
    with edge_cluster.operator("edge-analytics", edge_route("export", ZONE_NAME)):
        apply(cp, ns, zone(ZONE_NAME, ZONE_ID, analytics=ANALYTICS))
        kube.wait_for(
            lambda: status_of(cp, ns, "export").get("state"), 90, "the route's first status"
        )
        now = time.time()
        for n in range(3):  # the edge stopped waiting (the route's 301 s Cache Rule): 524s
            emulator.traffic.record(
                Hit(now + n / 10, ZONE_ID, HOST, "/export/a", "GET", 524, 301e3)
            )
        for n in range(17):
            emulator.traffic.record(Hit(now + n / 10, ZONE_ID, HOST, "/export/a", "GET", 200, 40e3))
        for n in range(5):  # nobody budgeted it, and it is near the zone's 120 s
            emulator.traffic.record(
                Hit(now + n / 10, ZONE_ID, HOST, "/reports/q3", "GET", 200, 110e3)
            )

        def edge_status() -> dict[str, Any] | None:
            status = status_of(cp, ns, "export")
            edge = status.get("edge") or {}
            compared = condition(status, "EdgeAgrees").get("reason") not in (
                None,
                "NotRead",
                "NotCompared",
            )
            return status if edge.get("errors524") == 3 and compared else None

        status = kube.wait_for(edge_status, 120, "the edge's counts and the comparison")
        edge = status["edge"]
        assert (edge["requests"], edge["errors5xx"], edge["errors524"]) == (20, 3, 3)
        assert edge["originP95Seconds"] == 301.0
        assert edge["prometheusP95Seconds"] is not None
        assert 30 < edge["prometheusP95Seconds"] < 60  # the origin's histogram: about 40 s
        errors = condition(status, "EdgeErrors")
        assert (errors["status"], errors["reason"]) == ("True", "Edge524sWithinBudget")
        assert "3 524s at the edge" in errors["message"]
        agrees = condition(status, "EdgeAgrees")
        assert (agrees["status"], agrees["reason"]) == ("False", "EdgeSlower")

        def unbudgeted() -> list[dict[str, Any]] | None:
            view = kube.get_json(cp, "cloudflarezone", ZONE_NAME, "-n", ns)["status"].get(
                "edgeView", {}
            )
            found: list[dict[str, Any]] = view.get("unbudgetedPaths") or []
            return found or None

        paths = kube.wait_for(unbudgeted, 60, "the zone's unbudgeted paths")
        assert paths == [
            {
                "host": HOST,
                "path": "/reports/q3",
                "requests": 5,
                "errors524": 0,
                "originP95Seconds": 110.0,
            }
        ]
        events = kube.wait_for(
            lambda: (
                [
                    e
                    for e in kube.get_json(cp, "events", "-n", ns)["items"]
                    if e["involvedObject"]["kind"] == "CloudflareZone"
                    and "/reports/q3 has no TimeoutBudget" in e.get("message", "")
                ]
                or None
            ),
            30,
            "the UnbudgetedPath Event",
        )
        assert (events[0]["type"], events[0]["reason"]) == ("Warning", "UnbudgetedPath")
        assert len(events) == 1  # once, not on every read
        # The token never shows: not in the zone's status.
        assert TOKEN not in str(kube.get_json(cp, "cloudflarezone", ZONE_NAME, "-n", ns))
