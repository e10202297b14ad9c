"""``decide.quiet``: a quiet route's decision may be reused only when time cannot change it.

The claim checked on thousands of random routes: when the decision is ``reusable``,
deciding the same inputs at any time before ``stable_until`` gives the very same decision
(state, message, conditions, memory, everything). Controls check that the generator does
reach decisions that time *does* change once a window ends, and countdowns that change at
once, so the claim is not vacuous.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace

import pytest

from tests.support.ladder import DNS, SERVICE, T0, ZONE, ago, make_observation, make_spec
from timeout_budget.decide import ladder, quiet
from timeout_budget.decide.context import Context
from timeout_budget.model.memory import Memory
from timeout_budget.model.observation import LatencyObservation
from timeout_budget.model.spec import TimeoutBudgetSpec
from timeout_budget.model.world import EdgeObservation, Hpa, RouteObservation

pytestmark = pytest.mark.unit

LATER = (1.0, 15.0, 59.0, 61.0, 299.0, 301.0, 900.0, 86_400.0)


def random_spec(rng: random.Random) -> TimeoutBudgetSpec:
    origin = {
        "minReplicas": rng.choice([1, 2]),
        "maxReplicas": rng.choice([2, 4, 6]),
        "scaleUpCooldownSeconds": rng.choice([0, 30, 60, 600]),
        "scaleDownStabilizationSeconds": rng.choice([0, 60, 300, 1200]),
    }
    sections: dict[str, object] = {"origin": origin}
    if rng.random() < 0.3:
        sections["reroute"] = None
    else:
        sections["reroute"] = {"recoverySeconds": rng.choice([0, 120, 300, 900])}
    if rng.random() < 0.3:
        sections["edge"] = None
    if rng.random() < 0.1:
        sections["paused"] = True
    if rng.random() < 0.1:
        sections["dryRun"] = True
    return make_spec(**sections)


def random_observation(rng: random.Random) -> RouteObservation:
    roll = rng.random()
    p95: float | LatencyObservation | None
    if roll < 0.1:
        p95 = None
    elif roll < 0.15:
        p95 = LatencyObservation.unavailable("Prometheus down")
    else:
        p95 = rng.choice([5.0, 40.0, 71.9, 72.0, 80.0, 95.9, 96.0, 110.0, 130.0, 400.0])
    edge: EdgeObservation | None = rng.choice([ZONE, None, replace(ZONE, editable=False)])
    if edge is not None and rng.random() < 0.3:
        edge = replace(edge, route_timeout_seconds=rng.choice([121, 301]))
    return make_observation(
        p95,
        replicas=rng.choice([1, 2, 3, 4, 6]),
        hpa=Hpa("api", 2, 8) if rng.random() < 0.2 else None,
        baseline=rng.choice([None, 1, 2]),
        rerouted=rng.choice([(), (), (SERVICE,), (DNS,)]),
        edge=edge,
        top=rng.choice([None, None, 60.0]),
    )


def random_memory(rng: random.Random) -> Memory:
    def moment() -> float | None:
        return None if rng.random() < 0.4 else ago(rng.choice([0, 59, 61, 299, 301, 3600, 3600]))

    return Memory(
        at_risk=rng.random() < 0.4,
        at_risk_streak=rng.choice([0, 0, 1, 2, 3]),
        recovery_started_at=moment(),
        last_scale_up_at=moment(),
        last_scale_down_at=moment(),
        rerouted_to=rng.choice([(), (), (SERVICE,)]),
        rerouted_at=moment(),
        edge_raised=rng.random() < 0.2,
        released_at=moment(),
    )


def test_a_reusable_decision_is_the_same_until_a_window_can_end() -> None:
    rng = random.Random(20261127)
    checked = waiting = countdowns = 0
    for _ in range(12_000):
        spec, obs, memory = random_spec(rng), random_observation(rng), random_memory(rng)
        memory = memory.adopt(obs.rerouted)  # what the engine hands the ladder
        shown = rng.choice([None, None, 80.0, 100.0])
        if rng.random() < 0.6:  # a memory as an earlier evaluation of these inputs left it
            before = T0 - rng.choice([30.0, 300.0, 7200.0])
            memory = ladder.decide(spec, obs, memory, before, shown=shown).memory
        first = ladder.decide(spec, obs, memory, T0, shown=shown)
        if first.counts_down and not first.actions and first.memory == memory:
            # Reusable but for its countdown: the flag is what keeps it from being reused.
            assert not quiet.reusable(first, memory)
            assert ladder.decide(spec, obs, memory, T0 + 1.0, shown=shown) != first
            countdowns += 1
        if not quiet.reusable(first, memory):
            continue
        until = quiet.stable_until(spec, memory, T0)
        assert until > T0
        waiting += until < math.inf  # the case the time-invariant rule alone never reused
        times = [T0 + dt for dt in LATER if T0 + dt < until]
        times += [rng.uniform(T0, min(until, T0 + 86_400.0)) for _ in range(3)]
        if until < math.inf:
            times.append(until - 0.001)
        checked += 1
        for t in times:
            decision = ladder.decide(spec, obs, memory, t, shown=shown)
            assert decision == first, f"changed {t - T0}s later: {spec=} {obs=} {memory=}"
    # Every kind was met many times: the claim is tested on routes inside a window, and the
    # control has teeth (decisions the time does change: countdowns, a second later).
    assert checked > 1000, checked
    assert waiting > 300, waiting
    assert countdowns > 50, countdowns


def test_stable_until_is_the_first_window_end_after_now() -> None:
    spec = make_spec(
        origin={"scaleUpCooldownSeconds": 60, "scaleDownStabilizationSeconds": 300},
        reroute={"recoverySeconds": 120},
    )
    assert quiet.durations(spec) == (60.0, 300.0, 120.0)
    memory = Memory(recovery_started_at=ago(100), last_scale_up_at=ago(30))
    # recovery + 120 s is 20 s away; scale-up + 60 s is 30 s away: the nearer wins.
    assert quiet.stable_until(spec, memory, T0) == T0 + 20
    assert quiet.stable_until(spec, memory, T0 + 20) == T0 + 30  # that end is now past
    assert quiet.stable_until(spec, Memory(), T0) == math.inf
    assert quiet.stable_until(spec, Memory(released_at=ago(300)), T0) == math.inf


def test_noise_within_the_shown_band_gives_the_same_inputs() -> None:
    spec, memory = make_spec(), Memory()
    keys = {
        quiet.inputs(Context.of(spec, make_observation(p95), T0, 40.0), memory, 40.0)
        for p95 in (38.0, 40.0, 42.5)
    }
    assert len(keys) == 1
    moved = Context.of(spec, make_observation(60.0), T0, 40.0)
    assert quiet.inputs(moved, memory, 40.0) not in keys


def test_a_recent_moment_makes_the_route_time_dependent() -> None:
    spec = make_spec(origin={"scaleDownStabilizationSeconds": 300}, reroute=None)
    assert max(quiet.durations(spec)) == 300
    assert quiet.stable_until(spec, Memory(recovery_started_at=ago(299)), T0) == T0 + 1
    assert quiet.stable_until(spec, Memory(recovery_started_at=ago(300)), T0) == math.inf
    assert quiet.stable_until(spec, Memory(), T0) == math.inf


def test_acting_or_moving_memory_is_never_reused() -> None:
    spec, memory = make_spec(), Memory()
    acting = ladder.decide(spec, make_observation(110.0), memory, T0)
    assert acting.actions
    assert not quiet.reusable(acting, memory)
    recovering = ladder.decide(spec, make_observation(5.0), memory, T0)
    assert recovering.memory != memory  # the recovery starts now
    assert not quiet.reusable(recovering, memory)
