"""``timeout-budget explain``: the route's story as printed (``explain.render``), and finding
a route by host and path (``explain.find``)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.ladder import ZONE_HOP
from timeout_budget import __main__ as cli
from timeout_budget import explain
from timeout_budget.explain import find, render
from timeout_budget.model import spec

pytestmark = pytest.mark.unit


def budget(name: str, path: str, host: str = "api.example.com", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "shop", "name": name},
        "spec": {"route": {"host": host, "pathPrefix": path}, "chain": {}},
        "status": status,
    }


def test_render_shows_the_chain_the_conditions_and_the_message() -> None:
    text = render(
        budget(
            "upload",
            "/upload",
            state="AtRisk",
            p95Seconds=100,
            budgetSeconds=120,
            conditions=[
                {"type": "ChainConsistent", "status": "False", "reason": "InnerHopFiresFirst"}
            ],
            chain=[
                ZONE_HOP,
                {
                    "hop": "ingress-nginx",
                    "object": "Ingress shop/upload",
                    "timeoutSeconds": 60,
                    "tries": 3,
                    "measures": "idle",
                    "source": "annotation",
                    "verdict": "FiresFirst",
                },
                {
                    "hop": "ingress",
                    "object": "Ingress shop/x",
                    "measures": "idle",
                    "source": "unknown",
                    "verdict": "Unknown",
                },
            ],
            edgeCoverage=[{"methods": ["POST"], "by": "None", "timeoutSeconds": 120}],
            message="Ingress-nginx fires first.",
        )
    )
    assert "TimeoutBudget shop/upload: api.example.com/upload (GET, HEAD)" in text
    assert "State: AtRisk; P95 100s of the 120s budget (83%)" in text
    assert "ChainConsistent  False  InnerHopFiresFirst" in text
    chain_lines = [line for line in text.splitlines() if "Ingress shop/" in line]
    assert "60s x3" in chain_lines[0]
    assert chain_lines[0].rstrip().endswith("FiresFirst")
    assert "unknown" in chain_lines[1]
    assert "  POST: None (120s)" in text
    assert text.endswith("Message:\n  Ingress-nginx fires first.")


def test_render_a_route_not_evaluated_yet() -> None:
    text = render({"metadata": {"namespace": "shop", "name": "new"}, "spec": {"route": {}}})
    assert "State: not evaluated yet; no budget known yet" in text
    assert "Timeout chain: not checked (set spec.chain to have it checked)" in text


def test_find_by_host_and_path_takes_the_longest_prefix() -> None:
    routes = [budget("root", "/"), budget("export", "/export"), budget("other", "/", "x.com")]
    assert find(routes, "api.example.com", "/export/1")["metadata"]["name"] == "export"
    assert find(routes, "api.example.com", "/exports")["metadata"]["name"] == "root"
    assert find(routes, "y.com", "/") is None


def test_the_command_wants_a_route_or_a_host() -> None:
    with pytest.raises(SystemExit):
        cli.main(["explain"])
    with pytest.raises(SystemExit):
        cli.main(["explain", "shop/api", "--host", "api.example.com"])


def _zone() -> dict[str, Any]:
    return {
        "metadata": {"namespace": "shop", "name": "edge"},
        "status": {
            "effectiveProxyReadTimeoutSeconds": 100,
            "edgeView": {
                "available": True,
                "message": "1200 requests, 3 524s on 4 host/path(s)",
                "unbudgetedPaths": [
                    {
                        "host": "api.example.com",
                        "path": "/reports/q3",
                        "requests": 10,
                        "errors524": 3,
                        "originP95Seconds": 101.0,
                    }
                ],
            },
        },
    }


def _budget(namespace: str, name: str, prefix: str, deployment: str) -> dict[str, Any]:
    return {
        "metadata": {"namespace": namespace, "name": name},
        "spec": {
            "route": {"host": "api.example.com", "pathPrefix": prefix},
            "latency": {"metric": "http_request_duration_seconds", "selector": {"app": name}},
            "origin": {"deploymentName": deployment},
            "edge": {"zoneRef": {"name": "edge"}},
        },
    }


def test_a_zone_suggests_a_valid_timeout_budget_for_each_unbudgeted_path() -> None:
    budgets = [
        _budget("shop", "api", "/api", "api"),
        _budget("shop", "reports", "/reports", "reports"),  # shares the longest prefix
        _budget("other", "reports", "/reports/q3", "elsewhere"),  # another namespace's
    ]
    (found,) = explain.suggest(_zone(), budgets)
    assert found["metadata"] == {"name": "api-reports-q3", "namespace": "shop"}
    assert found["spec"]["route"] == {"host": "api.example.com", "pathPrefix": "/reports/q3"}
    assert found["spec"]["budget"] == {"timeoutSeconds": 210}  # twice 101 s, rounded up
    assert found["spec"]["origin"] == {"deploymentName": "reports"}
    assert found["spec"]["latency"]["selector"] == {"app": "reports"}
    spec.parse_timeout_budget(found["spec"])  # valid as the operator reads it
    text = explain.render_zone(_zone(), [found])
    assert "/reports/q3" in text
    assert "kind: TimeoutBudget" in text


def test_without_a_sibling_the_suggestion_says_what_to_fill_in() -> None:
    (found,) = explain.suggest(_zone(), [])
    assert "FILL_IN" in found["spec"]["latency"]["metric"]
    assert found["spec"]["origin"] == {"deploymentName": "FILL_IN"}


def test_a_zone_without_unbudgeted_paths_says_so() -> None:
    zone = _zone()
    zone["status"]["edgeView"]["unbudgetedPaths"] = []
    assert "No slow path without a TimeoutBudget" in explain.render_zone(zone, [])
