"""The ladder over time: a latency profile replayed every 15 s against a small simulated
world that applies the diffed changes, as the operator's loop would. Memory goes through its
status form between evaluations, as it does in the cluster. The assertions are the timeline
a user would see in the Events: when replicas moved, when the route was rerouted and when
it all came back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pytest

from tests.support.ladder import SERVICE, FakeClock, make_observation, make_spec
from timeout_budget.decide import diff, ladder
from timeout_budget.model.actions import Action, EdgeTimeout, Reroute, RerouteTarget, ScaleTo
from timeout_budget.model.memory import Memory
from timeout_budget.model.spec import TimeoutBudgetSpec
from timeout_budget.model.state import State
from timeout_budget.model.world import EdgeObservation, RouteObservation

pytestmark = pytest.mark.unit

EVERY = 15


@dataclass
class World:
    """A Deployment, a Service and a zone that do what they are told, at once."""

    replicas: int = 2
    baseline: int | None = None
    rerouted: set[RerouteTarget] = field(default_factory=set)
    route_timeout: int | None = None

    def observe(self, p95: float | None) -> RouteObservation:
        return make_observation(
            p95,
            replicas=self.replicas,
            baseline=self.baseline,
            rerouted=self.rerouted,
            edge=EdgeObservation(120, True, route_timeout_seconds=self.route_timeout),
        )

    def apply(self, actions: Iterable[Action]) -> None:
        for action in actions:
            match action:
                case ScaleTo():
                    if self.baseline is None:
                        self.baseline = self.replicas  # the apply step's annotation
                    self.replicas = action.replicas
                    if action.restores_baseline:
                        self.baseline = None
                case Reroute():
                    (self.rerouted.add if action.apply else self.rerouted.discard)(action.target)
                case EdgeTimeout():
                    self.route_timeout = action.seconds


def describe(action: Action) -> str:
    match action:
        case ScaleTo():
            return f"scale {action.replicas}"
        case Reroute():
            return ("reroute " if action.apply else "undo ") + action.target.name
        case EdgeTimeout():
            return f"edge {action.seconds}"


@dataclass
class Replay:
    events: list[tuple[int, str]]
    states: list[State]
    world: World


def replay(
    p95_at: Callable[[int], float | None],
    until: int,
    spec: TimeoutBudgetSpec | None = None,
    read_late: Callable[[int], bool] = lambda t: False,
) -> Replay:
    """``read_late(t)``: the evaluation at ``t`` reads the status from before the previous
    evaluation's write (as a watch that has not delivered the operator's own patch yet)."""
    spec = spec or make_spec()
    world, clock, memory, before = World(), FakeClock(), Memory(), Memory()
    start = clock.now
    events: list[tuple[int, str]] = []
    states: list[State] = []
    for _ in range(0, until + 1, EVERY):
        offset = int(clock.now - start)
        observation = world.observe(p95_at(offset))
        seen = before if read_late(offset) else memory
        decision = ladder.decide(spec, observation, seen, clock.now)
        changes = diff.changes(decision.actions, observation)
        if not decision.dry_run:
            world.apply(changes)
        events.extend((offset, describe(a)) for a in changes)
        states.append(decision.state)
        before, memory = memory, Memory.from_status(decision.memory.to_status())
        clock.tick(EVERY)
    return Replay(events, states, world)


def incident(t: int) -> float:
    """Healthy, 2 minutes at 100 s (at risk at 96 s), then healthy again."""
    return 100.0 if 60 <= t < 180 else 50.0


def test_incident_climbs_the_ladder_and_comes_back_down() -> None:
    result = replay(incident, until=2400)
    assert result.events == [
        (60, "scale 4"),  # at risk: one step
        (120, "scale 6"),  # after the 60 s cooldown, up to maxReplicas
        (135, "edge 121"),  # at max and still at risk: the edge allows the budget + 1 s
        (165, "reroute api"),  # third at-risk evaluation at max replicas
        (480, "undo api"),  # recovery since 180 held for reroute.recoverySeconds
        (480, "edge None"),
        (780, "scale 5"),  # then one replica per 300 s stabilization window
        (1080, "scale 4"),
        (1380, "scale 3"),
        (1680, "scale 2"),  # back to what it was; nothing more after that
    ]
    assert result.world == World()


def test_states_along_the_incident() -> None:
    states = replay(incident, until=600).states
    at = {t: states[t // EVERY] for t in (0, 60, 165, 180, 480)}
    assert at == {
        0: State.HEALTHY,
        60: State.AT_RISK,
        165: State.REROUTED,
        180: State.REROUTED,
        480: State.HEALTHY,
    }


def test_breach_reroutes_at_once() -> None:
    result = replay(lambda t: 150.0 if t >= 30 else 50.0, until=45)
    assert result.events == [(30, "scale 4"), (30, "reroute api")]
    assert result.world.rerouted == {SERVICE}


def test_oscillating_between_the_lines_does_not_flap() -> None:
    """After one scale-up, P95 alternating 75 s / 95 s (between 72 and 96) moves nothing."""
    result = replay(lambda t: 100.0 if t == 0 else (75.0 if t // EVERY % 2 else 95.0), 3000)
    assert result.events == [(0, "scale 4")]
    assert set(result.states) == {State.AT_RISK}


def test_crossing_both_lines_never_scales_down() -> None:
    """A recovery window that never holds never releases, however often P95 dips."""
    result = replay(lambda t: 100.0 if t // 150 % 2 else 50.0, until=3000)
    assert [e for e in result.events if e[1].startswith("scale")] == [
        (150, "scale 4"),
        (210, "scale 6"),  # cooldown over, still in the first at-risk stretch
    ]


def test_missing_data_restarts_the_recovery_window() -> None:
    def profile(t: int) -> float | None:
        if t < 180:
            return 150.0 if t >= 60 else 50.0
        return None if 300 <= t < 405 else 50.0

    result = replay(profile, until=900)
    undo = [t for t, what in result.events if what == "undo api"]
    assert undo == [405 + 300]  # not 180 + 300: the gap did not count as recovery


def test_dry_run_changes_nothing_and_keeps_planning() -> None:
    result = replay(lambda t: 100.0, until=300, spec=make_spec(dryRun=True))
    assert result.world == World()
    assert {what for _, what in result.events} == {"scale 4"}
    assert len(result.events) == 300 // EVERY + 1


def dip_at_max(t: int) -> float | None:
    """At risk from 60 s; at 150 s one reading between the lines (80 s), at 165 s none at
    all; at risk again until 300 s, healthy from then on."""
    if t < 60 or t >= 300:
        return 50.0
    return {150: 80.0, 165: None}.get(t, 100.0)


@pytest.mark.parametrize("late", [False, True], ids=["memory-read-fresh", "memory-read-late"])
def test_one_edge_raise_and_one_lowering_per_at_risk_episode(late: bool) -> None:
    """The edge raise alone (no reroute): raised at max replicas, held through a dip under
    the at-risk line and a reading with no data, lowered once P95 has stayed below the
    recover line for the release window (here the 300 s stabilization, from 300 s on).
    ``late``: the evaluations at 150 s and 165 s read the status from before the previous
    write, so the one at 150 s does not see the raise in its memory. Before the raise in
    force was adopted, that evaluation lowered it (150 s) and the next raised it again."""
    spec = make_spec(reroute=None)
    result = replay(dip_at_max, until=1200, spec=spec, read_late=lambda t: late and t in (150, 165))
    edge = [event for event in result.events if event[1].startswith("edge")]
    assert edge == [(135, "edge 121"), (600, "edge None")]
    assert [e for e in result.events if e[1].startswith("scale")][:2] == [
        (60, "scale 4"),
        (120, "scale 6"),
    ]
