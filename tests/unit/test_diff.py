"""The diff: an action the world already satisfies is dropped, anything else is kept."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.support.ladder import DNS, SERVICE, T0, ZONE, make_observation, make_spec
from timeout_budget.decide import diff, ladder
from timeout_budget.model.actions import Action, EdgeTimeout, Reroute, RerouteTarget, ScaleTo
from timeout_budget.model.memory import Memory
from timeout_budget.model.world import Hpa, RouteObservation

pytestmark = pytest.mark.unit


def scale(replicas: int, *, via_hpa: bool = False) -> ScaleTo:
    return ScaleTo("api", replicas, via_hpa, "test")


def edge(seconds: int | None) -> EdgeTimeout:
    return EdgeTimeout("api.example.com", "/", seconds, "test")


def reroute(target: RerouteTarget, *, apply: bool = True) -> Reroute:
    """Reroute to ``target`` (``apply=False``: undo it)."""
    return Reroute(target, apply, "t")


@pytest.mark.parametrize(
    ("action", "observation", "needed"),
    [
        pytest.param(scale(2), make_observation(replicas=2), False, id="replicas-equal"),
        pytest.param(scale(4), make_observation(replicas=2), True, id="replicas-differ"),
        pytest.param(
            scale(4, via_hpa=True),
            make_observation(replicas=5, hpa=Hpa("api", 4, 10)),
            False,
            id="hpa-min-equal-though-replicas-differ",
        ),
        pytest.param(
            scale(4, via_hpa=True),
            make_observation(replicas=4, hpa=Hpa("api", 2, 10)),
            True,
            id="hpa-min-differs-though-replicas-equal",
        ),
        pytest.param(scale(4, via_hpa=True), make_observation(replicas=4), True, id="hpa-gone"),
        pytest.param(
            reroute(SERVICE),
            make_observation(rerouted=[SERVICE]),
            False,
            id="reroute-already-applied",
        ),
        pytest.param(reroute(SERVICE), make_observation(), True, id="reroute-needed"),
        pytest.param(
            reroute(DNS),
            make_observation(rerouted=[SERVICE]),
            True,
            id="other-target-applied",
        ),
        pytest.param(
            reroute(SERVICE, apply=False),
            make_observation(),
            False,
            id="undo-nothing-to-undo",
        ),
        pytest.param(
            reroute(SERVICE, apply=False),
            make_observation(rerouted=[SERVICE]),
            True,
            id="undo-needed",
        ),
        pytest.param(
            edge(301),
            make_observation(edge=replace(ZONE, route_timeout_seconds=301)),
            False,
            id="edge-in-force",
        ),
        pytest.param(edge(301), make_observation(), True, id="edge-rule-missing"),
        pytest.param(edge(None), make_observation(), False, id="edge-no-rule-none-wanted"),
        pytest.param(
            edge(None),
            make_observation(edge=replace(ZONE, route_timeout_seconds=121)),
            True,
            id="edge-rule-to-remove",
        ),
        pytest.param(edge(301), make_observation(edge=None), True, id="edge-unknown"),
    ],
)
def test_is_needed(action: Action, observation: RouteObservation, needed: bool) -> None:
    assert diff.is_needed(action, observation) is needed


def test_changes_keeps_order_and_drops_no_ops() -> None:
    observation = make_observation(replicas=4, rerouted=[SERVICE])
    actions = (scale(6), reroute(SERVICE), edge(None), reroute(DNS))
    assert diff.changes(actions, observation) == (scale(6), reroute(DNS))


def test_edge_changes_wait_while_the_zone_is_unread_and_the_cluster_goes_on() -> None:
    """Right after a start, a DNS-only reroute in memory is not seen in force (the zone's
    records are not read yet): it is neither sent again nor undone; a scale goes out."""
    unread = replace(make_observation(replicas=2, edge=None), edge_unread=True)
    actions = (scale(4), reroute(DNS), reroute(DNS, apply=False), edge(301), reroute(SERVICE))
    assert diff.changes(actions, unread) == (scale(4), reroute(SERVICE))
    read = replace(unread, edge_unread=False)
    assert diff.changes(actions, read) == (scale(4), reroute(DNS), edge(301), reroute(SERVICE))


@pytest.mark.parametrize(
    ("observation", "memory"),
    [
        pytest.param(make_observation(50), Memory(), id="healthy"),
        pytest.param(
            make_observation(85, replicas=6, rerouted=[SERVICE], baseline=2),
            Memory(at_risk=True, rerouted_to=(SERVICE,)),
            id="rerouted-holding",
        ),
        pytest.param(
            make_observation(None, replicas=4, baseline=2), Memory(at_risk=True), id="no-data"
        ),
    ],
)
def test_steady_state_needs_nothing(observation: RouteObservation, memory: Memory) -> None:
    decision = ladder.decide(make_spec(), observation, memory, T0)
    assert diff.changes(decision.actions, observation) == ()
