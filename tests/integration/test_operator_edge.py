"""The operator process syncs Cloudflare through the real SDK against the emulator: the
zone's effective timeout reaches status, a route that needs 300 s gets exactly one Cache
Rule with read_timeout 301, created (one POST of that rule, no whole-list PUT) in front of
a foreign rule that stays untouched, and deleting the route removes only its own rule. The
token never appears in status, Events or logs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support import kube
from tests.support.emulator import ZONE_NAME, EdgeCluster
from tests.support.foreign import FOREIGN_RULES
from tests.support.objects import HOST, budget, edge_route, status_of

pytestmark = pytest.mark.integration

TOKEN = "cf-token-d41d8cd98f00b204e980"  # distinctive, so a leak is easy to find
ZONE_ID = "023e105f4ecef8ad9ca31a8372d0c353"
FOREIGN_RULE = FOREIGN_RULES[0]  # images, managed by hand


@pytest.fixture
def cluster(edge_cluster: EdgeCluster) -> EdgeCluster:
    """``edge_cluster`` whose zone holds ``FOREIGN_RULE`` before the operator starts."""
    edge_cluster.emulator.add_rules(ZONE_ID, [FOREIGN_RULE])
    return edge_cluster


def test_required_seconds_become_one_cache_rule_and_deletion_removes_only_it(
    cluster: EdgeCluster,
) -> None:
    cp, ns, emulator = cluster.cp, cluster.ns, cluster.emulator
    with cluster.operator("edge", edge_route("export", ZONE_NAME)) as proc:
        zone = kube.wait_for(
            lambda: kube.get_json(cp, "cloudflarezone", ZONE_NAME, "-n", ns).get("status") or None,
            60,
            "zone status",
        )
        kube.wait_for(
            lambda: (
                kube.get_json(cp, "cloudflarezone", ZONE_NAME, "-n", ns)["status"].get(
                    "effectiveProxyReadTimeoutSeconds"
                )
                == 120
            ),
            60,
            "the zone's effective timeout in status",
        )

        def owned_rules() -> list[dict[str, Any]]:
            return [r for r in emulator.rules(ZONE_ID) if r["ref"] != FOREIGN_RULE["ref"]]

        kube.wait_for(lambda: len(owned_rules()) == 1, 60, "the route's Cache Rule")
        rule = owned_rules()[0]
        # Eligible for cache with no default TTLs: only the read timeout changes.
        assert rule["action_parameters"] == {
            "cache": True,
            "edge_ttl": {"mode": "bypass_by_default"},
            "browser_ttl": {"mode": "respect_origin"},
            "read_timeout": 301,
        }
        assert rule["expression"] == (
            '(http.host eq "api.example.com" and (http.request.uri.path eq "/export" or '
            'starts_with(http.request.uri.path, "/export/")))'
        )
        assert f"TimeoutBudget {ns}/export" in rule["description"]
        foreign = [r for r in emulator.rules(ZONE_ID) if r["ref"] == FOREIGN_RULE["ref"]]
        assert len(foreign) == 1
        # The operator's rule goes first, so the user's own (later) rules still win.
        assert [r["ref"] for r in emulator.rules(ZONE_ID)] == [rule["ref"], FOREIGN_RULE["ref"]]
        for key, value in FOREIGN_RULE.items():
            assert foreign[0][key] == value
        status = kube.wait_for(
            lambda: (
                (s := kube.get_json(cp, "tb", "export", "-n", ns).get("status", {})).get(
                    "edgeTimeoutSeconds"
                )
                == 301
                and s
            ),
            60,
            "edgeTimeoutSeconds 301 in the route's status",
        )
        assert status["budgetSeconds"] == 360
        # One create of the route's rule; the list is never replaced as a whole.
        creates = emulator.requests("POST", path_contains=f"/zones/{ZONE_ID}/rulesets/")
        assert [(e.status, e.body.get("ref")) for e in creates] == [(200, rule["ref"])]
        assert emulator.requests(method="PUT") == []

        cp.kubectl("delete", "tb", "export", "-n", ns, "--timeout=60s")
        assert owned_rules() == []
        assert [r["ref"] for r in emulator.rules(ZONE_ID)] == [FOREIGN_RULE["ref"]]

        captured = [
            proc.output(),
            json.dumps(kube.get_json(cp, "events", "-n", ns)),
            json.dumps(kube.get_json(cp, "cloudflarezone", ZONE_NAME, "-n", ns)),
            json.dumps(zone),
        ]
        for text in captured:
            assert TOKEN not in text


def test_a_post_keeps_the_zone_timeout_and_the_status_says_so(cluster: EdgeCluster) -> None:
    """A route serving GET and POST that needs 300 s: its Cache Rule gives the GETs 301 s,
    but a POST is not cacheable, so at the edge it keeps the zone's 120 s. With no DNS-only
    hostname nothing covers it: status.edgeCoverage and the message say so, with
    Cloudflare's advice. Once the CloudflareZone opts in to raiseProxyReadTimeout, the
    zone's timeout covers the POSTs, and is given back when the route goes."""
    cp, ns, emulator = cluster.cp, cluster.ns, cluster.emulator
    upload = budget("upload", "upload")
    upload["spec"]["route"]["methods"] = ["GET", "POST"]
    upload["spec"]["budget"] = {"timeoutSeconds": 360, "requiredSeconds": 300}
    upload["spec"]["edge"] = {"zoneRef": {"name": ZONE_NAME}}
    with cluster.operator("edge-post", upload):
        status = kube.wait_for(
            lambda: (
                (s := kube.get_json(cp, "tb", "upload", "-n", ns).get("status", {})).get(
                    "edgeTimeoutSeconds"
                )
                == 301
                and s.get("edgeCoverage", [{}])[0].get("by") == "CacheRule"
                and s
            ),
            90,
            "the route's Cache Rule and its coverage in status",
        )
        assert status["edgeCoverage"] == [
            {"methods": ["GET"], "by": "CacheRule", "timeoutSeconds": 301},
            {"methods": ["POST"], "by": "None", "timeoutSeconds": 120},
        ]
        assert "cover POST at the edge" in status["message"]
        assert "status polling" in status["message"]
        # At the edge: the GET gets the rule's read timeout, the POST the zone's.
        get = emulator.edge_request(
            ZONE_ID,
            "GET",
            "api.example.com",
            "/upload",
            bypass_by_default_keeps_read_timeout=True,
        )
        assert get.read_timeout == 301
        for keeps in (True, False):
            post = emulator.edge_request(
                ZONE_ID,
                "POST",
                "api.example.com",
                "/upload",
                bypass_by_default_keeps_read_timeout=keeps,
            )
            assert post.read_timeout == 120
            assert not post.cacheable

        # The zone opts in to the zone-wide raise: its proxy_read_timeout goes to 301 s,
        # so the POSTs are covered (at the edge too), and the value comes back to 120 s
        # once the route is gone.
        cp.kubectl(
            "patch",
            "cloudflarezone",
            ZONE_NAME,
            "-n",
            ns,
            "--type=merge",
            "-p",
            json.dumps(
                {"spec": {"raiseProxyReadTimeout": {"enabled": True, "ceilingSeconds": 600}}}
            ),
        )
        status = kube.wait_for(
            lambda: (
                (s := kube.get_json(cp, "tb", "upload", "-n", ns).get("status", {}))
                .get("edgeCoverage", [{}, {}])[1]
                .get("by")
                == "ZoneTimeout"
                and s
            ),
            90,
            "the POSTs covered by the raised zone timeout",
        )
        assert status["edgeCoverage"][1] == {
            "methods": ["POST"],
            "by": "ZoneTimeout",
            "timeoutSeconds": 301,
        }
        assert "cover POST at the edge" not in status["message"]
        raised = kube.get_json(cp, "cloudflarezone", ZONE_NAME, "-n", ns)["status"]
        assert raised["proxyReadTimeoutRaise"] == {
            "fromSeconds": 120,
            "toSeconds": 301,
            "forRoutes": [f"{ns}/upload"],
        }
        assert (
            emulator.edge_request(ZONE_ID, "POST", "api.example.com", "/upload").read_timeout == 301
        )
        cp.kubectl("delete", "tb", "upload", "-n", ns, "--wait=true", "--timeout=60s")
        kube.wait_for(
            lambda: emulator.setting(ZONE_ID)["value"] == 120,
            90,
            "the zone's proxy_read_timeout given back (zone timer: every 30 s)",
        )
        back = kube.wait_for(
            lambda: (
                "proxyReadTimeoutRaise"
                not in (z := kube.get_json(cp, "cloudflarezone", ZONE_NAME, "-n", ns)["status"])
                and z
            ),
            30,
            "the raise gone from the zone's status",
        )
        assert back["effectiveProxyReadTimeoutSeconds"] == 120
        patches = [
            p.body for p in emulator.requests(method="PATCH", path_contains="proxy_read_timeout")
        ]
        assert patches == [{"value": 301}, {"value": 120}]  # one raise, one giving back


def test_a_tunnel_behind_the_edge_is_a_hop_of_the_chain(edge_cluster: EdgeCluster) -> None:
    """The route's host is a proxied CNAME to a Cloudflare Tunnel: with spec.chain the zone
    reads the host's records, and status.chain shows the tunnel (no read timeout: Ok)."""
    cp, ns = edge_cluster.cp, edge_cluster.ns
    tunnel = "6ff42ae2-765d-4adf-8112-31c55c1551ef.cfargotunnel.com"
    edge_cluster.emulator.add_dns_record(ZONE_ID, HOST, "CNAME", tunnel, proxied=True)
    route = edge_route("tunneled", ZONE_NAME)
    route["spec"]["chain"] = {}
    with edge_cluster.operator("tunnel", route):
        hops = kube.wait_for(
            lambda: [
                h for h in status_of(cp, ns, "tunneled").get("chain") or [] if h["hop"] == "tunnel"
            ],
            60,
            "the tunnel in the chain",
        )
    assert hops == [
        {
            "hop": "tunnel",
            "object": f"Cloudflare Tunnel {tunnel}",
            "measures": "idle",
            "source": "none (cloudflared has no read timeout)",
            "verdict": "Ok",
        }
    ]
