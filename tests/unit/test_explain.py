"""``timeout-budget explain``: the route's story as printed (``explain.render``), and finding
a route by host and path (``explain.find``)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.ladder import ZONE_HOP
from timeout_budget import __main__ as cli
from timeout_budget.explain import find, render

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
