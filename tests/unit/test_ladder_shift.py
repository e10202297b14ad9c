"""The weighted reroute over time (``reroute.httpRoute``): a closed loop in which P95
answers the share of traffic on the long-running backend, replayed every 15 s, memory
through its status form as in the cluster. The timeline is what a user reads in the
Events: each step forward while at risk, the stop once P95 is under the at-risk line,
the walk back after recovery and the undo at the end."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pytest

from tests.support.ladder import FakeClock, make_observation, make_spec
from timeout_budget.decide import diff, ladder
from timeout_budget.model.actions import Reroute, RerouteTarget, RerouteVia, ScaleTo
from timeout_budget.model.memory import Memory
from timeout_budget.model.spec import TimeoutBudgetSpec
from timeout_budget.model.state import State

pytestmark = pytest.mark.unit

EVERY = 15
SHIFT = RerouteTarget(RerouteVia.HTTPROUTE, "api")


def shift_spec(**shift: object) -> TimeoutBudgetSpec:
    base = make_spec(reroute=None, edge=None)
    body = base.model_dump(by_alias=True, exclude_none=True)
    body["reroute"] = {
        "httpRoute": {"name": "api", "backend": {"name": "api-long", "port": 8080}, **shift},
        "afterEvaluations": 3,
        "recoverySeconds": 300,
    }
    return type(base).model_validate(body)


@dataclass
class World:
    replicas: int = 2
    percent: int | None = None
    changed: str | None = None
    events: list[tuple[int, str]] = field(default_factory=list)


def replay(
    p95: Callable[[int, World], float | None], until: int, spec: TimeoutBudgetSpec
) -> tuple[World, list[State]]:
    world, clock, memory = World(), FakeClock(), Memory()
    start = clock.now
    states: list[State] = []
    for _ in range(0, until + 1, EVERY):
        t = int(clock.now - start)
        observation = replace(
            make_observation(
                p95(t, world),
                replicas=world.replicas,
                baseline=2 if world.replicas != 2 else None,  # the apply step's annotation
                rerouted={SHIFT} if world.percent is not None else (),
                edge=None,
            ),
            shift_percent=world.percent,
            shift_changed=world.changed,
        )
        decision = ladder.decide(spec, observation, memory, clock.now)
        for action in diff.changes(decision.actions, observation):
            match action:
                case ScaleTo():
                    world.replicas = action.replicas
                    world.events.append((t, f"scale {action.replicas}"))
                case Reroute():
                    world.percent = action.percent if action.apply else None
                    world.events.append((t, f"{world.percent}%" if action.apply else "undo"))
        states.append(decision.state)
        memory = Memory.from_status(decision.memory.to_status())
        clock.tick(EVERY)
    return world, states


def answers_the_shift(t: int, world: World) -> float:
    """At risk (100 s) from 60 s while under half the traffic is on the long-running
    backend; between the lines (80 s) at 50 %; healthy (50 s) once the surge ends at 600 s."""
    if t < 60 or t >= 600:
        return 50.0
    return 80.0 if (world.percent or 0) >= 50 else 100.0


def test_steps_forward_while_at_risk_stops_when_under_the_line_and_walks_back() -> None:
    world, states = replay(answers_the_shift, 1500, shift_spec(holdSeconds=60))
    assert world.events == [
        (60, "scale 4"),
        (120, "scale 6"),
        (165, "25%"),  # the third at-risk evaluation at max replicas: the first step
        (225, "50%"),  # held 60 s, still at risk: the next step
        # P95 80 s at 50 %: under the at-risk line, so the shift stops there (no 100 %)
        (900, "25%"),  # below the recover line since 600 s for 300 s: one step back
        (960, "undo"),  # a hold later, the last step back restores the rule
        (1260, "scale 5"),
    ]
    assert world.percent is None
    assert states[165 // EVERY] is State.REROUTED


def test_breach_shifts_at_once_and_goes_all_the_way_while_still_at_risk() -> None:
    world, _ = replay(lambda t, w: 150.0 if t >= 30 else 50.0, 300, shift_spec(holdSeconds=30))
    shifts = [e for e in world.events if not e[1].startswith("scale")]
    assert shifts == [(30, "25%"), (60, "50%"), (90, "100%")]


def test_a_rule_changed_by_someone_else_is_asked_again_never_walked_past() -> None:
    """The diff keeps asking for the step in force while the rule differs from what the
    operator wrote (the apply step then refuses to overwrite it); the ladder itself does
    not move on because of it."""
    spec = shift_spec(holdSeconds=600)
    memory = Memory(rerouted_to=(SHIFT,), shift_step=2, shift_step_at=FakeClock().now)
    observation = replace(
        make_observation(100.0, replicas=6, rerouted={SHIFT}, edge=None),
        shift_percent=None,
        shift_changed="rule 0: backendRefs changed by someone else",
    )
    decision = ladder.decide(spec, observation, memory, FakeClock().now + 15)
    (change,) = diff.changes(decision.actions, observation)
    assert isinstance(change, Reroute)
    assert (change.apply, change.percent) == (True, 50)
    assert decision.memory.shift_step == 2


def test_a_shift_found_in_force_is_adopted_at_its_step() -> None:
    """Status lost (or a replica killed between the write and its status): the share the
    HTTPRoute shows is the step the walk goes on from."""
    spec = shift_spec(steps=[10, 40, 100], holdSeconds=60)
    observation = replace(
        make_observation(100.0, replicas=6, rerouted={SHIFT}, edge=None), shift_percent=40
    )
    decision = ladder.decide(spec, observation, Memory(), FakeClock().now)
    assert decision.memory.shift_step == 2
    assert diff.changes(decision.actions, observation) == ()
    assert "next step in 60s" in decision.message


def test_removing_the_shift_from_the_spec_restores_the_rule() -> None:
    memory = Memory(rerouted_to=(SHIFT,), shift_step=1)
    spec = make_spec(edge=None)  # the Service reroute only
    observation = replace(make_observation(50.0, rerouted={SHIFT}, edge=None), shift_percent=25)
    decision = ladder.decide(spec, observation, memory, FakeClock().now)
    assert [(type(a).__name__, getattr(a, "apply", None)) for a in decision.actions] == [
        ("Reroute", False)
    ]
    assert decision.memory.shift_step == 0
