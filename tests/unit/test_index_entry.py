"""The index keeps each TimeoutBudget compactly: its spec and status as compact JSON text."""

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


def test_the_entry_reads_as_the_watched_body() -> None:
    snap = entry("a")
    assert (snap.namespace, snap.name, snap.uid, snap.generation) == ("shop", "a", "u-a", 3)
    assert snap.status_dict() == STATUS
    assert snap.spec_dict() == body("a")["spec"]
    assert type(snap.status_dict()["conditions"]) is list  # compared with the status built anew


def test_spec_and_status_are_kept_as_compact_text_parsed_afresh() -> None:
    """Compact text is half the memory of the nested dicts; each read is a new dict, so a
    step that changes what it read cannot change the snapshot."""
    snap = entry("a")
    assert isinstance(snap.spec, str)
    assert isinstance(snap.status, str)
    assert snap.status == json.dumps(STATUS, separators=(",", ":"))
    first = snap.status_dict()
    assert first is not snap.status_dict()
    first["memory"]["atRisk"] = True  # type: ignore[index]
    assert snap.status_dict()["memory"] == {"atRisk": False}


def test_the_same_status_is_the_same_text() -> None:
    """The quiet check compares the kept status with the current one as text."""
    assert entry("a").status == entry("a").status
    changed = body("a")
    changed["status"]["p95Seconds"] = 13.0
    (other,) = snapshot_entry(changed).values()
    assert other.status != entry("a").status


def test_a_status_given_as_a_mapping_is_read_as_is() -> None:
    snap = RouteSnapshot("shop", "a", "u-a", 1, {}, STATUS)
    assert snap.status_dict() is STATUS


def test_a_route_being_deleted_has_no_entry() -> None:
    deleting = body("a")
    deleting["metadata"]["deletionTimestamp"] = "2026-11-27T21:00:00Z"
    assert snapshot_entry(deleting) == {}
