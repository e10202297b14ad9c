"""The index keeps each TimeoutBudget as a plain copy whose repeated strings are shared."""

from __future__ import annotations

import json
from typing import Any

import pytest

from timeout_budget.cycle.snapshot import RouteSnapshot, snapshot_entry

pytestmark = pytest.mark.unit

STATUS = {
    "state": "Healthy",
    "p95Seconds": 12.5,
    "lastEvaluationTime": "2026-11-27T21:00:00Z",
    "message": "P95 12.5s is 10% of the 120s budget (act at 96s, release below 72s). " * 2,
    "conditions": [
        {"type": "Ready", "status": "True", "reason": "WithinBudget", "observedGeneration": 1},
        {"type": "MetricsAvailable", "status": "True", "reason": "Read"},
    ],
    "memory": {"atRisk": False},
}


def body(name: str) -> dict[str, Any]:
    # Parsed from bytes, as the watch brings it: no string shared between two bodies.
    return json.loads(
        json.dumps(
            {
                "metadata": {
                    "namespace": "shop",
                    "name": name,
                    "uid": f"u-{name}",
                    "generation": 3,
                },
                "spec": {"route": {"host": "api.example.com"}, "origin": {"deploymentName": name}},
                "status": STATUS,
            }
        )
    )


def entry(name: str) -> RouteSnapshot:
    (snap,) = snapshot_entry(body(name)).values()
    return snap


def test_the_entry_is_an_equal_plain_copy() -> None:
    snap = entry("a")
    assert (snap.namespace, snap.name, snap.uid, snap.generation) == ("shop", "a", "u-a", 3)
    assert snap.status == STATUS
    assert snap.spec_dict() == body("a")["spec"]
    assert isinstance(snap.spec, str)  # compact JSON text, parsed when the generation changes
    assert type(snap.status["conditions"]) is list  # compared with the status built anew


def test_keys_and_short_strings_are_shared_between_entries_long_ones_are_not() -> None:
    a, b = entry("a"), entry("b")
    key_a = next(k for k in a.status if k == "lastEvaluationTime")
    key_b = next(k for k in b.status if k == "lastEvaluationTime")
    assert key_a is key_b
    assert a.status["lastEvaluationTime"] is b.status["lastEvaluationTime"]
    assert a.status["conditions"][0]["reason"] is b.status["conditions"][0]["reason"]
    assert a.status["message"] == b.status["message"]
    assert a.status["message"] is not b.status["message"]  # long: kept as parsed


def test_a_route_being_deleted_has_no_entry() -> None:
    deleting = body("a")
    deleting["metadata"]["deletionTimestamp"] = "2026-11-27T21:00:00Z"
    assert snapshot_entry(deleting) == {}
