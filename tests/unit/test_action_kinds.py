"""Every action kind is registered everywhere it must be (``actions.kinds``), so adding an
action is one value class, one module and one registry line, and forgetting one fails here."""

from __future__ import annotations

import asyncio
import typing

import pytest

from tests.support.ladder import DNS, SERVICE
from timeout_budget.actions import kinds
from timeout_budget.model.actions import (
    Action,
    ActionKind,
    EdgeTimeout,
    HopTimeout,
    Refusal,
    Reroute,
    RuleTimeout,
    ScaleTo,
)

pytestmark = pytest.mark.unit

SAMPLES: list[Action] = [
    ScaleTo("api", 3, via_hpa=False, reason="test"),
    ScaleTo("api", 3, via_hpa=True, reason="test"),
    Reroute(SERVICE, apply=True, reason="test"),
    Reroute(SERVICE, apply=False, reason="test"),
    Reroute(DNS, apply=True, reason="t"),
    HopTimeout("api", 121, reason="test"),
    HopTimeout("api", None, reason="test"),
    RuleTimeout("api", "slow", 121, reason="test"),
    RuleTimeout("api", "slow", None, reason="test"),
    EdgeTimeout("api.example.com", "/export", 301, reason="test"),
    EdgeTimeout("api.example.com", "/export", None, reason="test"),
]


def test_every_action_type_is_registered_once() -> None:
    types = typing.get_args(Action)
    assert sorted(t.__name__ for t in types) == sorted(k.action.__name__ for k in kinds.KINDS)
    assert {type(s) for s in SAMPLES} == set(types)  # the samples cover every type


@pytest.mark.parametrize("action", SAMPLES, ids=lambda a: a.describe())
def test_each_action_declares_what_the_steps_need(action: Action) -> None:
    kind = kinds.kind_of(action)
    assert action.kind in ActionKind
    assert action.event_reason.isidentifier()  # an Event reason is CamelCase, no spaces
    assert action.metric_label.removeprefix("undo_") == action.kind.value
    if action.at_edge:
        return  # made by EdgeSync's batched write, undone by its finalize_route
    assert kind.execute is not None, f"{action.describe()} has no executor"
    assert kind.restore is not None, f"{action.describe()} has no restore for the finalizer"


def test_every_kind_has_an_action_and_refusals_carry_one() -> None:
    assert {a.kind for a in SAMPLES} == set(ActionKind)
    refused = Refusal(ActionKind.SCALE, "scale Deployment api", "at max replicas")
    assert refused.describe() == "cannot scale Deployment api: at max replicas"


def test_an_edge_action_is_refused_by_the_cluster_executor() -> None:
    edge = SAMPLES[-1]
    with pytest.raises(ValueError, match="made at the edge"):
        asyncio.run(kinds.execute(None, edge))  # type: ignore[arg-type]
