"""Deleting a CloudflareZone that a TimeoutBudget still syncs through (issue 16, item 2),
with the operator process, the sandbox's API server and the Cloudflare emulator.

The deletion is held: the zone stays, its status (message and a ``DeletionBlocked``
condition) and a Warning Event name the TimeoutBudget. Once the TimeoutBudget is deleted
(its finalizer removes its Cache Rule with the zone's token, which is why the zone
waited), the zone goes too. Before the fix the handler failed with ``AttributeError``
every minute: no message, and the zone was never deleted.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from sandbox.controlplane import ControlPlane
from tests.support import kube
from tests.support.emulator import ZONE_NAME, EdgeCluster
from tests.support.objects import edge_route

pytestmark = pytest.mark.integration

TOKEN = "cf-token-zone-deletion-5a1e"
ZONE_ID = "9a7c0e5f4ecef8ad9ca31a8372d0c353"


def zone_or_none(cp: ControlPlane, ns: str) -> dict[str, Any] | None:
    found = cp.kubectl("get", "cloudflarezone", ZONE_NAME, "-n", ns, "-o", "json", check=False)
    if found.returncode != 0:
        assert "NotFound" in found.stderr, found.stderr
        return None
    zone: dict[str, Any] = json.loads(found.stdout)
    return zone


def zone_warnings(cp: ControlPlane, ns: str) -> list[str]:
    events = kube.get_json(
        cp, "events", "-n", ns, "--field-selector", f"involvedObject.name={ZONE_NAME}"
    )["items"]
    return [
        e["message"]
        for e in events
        if e["involvedObject"]["kind"] == "CloudflareZone" and e["type"] == "Warning"
    ]


def test_a_zone_in_use_is_held_naming_its_budget_then_deleted_once_the_budget_is_gone(
    edge_cluster: EdgeCluster,
) -> None:
    cp, ns, emulator = edge_cluster.cp, edge_cluster.ns, edge_cluster.emulator
    with edge_cluster.operator("zone-deletion", edge_route("export", ZONE_NAME)) as proc:
        kube.wait_for(
            lambda: emulator.rules(ZONE_ID), 60, "the route's Cache Rule, written with the token"
        )

        cp.kubectl("delete", "cloudflarezone", ZONE_NAME, "-n", ns, "--wait=false")
        held = kube.wait_for(
            lambda: _blocked(zone_or_none(cp, ns)), 30, "a DeletionBlocked condition"
        )
        assert held["status"] == "True"
        assert held["reason"] == "InUse"
        assert f"still used by TimeoutBudget {ns}/export" in held["message"]
        zone = zone_or_none(cp, ns)
        assert zone is not None
        assert zone["metadata"].get("deletionTimestamp")
        assert zone["status"]["message"] == held["message"]
        warnings = kube.wait_for(lambda: zone_warnings(cp, ns), 30, "a Warning Event")
        assert any(f"still used by TimeoutBudget {ns}/export" in w for w in warnings), warnings

        cp.kubectl("delete", "tb", "export", "-n", ns, "--timeout=60s")
        assert emulator.rules(ZONE_ID) == []  # removed with the zone's token, still held
        kube.wait_for(lambda: zone_or_none(cp, ns) is None, 45, "the zone to be deleted")
        assert "AttributeError" not in proc.output()
        assert TOKEN not in proc.output() + json.dumps(warnings)


def _blocked(zone: dict[str, Any] | None) -> dict[str, Any] | None:
    """The zone's DeletionBlocked condition, once the operator has written it."""
    conditions = ((zone or {}).get("status") or {}).get("conditions") or []
    found = [c for c in conditions if c.get("type") == "DeletionBlocked"]
    return dict(found[0]) if found else None
