"""Conditions and status: transition times that mean something, and a status patched only
when a person would see a difference."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import merge_patch
from tests.support.ladder import SERVICE, T0, ago, make_observation, make_spec
from timeout_budget.decide import diff, ladder, status
from timeout_budget.model import conditions
from timeout_budget.model.actions import RerouteTarget, RerouteVia
from timeout_budget.model.conditions import ConditionInput, ConditionStatus
from timeout_budget.model.edge_view import RouteEdge, Window
from timeout_budget.model.memory import Memory
from timeout_budget.model.timestamps import parse_rfc3339, rfc3339

pytestmark = pytest.mark.unit

T0_TEXT = rfc3339(T0)
LATER = T0 + 600
LATER_TEXT = rfc3339(LATER)


def entry(kind: str, state: str, reason: str = "R", since: str = T0_TEXT) -> dict[str, Any]:
    return {
        "type": kind,
        "status": state,
        "reason": reason,
        "message": "",
        "lastTransitionTime": since,
        "observedGeneration": 1,
    }


def merged_one(previous: list[dict[str, Any]], new: ConditionInput) -> dict[str, Any]:
    result = conditions.merge(previous, [new], now=LATER, generation=2)
    return next(c for c in result if c["type"] == new.type)


def ready(state: str, reason: str, message: str = "") -> ConditionInput:
    """The Ready condition as the ladder would set it this cycle."""
    return ConditionInput("Ready", ConditionStatus(state), reason, message)


@pytest.mark.parametrize(
    ("previous", "new", "since"),
    [
        pytest.param([entry("Ready", "True")], ready("True", "R"), T0_TEXT, id="same-status-kept"),
        pytest.param(
            [entry("Ready", "True", "WithinBudget")],
            ready("True", "AtRisk", "new message"),
            T0_TEXT,
            id="reason-change-is-not-a-transition",
        ),
        pytest.param(
            [entry("Ready", "True")],
            ready("False", "Breaching"),
            LATER_TEXT,
            id="status-change-transitions",
        ),
        pytest.param([], ready("Unknown", "NoData"), LATER_TEXT, id="new"),
        pytest.param(
            [{"type": "Ready", "status": "True"}],
            ready("True", "R"),
            LATER_TEXT,
            id="previous-without-time",
        ),
    ],
)
def test_transition_time(previous: list[dict[str, Any]], new: ConditionInput, since: str) -> None:
    merged = merged_one(previous, new)
    assert merged["lastTransitionTime"] == since
    assert merged["observedGeneration"] == 2
    assert (merged["status"], merged["reason"]) == (new.status.value, new.reason)


def test_other_writers_conditions_are_kept_and_later_inputs_win() -> None:
    previous = [entry("Ready", "True"), entry("SomeoneElses", "True")]
    inputs = [
        ConditionInput("Ready", ConditionStatus.TRUE, "WithinBudget"),
        ConditionInput("EdgeSynced", ConditionStatus.UNKNOWN, "Pending"),
        ConditionInput("EdgeSynced", ConditionStatus.TRUE, "Synced"),
    ]
    result = conditions.merge(previous, inputs, now=LATER, generation=2)
    assert [(c["type"], c["status"]) for c in result] == [
        ("Ready", "True"),
        ("EdgeSynced", "True"),
        ("SomeoneElses", "True"),
    ]


# --- Status: built in full, patched only on a visible change ----------------------------------


def evaluate(
    previous: dict[str, Any] | None, p95: float | None, now: float, **spec: Any
) -> dict[str, Any]:
    observation = make_observation(p95)
    memory = Memory.from_status((previous or {}).get("memory"))
    decision = ladder.decide(make_spec(**spec), observation, memory, now)
    acted = diff.changes(decision.actions, observation)
    return status.build(
        decision, observation, previous=previous, now=now, generation=1, acted=acted
    )


def test_status_fields() -> None:
    built = evaluate(None, 100, T0)
    assert built["state"] == "AtRisk"
    assert (built["p95Seconds"], built["budgetSeconds"], built["ratio"]) == (100, 120, 0.833)
    assert (built["replicas"], built["desiredReplicas"]) == (2, 4)
    assert built["lastAction"] == "scale Deployment api to 4 (replicas)"
    assert "scaling up 2 → 4" in built["lastActionReason"]
    assert built["lastActionTime"] == T0_TEXT
    assert built["edgeTimeoutSeconds"] == 120
    assert built["rerouted"] is False
    assert built["plannedActions"] is None
    assert {c["type"] for c in built["conditions"]} >= {"Ready", "MetricsAvailable"}


def test_unchanged_evaluation_needs_no_patch() -> None:
    first = evaluate(None, 50, T0)
    second = evaluate(first, 50, T0 + 15)
    assert second["lastEvaluationTime"] != first["lastEvaluationTime"]
    assert not status.changed(first, second)
    assert status.patch(first, second) == {}


def test_visible_change_is_patched_with_only_what_changed() -> None:
    first = evaluate(None, 50, T0)
    second = evaluate(first, 100, T0 + 15)
    assert status.changed(first, second)
    patch = status.patch(first, second)
    assert {"state", "p95Seconds", "ratio", "lastEvaluationTime"} <= patch.keys()
    assert "budgetSeconds" not in patch
    ready = next(c for c in patch["conditions"] if c["type"] == "Ready")
    assert ready["lastTransitionTime"] == first["conditions"][0]["lastTransitionTime"]


def test_data_gone_removes_the_reading() -> None:
    first = evaluate(None, 50, T0)
    second = evaluate(first, None, T0 + 15)
    patch = status.patch(first, second)
    assert patch["p95Seconds"] is None  # a merge patch null: the field goes
    assert patch["state"] == "NoData"


def test_missing_and_none_are_the_same() -> None:
    assert not status.changed({"state": "Healthy"}, {"state": "Healthy", "p95Seconds": None})


def test_dry_run_reports_the_plan_and_keeps_its_time() -> None:
    first = evaluate(None, 100, T0, dryRun=True)
    second = evaluate(first, 100, T0 + 15, dryRun=True)
    assert first["plannedActions"] == ["scale Deployment api to 4 (replicas)"]
    assert first["lastAction"] == "planned: scale Deployment api to 4 (replicas)"
    assert second["lastActionTime"] == first["lastActionTime"] == T0_TEXT
    assert second["desiredReplicas"] == 4
    assert not status.changed(first, second)


def test_edge_sync_condition_replaces_the_placeholder() -> None:
    observation = make_observation(50)
    decision = ladder.decide(make_spec(), observation, Memory(), T0)
    synced = ConditionInput("EdgeSynced", ConditionStatus.TRUE, "Synced", "rule in force")
    built = status.build(
        decision, observation, previous=None, now=T0, generation=3, extra_conditions=[synced]
    )
    edge = [c for c in built["conditions"] if c["type"] == "EdgeSynced"]
    assert [(c["status"], c["reason"]) for c in edge] == [("True", "Synced")]


# --- Memory through status ------------------------------------------------------------------


def test_memory_round_trip() -> None:
    memory = Memory(
        at_risk=True,
        at_risk_streak=2,
        recovery_started_at=ago(30),
        last_scale_up_at=ago(60.5),
        last_scale_down_at=ago(900),
        rerouted_to=(SERVICE,),
        rerouted_at=ago(45),
        edge_raised=True,
        released_at=ago(2000),
    )
    raw = memory.to_status()
    assert raw["reroutedTo"] == [{"via": "Service", "name": "api"}]
    assert raw["recoveryStartedAt"] == rfc3339(ago(30))
    assert Memory.from_status(raw) == memory


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(None, id="none"),
        pytest.param("garbage", id="not-a-map"),
        pytest.param(
            {
                "atRisk": "yes",
                "atRiskStreak": -3,
                "recoveryStartedAt": "yesterday",
                "reroutedTo": [{"via": "Carrier pigeon", "name": "x"}, "api", {"via": "Service"}],
            },
            id="hand-edited",
        ),
    ],
)
def test_memory_tolerates_a_broken_status(raw: Any) -> None:
    assert Memory.from_status(raw) == Memory()


def test_adopting_observed_reroutes() -> None:
    dns = RerouteTarget(RerouteVia.DNS_ONLY, "x.example.com")
    memory = Memory(rerouted_to=(SERVICE,))
    assert memory.adopt([SERVICE]) is memory
    assert memory.adopt([dns]).rerouted_to == (dns, SERVICE)


def test_timestamps() -> None:
    assert rfc3339(T0 + 0.25).endswith(".250000Z")
    assert rfc3339(T0 + 0.25, whole_seconds=True) == T0_TEXT
    assert parse_rfc3339(T0_TEXT) == T0
    assert parse_rfc3339("2026-01-01T00:00:00") == parse_rfc3339("2026-01-01T00:00:00Z")
    assert parse_rfc3339(12) is None


def test_a_memory_time_that_goes_away_is_removed_by_the_patch() -> None:
    # The API server merges status.memory key by key: a recovery interrupted by a new
    # at-risk reading must send recoveryStartedAt: null, or the stale start would stay and a
    # later recovery would look older than it is (a scale-down right after a scale-up).
    first = evaluate(None, 50, T0)
    assert "recoveryStartedAt" in first["memory"]
    second = evaluate(first, 100, T0 + 15)
    assert "recoveryStartedAt" not in second["memory"]
    patch = status.patch(first, second)
    assert patch["memory"]["recoveryStartedAt"] is None
    assert patch["memory"]["atRisk"] is True


def test_a_status_written_and_read_back_needs_no_second_write() -> None:
    """A field inside the status that is None (the edge's origin P95 of a window without
    requests) is dropped by the API server: built again from the same inputs, the status
    read back must ask for no patch (it did, every evaluation, for every route through a
    zone with edge analytics: a write per route per 5 s in the benchmark)."""
    quiet = RouteEdge(Window(T0 - 600, T0 - 300), 0, 0, 0, None, 0, 1.0)
    observation = make_observation(50)
    decision = ladder.decide(make_spec(), observation, Memory(), T0)
    first = status.build(
        decision, observation, previous=None, now=T0, generation=1, edge_view=quiet
    )
    stored = merge_patch.apply({}, status.patch(None, first))
    again = status.build(
        decision, observation, previous=stored, now=T0 + 15, generation=1, edge_view=quiet
    )
    assert "originP95Seconds" not in stored["edge"]
    assert status.patch(stored, again) == {}
