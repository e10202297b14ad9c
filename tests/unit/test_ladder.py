"""The policy ladder, table by table: what a route's state and the needed changes are for a
given reading, memory and time. Each row reads as the situation and what the operator does.

Tables list the changes *after the diff* (what would really be applied), written short:
``scale 4``, ``scale 3 via hpa``, ``reroute api``, ``undo api``, ``edge 301``, ``edge None``.
Unless a row says otherwise the route is the default of ``tests.support.ladder``: a 120 s
budget, act at 96 s, release below 72 s, 2..6 replicas in steps of 2.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from tests.support.ladder import (
    DNS,
    SERVICE,
    T0,
    ZONE,
    ago,
    make_observation,
    make_spec,
)
from timeout_budget.decide import diff, ladder
from timeout_budget.model.actions import Action, EdgeTimeout, Reroute, ScaleTo
from timeout_budget.model.conditions import ConditionStatus, ConditionType
from timeout_budget.model.decision import CLOUDFLARE_ADVICE, Decision
from timeout_budget.model.memory import Memory
from timeout_budget.model.observation import LatencyObservation, Outcome
from timeout_budget.model.spec import TimeoutBudgetSpec
from timeout_budget.model.state import State
from timeout_budget.model.world import EdgeObservation, Hpa, RouteObservation

pytestmark = pytest.mark.unit

DEFAULT = make_spec()
NO_EDGE = make_spec(edge=None)
"""For tables about scaling and rerouting alone: no edge rung to raise at max replicas."""
NOTHING = Memory()
AT_RISK = Memory(at_risk=True)


def short(action: Action) -> str:
    match action:
        case ScaleTo():
            return f"scale {action.replicas}" + (" via hpa" if action.via_hpa else "")
        case Reroute():
            return ("reroute " if action.apply else "undo ") + action.target.name
        case EdgeTimeout():
            return f"edge {action.seconds}"


def run(
    observation: RouteObservation,
    memory: Memory = NOTHING,
    spec: TimeoutBudgetSpec = DEFAULT,
    now: float = T0,
) -> tuple[Decision, list[str]]:
    decision = ladder.decide(spec, observation, memory, now)
    return decision, [short(a) for a in diff.changes(decision.actions, observation)]


def condition(decision: Decision, kind: ConditionType) -> tuple[ConditionStatus, str]:
    found = [c for c in decision.conditions if c.type == kind]
    assert len(found) == 1
    return found[0].status, found[0].reason


# --- State: the lines, hysteresis, and the budget in force ---------------------------------


@pytest.mark.parametrize(
    ("observation", "memory", "spec", "state"),
    [
        pytest.param(make_observation(50), Memory(), DEFAULT, State.HEALTHY, id="well-below"),
        pytest.param(make_observation(96), Memory(), DEFAULT, State.AT_RISK, id="at-the-line"),
        pytest.param(make_observation(95.9), Memory(), DEFAULT, State.HEALTHY, id="just-below"),
        pytest.param(
            make_observation(80), Memory(), DEFAULT, State.HEALTHY, id="between-from-below"
        ),
        pytest.param(
            make_observation(80), AT_RISK, DEFAULT, State.AT_RISK, id="between-from-above"
        ),
        pytest.param(
            make_observation(72), AT_RISK, DEFAULT, State.AT_RISK, id="recover-line-holds"
        ),
        pytest.param(make_observation(71.9), AT_RISK, DEFAULT, State.HEALTHY, id="below-recover"),
        pytest.param(make_observation(120), Memory(), DEFAULT, State.BREACHING, id="at-budget"),
        pytest.param(make_observation(None), AT_RISK, DEFAULT, State.NO_DATA, id="no-data"),
        pytest.param(
            make_observation(LatencyObservation.value(math.nan)),
            Memory(),
            DEFAULT,
            State.NO_DATA,
            id="nan-is-no-data",
        ),
        pytest.param(
            make_observation(100, replicas=6, rerouted=[SERVICE]),
            Memory(at_risk=True, rerouted_to=(SERVICE,)),
            NO_EDGE,
            State.REROUTED,
            id="rerouted-at-risk",
        ),
        pytest.param(
            make_observation(130, replicas=6, rerouted=[SERVICE]),
            Memory(at_risk=True, rerouted_to=(SERVICE,)),
            NO_EDGE,
            State.BREACHING,
            id="rerouted-but-breaching",
        ),
        pytest.param(
            make_observation(130), Memory(), make_spec(paused=True), State.PAUSED, id="paused"
        ),
    ],
)
def test_state(
    observation: RouteObservation, memory: Memory, spec: TimeoutBudgetSpec, state: State
) -> None:
    assert run(observation, memory, spec)[0].state is state


@pytest.mark.parametrize(
    ("spec", "edge", "p95", "budget", "state"),
    [
        pytest.param(DEFAULT, EdgeObservation(100, True), 85, 120, State.HEALTHY, id="spec-wins"),
        pytest.param(
            make_spec(budget={"timeoutSeconds": None}),
            EdgeObservation(100, True),
            85,
            100,
            State.AT_RISK,
            id="zone-timeout",
        ),
        pytest.param(
            make_spec(budget={"timeoutSeconds": None}),
            None,
            85,
            120,
            State.HEALTHY,
            id="default-120",
        ),
    ],
)
def test_budget_in_force(
    spec: TimeoutBudgetSpec, edge: EdgeObservation | None, p95: float, budget: int, state: State
) -> None:
    decision, _ = run(make_observation(p95, edge=edge), spec=spec)
    assert (decision.budget_seconds, decision.state) == (budget, state)


# --- Scaling up: steps, cooldown, bounds, HPA ----------------------------------------------


@pytest.mark.parametrize(
    ("observation", "memory", "spec", "changes"),
    [
        pytest.param(make_observation(100), Memory(), NO_EDGE, ["scale 4"], id="one-step"),
        pytest.param(
            make_observation(130), Memory(), NO_EDGE, ["scale 4", "reroute api"], id="breaching"
        ),
        pytest.param(
            make_observation(100, replicas=4),
            Memory(at_risk=True, last_scale_up_at=ago(30)),
            NO_EDGE,
            [],
            id="in-cooldown",
        ),
        pytest.param(
            make_observation(100, replicas=4),
            Memory(at_risk=True, last_scale_up_at=ago(60)),
            NO_EDGE,
            ["scale 6"],
            id="cooldown-over",
        ),
        pytest.param(
            make_observation(100, replicas=5), Memory(), NO_EDGE, ["scale 6"], id="capped"
        ),
        pytest.param(make_observation(100, replicas=6), Memory(), NO_EDGE, [], id="at-max"),
        pytest.param(
            make_observation(100, replicas=1),
            Memory(),
            make_spec(edge=None, origin={"minReplicas": 3, "scaleUpStep": 1}),
            ["scale 3"],
            id="up-to-min",
        ),
        pytest.param(
            make_observation(100, replicas=3, hpa=Hpa("api", 2, 10)),
            Memory(),
            NO_EDGE,
            ["scale 5 via hpa"],
            id="hpa-from-running",
        ),
        pytest.param(
            make_observation(100, replicas=4, hpa=Hpa("api", 2, 4)),
            Memory(),
            NO_EDGE,
            [],
            id="hpa-max-bounds",
        ),
        pytest.param(make_observation(85), AT_RISK, NO_EDGE, [], id="between-lines"),
        pytest.param(make_observation(None), AT_RISK, NO_EDGE, [], id="no-data"),
    ],
)
def test_scale_up(
    observation: RouteObservation, memory: Memory, spec: TimeoutBudgetSpec, changes: list[str]
) -> None:
    assert run(observation, memory, spec)[1] == changes


def test_scale_up_starts_the_cooldown_and_says_why() -> None:
    decision, _ = run(make_observation(100), spec=NO_EDGE)
    (action,) = decision.actions
    assert decision.memory.last_scale_up_at == T0
    assert decision.desired_replicas == 4
    assert "at or above the at-risk line (96s): scaling up 2 → 4" in action.reason


def test_cooldown_is_reported() -> None:
    memory = Memory(at_risk=True, last_scale_up_at=ago(20))
    decision, _ = run(make_observation(100, replicas=4), memory, NO_EDGE)
    assert "Next scale-up in 40s (cooldown)." in decision.message


# --- Scaling down: stabilization, one step, floors, order ----------------------------------


@pytest.mark.parametrize(
    ("observation", "memory", "changes"),
    [
        pytest.param(
            make_observation(50, replicas=4, baseline=2),
            Memory(recovery_started_at=ago(300)),
            ["scale 3"],
            id="window-held",
        ),
        pytest.param(
            make_observation(50, replicas=4, baseline=2),
            Memory(recovery_started_at=ago(299)),
            [],
            id="one-second-short",
        ),
        pytest.param(
            make_observation(50, replicas=4, baseline=2),
            Memory(recovery_started_at=ago(1000), last_scale_down_at=ago(100)),
            [],
            id="window-restarts-per-step",
        ),
        pytest.param(
            make_observation(50, replicas=4, baseline=2),
            Memory(recovery_started_at=ago(1000), last_scale_down_at=ago(300)),
            ["scale 3"],
            id="next-step",
        ),
        pytest.param(
            make_observation(50, replicas=2, baseline=2),
            Memory(recovery_started_at=ago(1000)),
            [],
            id="at-baseline",
        ),
        pytest.param(
            make_observation(50, replicas=5),
            Memory(recovery_started_at=ago(1000)),
            [],
            id="never-scaled-by-operator",
        ),
        pytest.param(
            make_observation(50, replicas=3, baseline=1),
            Memory(recovery_started_at=ago(1000)),
            ["scale 2"],
            id="not-below-min",
        ),
        pytest.param(
            make_observation(50, replicas=4, baseline=2, rerouted=[SERVICE]),
            Memory(recovery_started_at=ago(300), rerouted_to=(SERVICE,)),
            ["undo api"],
            id="reroute-undone-first",
        ),
        pytest.param(
            make_observation(50, replicas=4, baseline=2),
            Memory(recovery_started_at=ago(1000), released_at=ago(100)),
            [],
            id="full-window-after-undo",
        ),
        pytest.param(
            make_observation(50, replicas=4, hpa=Hpa("api", 4, 10), baseline=2),
            Memory(recovery_started_at=ago(300)),
            ["scale 3 via hpa"],
            id="hpa-min-steps-down",
        ),
        pytest.param(
            make_observation(50, replicas=2, hpa=Hpa("api", 2, 10), baseline=1),
            Memory(recovery_started_at=ago(300)),
            ["scale 1 via hpa"],
            id="hpa-min-restored-exactly",
        ),
        pytest.param(
            make_observation(80, replicas=4, baseline=2),
            Memory(at_risk=True, recovery_started_at=ago(1000)),
            [],
            id="between-lines",
        ),
        pytest.param(
            make_observation(10, top=10, replicas=4, baseline=2),
            Memory(recovery_started_at=ago(1000)),
            [],
            id="saturated-not-trusted",
        ),
        pytest.param(
            make_observation(5, top=10, replicas=4, baseline=2),
            Memory(recovery_started_at=ago(300)),
            ["scale 3"],
            id="below-coarse-top-trusted",
        ),
        pytest.param(
            make_observation(None, replicas=4, baseline=2),
            Memory(recovery_started_at=ago(1000)),
            [],
            id="no-data",
        ),
    ],
)
def test_scale_down(observation: RouteObservation, memory: Memory, changes: list[str]) -> None:
    assert run(observation, memory, NO_EDGE)[1] == changes


def test_last_step_down_gives_back_the_baseline() -> None:
    observation = make_observation(50, replicas=3, baseline=2)
    decision, _ = run(observation, Memory(recovery_started_at=ago(300)), NO_EDGE)
    (action,) = decision.actions
    assert isinstance(action, ScaleTo)
    assert (action.replicas, action.restores_baseline) == (2, True)
    assert decision.memory.last_scale_down_at == T0


def test_window_left_is_reported() -> None:
    observation = make_observation(50, replicas=4, baseline=2)
    decision, _ = run(observation, Memory(recovery_started_at=ago(200)), NO_EDGE)
    assert "Next scale-down in 100s if P95 stays below 72s." in decision.message


# --- Rerouting: after N evaluations at max, at once when breaching, undo after recovery ----


@pytest.mark.parametrize(
    ("observation", "memory", "spec", "changes", "streak"),
    [
        pytest.param(
            make_observation(130), Memory(), NO_EDGE, ["scale 4", "reroute api"], 0, id="breaching"
        ),
        pytest.param(make_observation(100, replicas=6), AT_RISK, NO_EDGE, [], 1, id="at-max-1st"),
        pytest.param(
            make_observation(100, replicas=6),
            Memory(at_risk=True, at_risk_streak=1),
            NO_EDGE,
            [],
            2,
            id="at-max-2nd",
        ),
        pytest.param(
            make_observation(100, replicas=6),
            Memory(at_risk=True, at_risk_streak=2),
            NO_EDGE,
            ["reroute api"],
            0,
            id="at-max-3rd-reroutes",
        ),
        pytest.param(
            make_observation(100, replicas=4),
            Memory(at_risk=True, at_risk_streak=2, last_scale_up_at=ago(10)),
            NO_EDGE,
            [],
            0,
            id="below-max-resets",
        ),
        pytest.param(
            make_observation(85, replicas=6),
            Memory(at_risk=True, at_risk_streak=2),
            NO_EDGE,
            [],
            2,
            id="between-lines-keeps-count",
        ),
        pytest.param(
            make_observation(50, replicas=6),
            Memory(at_risk=True, at_risk_streak=2),
            NO_EDGE,
            [],
            0,
            id="recovered-resets",
        ),
        pytest.param(
            make_observation(100, replicas=6),
            AT_RISK,
            make_spec(edge=None, reroute={"afterEvaluations": 1}),
            ["reroute api"],
            0,
            id="after-one",
        ),
        pytest.param(
            make_observation(130, replicas=6),
            AT_RISK,
            make_spec(edge=None, reroute=None),
            [],
            0,
            id="not-configured",
        ),
        pytest.param(
            make_observation(130),
            Memory(),
            make_spec(reroute={"dnsOnlyHostname": DNS.name}),
            ["scale 4", f"reroute {DNS.name}", "reroute api"],
            0,
            id="service-and-dns-only",
        ),
    ],
)
def test_reroute(
    observation: RouteObservation,
    memory: Memory,
    spec: TimeoutBudgetSpec,
    changes: list[str],
    streak: int,
) -> None:
    decision, planned = run(observation, memory, spec)
    assert planned == changes
    assert decision.memory.at_risk_streak == streak


def test_dns_only_without_zone_is_refused() -> None:
    spec = make_spec(
        edge=None,
        reroute={"serviceName": None, "longRunningSelector": None, "dnsOnlyHostname": DNS.name},
    )
    decision, planned = run(make_observation(130), spec=spec)
    assert planned == ["scale 4"]
    assert "only through edge.zoneRef with edge.sync on" in decision.refusals[0].reason


@pytest.mark.parametrize(
    ("observation", "memory", "spec", "changes", "rerouted"),
    [
        pytest.param(
            make_observation(50, replicas=6, rerouted=[SERVICE]),
            Memory(rerouted_to=(SERVICE,), recovery_started_at=ago(300)),
            NO_EDGE,
            ["undo api"],
            False,
            id="undo-after-window",
        ),
        pytest.param(
            make_observation(50, replicas=6, rerouted=[SERVICE]),
            Memory(rerouted_to=(SERVICE,), recovery_started_at=ago(299)),
            NO_EDGE,
            [],
            True,
            id="one-second-short",
        ),
        pytest.param(
            make_observation(None, replicas=6, rerouted=[SERVICE]),
            Memory(rerouted_to=(SERVICE,), recovery_started_at=ago(1000)),
            NO_EDGE,
            [],
            True,
            id="no-data-holds",
        ),
        pytest.param(
            make_observation(85, replicas=6, rerouted=[SERVICE]),
            Memory(at_risk=True, rerouted_to=(SERVICE,)),
            NO_EDGE,
            [],
            True,
            id="between-lines-holds",
        ),
        pytest.param(
            make_observation(100, replicas=6),
            Memory(at_risk=True, rerouted_to=(SERVICE,)),
            NO_EDGE,
            ["reroute api"],
            True,
            id="put-back-by-hand-reapplied",
        ),
        pytest.param(
            make_observation(50, replicas=6, rerouted=[SERVICE]),
            Memory(),
            NO_EDGE,
            [],
            True,
            id="found-rerouted-adopted",
        ),
        pytest.param(
            make_observation(100, replicas=6, rerouted=[SERVICE]),
            Memory(at_risk=True, rerouted_to=(SERVICE,)),
            make_spec(edge=None, reroute=None),
            ["undo api"],
            False,
            id="removed-from-spec",
        ),
    ],
)
def test_reroute_held_or_undone(
    observation: RouteObservation,
    memory: Memory,
    spec: TimeoutBudgetSpec,
    changes: list[str],
    rerouted: bool,
) -> None:
    decision, planned = run(observation, memory, spec)
    assert planned == changes
    assert decision.memory.rerouted is rerouted


def test_reroute_is_restated_while_it_holds() -> None:
    observation = make_observation(85, replicas=6, rerouted=[SERVICE])
    decision, planned = run(observation, Memory(at_risk=True, rerouted_to=(SERVICE,)), NO_EDGE)
    assert [short(a) for a in decision.actions] == ["reroute api"]
    assert planned == []


def test_undo_marks_the_release() -> None:
    observation = make_observation(50, replicas=6, rerouted=[SERVICE])
    memory = Memory(rerouted_to=(SERVICE,), recovery_started_at=ago(300))
    decision, _ = run(observation, memory, NO_EDGE)
    assert decision.memory.released_at == T0
    assert decision.state is State.HEALTHY
    assert "for 300s: undoing the reroute of Service api" in decision.actions[0].reason


# --- The edge: declared read timeout, raise at max, bounds, refusals -----------------------

REQUIRED_300 = make_spec(budget={"timeoutSeconds": 360, "requiredSeconds": 300})
RAISED = replace(ZONE, route_timeout_seconds=121)
"""The zone with the route's rule at the raise's value: budget 120 s + 1 s."""
NO_REROUTE = make_spec(reroute=None)


@pytest.mark.parametrize(
    ("observation", "memory", "spec", "changes"),
    [
        pytest.param(make_observation(50), Memory(), REQUIRED_300, ["edge 301"], id="declared+1"),
        pytest.param(
            make_observation(50),
            Memory(),
            make_spec(budget={"timeoutSeconds": 6000, "requiredSeconds": 6000}),
            ["edge 6000"],
            id="never-above-6000",
        ),
        pytest.param(
            make_observation(50),
            Memory(),
            make_spec(budget={"requiredSeconds": 119}),
            [],
            id="zone-enough",
        ),
        pytest.param(
            make_observation(50, edge=replace(ZONE, route_timeout_seconds=301)),
            Memory(),
            make_spec(budget={"requiredSeconds": 119}),
            ["edge None"],
            id="old-rule-goes",
        ),
        pytest.param(
            make_observation(20, edge=EdgeObservation(30, True)),
            Memory(),
            make_spec(budget={"timeoutSeconds": 100, "requiredSeconds": 50}),
            ["edge 100"],
            id="at-least-100",
        ),
        pytest.param(
            make_observation(50, edge=replace(ZONE, route_timeout_seconds=301)),
            Memory(),
            REQUIRED_300,
            [],
            id="already-in-force",
        ),
        pytest.param(make_observation(100, replicas=6), AT_RISK, NO_EDGE, [], id="no-edge"),
        pytest.param(
            make_observation(100, replicas=6),
            AT_RISK,
            make_spec(reroute=None),
            ["edge 121"],
            id="raised-at-max",
        ),
        pytest.param(
            make_observation(300, replicas=6),
            AT_RISK,
            make_spec(reroute=None, budget={"timeoutSeconds": 360}),
            ["edge 361"],
            id="raised-to-spec-budget",
        ),
        pytest.param(
            make_observation(100, replicas=4),
            AT_RISK,
            make_spec(reroute=None),
            ["scale 6"],
            id="not-raised-below-max",
        ),
        pytest.param(
            make_observation(None, replicas=6, edge=replace(ZONE, route_timeout_seconds=121)),
            Memory(at_risk=True, edge_raised=True),
            make_spec(reroute=None),
            [],
            id="raise-held-without-data",
        ),
        pytest.param(
            make_observation(50, replicas=6, edge=replace(ZONE, route_timeout_seconds=121)),
            Memory(edge_raised=True, recovery_started_at=ago(300)),
            make_spec(reroute=None),
            ["edge None"],
            id="lowered-after-recovery",
        ),
        # Hysteresis: a raise is held until P95 has stayed below the recover line (72 s) for
        # the recovery window, like a reroute; a dip under the at-risk line lowers nothing.
        pytest.param(
            make_observation(80, replicas=6, edge=RAISED),
            Memory(at_risk=True, edge_raised=True),
            DEFAULT,
            [],
            id="raise-held-between-the-lines",
        ),
        pytest.param(
            make_observation(50, replicas=6, edge=RAISED),
            Memory(edge_raised=True, recovery_started_at=ago(299)),
            DEFAULT,
            [],
            id="raise-held-until-reroute-recovery",
        ),
        pytest.param(
            make_observation(50, replicas=6, edge=RAISED),
            Memory(edge_raised=True, recovery_started_at=ago(300)),
            DEFAULT,
            ["edge None"],
            id="raise-lowered-at-reroute-recovery",
        ),
        pytest.param(
            make_observation(50, replicas=6, edge=RAISED),
            Memory(edge_raised=True, recovery_started_at=ago(0)),
            make_spec(reroute={"recoverySeconds": 0}),
            ["edge None"],
            id="raise-lowered-window-0",
        ),
        pytest.param(
            make_observation(80, replicas=6, edge=RAISED),
            Memory(at_risk=True, edge_raised=True),
            make_spec(reroute={"recoverySeconds": 0}),
            [],
            id="raise-held-between-the-lines-window-0",
        ),
        # A raise in force whose memory is missing (status written over, or read before the
        # operator's own write arrived) is the operator's own, as a reroute in force is.
        pytest.param(
            make_observation(80, replicas=6, edge=RAISED),
            AT_RISK,
            DEFAULT,
            [],
            id="raise-found-held-between-the-lines",
        ),
        pytest.param(
            make_observation(None, replicas=6, edge=RAISED),
            NOTHING,
            DEFAULT,
            [],
            id="raise-found-held-without-data",
        ),
        pytest.param(
            make_observation(50, replicas=6, edge=RAISED),
            Memory(recovery_started_at=ago(299)),
            DEFAULT,
            [],
            id="raise-found-held-until-recovery",
        ),
        pytest.param(
            make_observation(50, replicas=6, edge=RAISED),
            Memory(recovery_started_at=ago(300)),
            DEFAULT,
            ["edge None"],
            id="raise-found-lowered-after-recovery",
        ),
        pytest.param(
            make_observation(80, replicas=6, edge=replace(ZONE, route_timeout_seconds=301)),
            AT_RISK,
            DEFAULT,
            ["edge None"],
            id="other-rule-is-no-raise",
        ),
        pytest.param(
            make_observation(100, replicas=6),
            AT_RISK,
            make_spec(reroute=None, edge={"sync": False}),
            [],
            id="sync-off",
        ),
        pytest.param(
            make_observation(100, replicas=6, edge=EdgeObservation(120, editable=False)),
            AT_RISK,
            make_spec(reroute=None),
            [],
            id="plan-not-editable",
        ),
    ],
)
def test_edge(
    observation: RouteObservation, memory: Memory, spec: TimeoutBudgetSpec, changes: list[str]
) -> None:
    assert run(observation, memory, spec)[1] == changes


def test_a_raise_found_in_force_is_remembered_and_says_when_it_goes() -> None:
    """Adopted like a reroute in force: remembered (so scale-down waits for its lowering)
    and explained, with the release window of a route without a reroute (stabilization)."""
    decision, changes = run(make_observation(80, replicas=6, edge=RAISED), AT_RISK, NO_REROUTE)
    assert changes == []
    assert decision.memory.edge_raised
    assert "Edge read timeout held at 121s until P95 stays below 72s for 300s." in decision.message
    assert not decision.counts_down  # no countdown: the time alone changes nothing shown


def test_declared_timeout_explains_the_extra_second() -> None:
    decision, _ = run(make_observation(50), spec=REQUIRED_300)
    (action,) = decision.actions
    assert "requiredSeconds 300" in action.reason
    assert "1 s after the read timeout, so 301s" in action.reason


def test_6000_has_no_margin_and_says_so() -> None:
    spec = make_spec(budget={"timeoutSeconds": 6000, "requiredSeconds": 6000})
    assert "no 1 s margin" in run(make_observation(50), spec=spec)[0].message


@pytest.mark.parametrize(
    ("edge", "why"),
    [
        pytest.param(EdgeObservation(120, editable=False), "editable: false", id="not-editable"),
        pytest.param(
            EdgeObservation(120, editable=True, max_timeout_seconds=200),
            "allows at most 200s",
            id="plan-max",
        ),
        pytest.param(None, "not known yet", id="zone-unknown"),
    ],
)
def test_declared_timeout_refused(edge: EdgeObservation | None, why: str) -> None:
    decision, planned = run(make_observation(50, edge=edge), spec=REQUIRED_300)
    assert planned == []
    assert len(decision.refusals) == 1
    assert why in decision.refusals[0].reason
    if edge is not None:
        assert decision.advice == CLOUDFLARE_ADVICE


def test_declared_timeout_kept_without_data() -> None:
    """Configuration, not a reaction to latency: a route with no traffic yet gets it too."""
    assert run(make_observation(None), spec=REQUIRED_300)[1] == ["edge 301"]


# --- When nothing more can be done: say so, give Cloudflare's advice -----------------------

SPENT = Memory(at_risk=True, rerouted_to=(SERVICE,), edge_raised=True)
SPENT_EDGE = replace(ZONE, route_timeout_seconds=121)


@pytest.mark.parametrize(
    ("observation", "memory", "spec", "exhausted"),
    [
        pytest.param(
            make_observation(100, replicas=6, edge=EdgeObservation(120, editable=False)),
            AT_RISK,
            make_spec(reroute=None),
            True,
            id="max-no-reroute-plan-locked",
        ),
        pytest.param(
            make_observation(100, replicas=6, rerouted=[SERVICE], edge=SPENT_EDGE),
            SPENT,
            DEFAULT,
            True,
            id="rerouted-and-raised",
        ),
        pytest.param(
            make_observation(130, replicas=6, rerouted=[SERVICE], edge=SPENT_EDGE),
            SPENT,
            DEFAULT,
            True,
            id="breaching-all-spent",
        ),
        pytest.param(
            make_observation(100, replicas=6),
            AT_RISK,
            make_spec(reroute=None, edge=None),
            True,
            id="no-reroute-no-edge",
        ),
        pytest.param(
            make_observation(90, replicas=6),
            AT_RISK,
            make_spec(reroute=None, edge=None),
            True,
            id="held-at-risk-between-the-lines",  # no flip of Ready on a wobble under 96 s
        ),
        pytest.param(
            make_observation(90, replicas=6),
            Memory(),
            make_spec(reroute=None, edge=None),
            False,
            id="between-the-lines-never-at-risk",
        ),
        pytest.param(
            make_observation(100, replicas=6), AT_RISK, NO_EDGE, False, id="reroute-pending"
        ),
        pytest.param(
            make_observation(100, replicas=4),
            AT_RISK,
            make_spec(reroute=None, edge=None),
            False,
            id="can-still-scale",
        ),
        pytest.param(
            make_observation(50, replicas=6),
            Memory(),
            make_spec(reroute=None, edge=None),
            False,
            id="healthy-at-max",
        ),
    ],
)
def test_nothing_more_to_do(
    observation: RouteObservation, memory: Memory, spec: TimeoutBudgetSpec, exhausted: bool
) -> None:
    decision, _ = run(observation, memory, spec)
    assert ("Nothing more can be done" in decision.message) is exhausted
    assert (decision.advice == CLOUDFLARE_ADVICE) is exhausted
    ready = condition(decision, ConditionType.READY)
    if exhausted and decision.state is not State.BREACHING:
        assert ready == (ConditionStatus.FALSE, "NothingMoreToDo")


def test_advice_names_both_ways_out() -> None:
    observation = make_observation(100, replicas=6)
    decision, _ = run(observation, AT_RISK, make_spec(reroute=None, edge=None))
    assert "at max replicas (6); no reroute configured; no edge.zoneRef" in decision.message
    assert "status polling" in decision.message
    assert "DNS-only" in decision.message


# --- Without data: hold everything ---------------------------------------------------------


@pytest.mark.parametrize(
    "latency",
    [
        pytest.param(LatencyObservation.no_data(), id="no-data"),
        pytest.param(LatencyObservation.unavailable("connection refused"), id="unavailable"),
        pytest.param(LatencyObservation.rejected("parse error"), id="rejected"),
        pytest.param(LatencyObservation.invalid("bad label"), id="invalid"),
        # A partial answer (a store of the backend down) under the at-risk line: no reading.
        pytest.param(LatencyObservation.partial(30.0, "store down"), id="partial-under"),
        pytest.param(LatencyObservation.partial(None, "store down"), id="partial-nan"),
    ],
)
def test_missing_data_holds_everything(latency: LatencyObservation) -> None:
    memory = Memory(
        at_risk=True,
        at_risk_streak=2,
        recovery_started_at=ago(1000),
        rerouted_to=(SERVICE,),
        last_scale_up_at=ago(1000),
    )
    observation = make_observation(latency, replicas=4, baseline=2, rerouted=[SERVICE])
    decision, planned = run(observation, memory)
    assert planned == []
    assert decision.state is State.NO_DATA
    assert decision.memory == replace(memory, recovery_started_at=None)
    expected = latency.outcome.value if latency.outcome is not Outcome.VALUE else "NoData"
    assert condition(decision, ConditionType.METRICS_AVAILABLE) == (
        ConditionStatus.FALSE,
        expected,
    )
    assert condition(decision, ConditionType.READY)[0] is ConditionStatus.UNKNOWN
    assert "holding everything as it is" in decision.message


def test_a_partial_answer_over_the_line_adds_capacity_and_says_it_is_partial() -> None:
    partial = LatencyObservation.partial(100.0, "No StoreAPIs matched for this query")
    decision, planned = run(make_observation(partial, replicas=2), Memory())
    assert planned == ["scale 4"]  # the default step from 2, as a full answer of 100 s
    assert decision.state is State.AT_RISK
    assert condition(decision, ConditionType.METRICS_AVAILABLE) == (
        ConditionStatus.FALSE,
        "PartialData",
    )


def test_a_partial_answer_under_the_recover_line_undoes_nothing() -> None:
    memory = Memory(recovery_started_at=ago(10_000), rerouted_to=(SERVICE,))
    partial = LatencyObservation.partial(10.0, "isPartial")
    observation = make_observation(partial, replicas=4, baseline=2, rerouted=[SERVICE])
    decision, planned = run(observation, memory)
    assert planned == []  # a full answer of 10 s would undo the reroute and scale down
    assert decision.state is State.NO_DATA
    _, planned_full = run(
        make_observation(10.0, replicas=4, baseline=2, rerouted=[SERVICE]), memory
    )
    assert planned_full != []


# --- Paused and dry run --------------------------------------------------------------------


def test_paused_takes_and_undoes_nothing() -> None:
    memory = Memory(rerouted_to=(SERVICE,), recovery_started_at=ago(1000))
    observation = make_observation(50, replicas=4, baseline=2, rerouted=[SERVICE])
    decision = ladder.decide(make_spec(paused=True), observation, memory, T0)
    assert decision.state is State.PAUSED
    assert decision.actions == ()
    assert decision.memory == memory
    assert not decision.dry_run
    assert "Paused: nothing is taken or undone." in decision.message


def test_paused_keeps_watching() -> None:
    """Readings still move the latch and the recovery, so unpausing acts on what happened."""
    decision = ladder.decide(make_spec(paused=True), make_observation(100), Memory(), T0)
    assert decision.memory == Memory(at_risk=True)
    assert decision.p95_seconds == 100


@pytest.mark.parametrize(
    ("observation", "memory", "state"),
    [
        pytest.param(make_observation(100), Memory(), State.AT_RISK, id="scale-up"),
        pytest.param(make_observation(130), Memory(), State.BREACHING, id="breaching"),
        pytest.param(
            make_observation(50, replicas=6, rerouted=[SERVICE], baseline=2),
            Memory(rerouted_to=(SERVICE,), recovery_started_at=ago(300)),
            State.REROUTED,
            id="undo-planned-still-rerouted",
        ),
    ],
)
def test_dry_run_decides_the_same_but_only_plans(
    observation: RouteObservation, memory: Memory, state: State
) -> None:
    real = ladder.decide(NO_EDGE, observation, memory, T0)
    dry = ladder.decide(make_spec(edge=None, dryRun=True), observation, memory, T0)
    assert dry.dry_run
    assert not real.dry_run
    assert dry.actions == real.actions
    assert dry.state is state
    assert dry.memory.last_scale_up_at == memory.last_scale_up_at
    assert dry.memory.rerouted_to == memory.rerouted_to
    assert "Dry run: actions are planned, not applied." in dry.message


def test_dry_run_plan_is_stable() -> None:
    """The world does not move in a dry run; the plan should not blink with the cooldown."""
    spec = make_spec(edge=None, dryRun=True)
    observation = make_observation(100)
    memory = Memory()
    plans = []
    for step in range(5):
        decision = ladder.decide(spec, observation, memory, T0 + 15 * step)
        plans.append([short(a) for a in diff.changes(decision.actions, observation)])
        memory = decision.memory
    assert plans == [["scale 4"]] * 5


# --- Buckets too coarse --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("top", "status", "reason"),
    [
        pytest.param(10.0, ConditionStatus.FALSE, "BucketsTooCoarse", id="stops-at-10s"),
        pytest.param(100.0, ConditionStatus.TRUE, "CoversAtRiskLine", id="reaches-at-risk"),
        pytest.param(120.0, ConditionStatus.TRUE, "Covered", id="reaches-budget"),
        pytest.param(None, ConditionStatus.UNKNOWN, "BucketsUnknown", id="unknown"),
    ],
)
def test_bucket_coverage(top: float | None, status: ConditionStatus, reason: str) -> None:
    decision, _ = run(make_observation(5, top=top))
    assert condition(decision, ConditionType.BUCKETS_COVER_BUDGET) == (status, reason)


def test_coarse_buckets_say_what_is_needed() -> None:
    decision, _ = run(make_observation(10, top=10))
    (coverage,) = [c for c in decision.conditions if c.type == "BucketsCoverBudget"]
    assert "largest finite bucket is le=10" in coverage.message
    assert "Add buckets up to at least 96s, ideally past the 120s budget" in coverage.message
    assert "the true value may be higher" in decision.message
    assert decision.memory.recovery_started_at is None
    assert condition(decision, ConditionType.READY) == (ConditionStatus.UNKNOWN, "BucketsTooCoarse")
