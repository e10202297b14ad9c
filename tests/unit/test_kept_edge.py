"""A restart (or a shard taken over) keeps each route's edge as its status shows it until
this process has read the route's zone: no ``ZoneNotReady`` and back, no write for it.

The engine runs on the in-memory world with the real ``ZoneRegistry`` as its edge; the
zone is never read here (nothing listens at the registry's address), which is exactly the
moment after a start."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from tests.support.engine_world import NS, EdgeWorld, World, engine_for, spec_of
from timeout_budget.cycle import CycleReport, Engine
from timeout_budget.cycle.snapshot import RouteSnapshot
from timeout_budget.decide import status
from timeout_budget.edge import ZoneRegistry
from timeout_budget.edge.route_sync import FIRST_READ_GRACE_SECONDS
from timeout_budget.edge.zone import Problem
from timeout_budget.model.conditions import ConditionStatus
from timeout_budget.model.spec import parse_timeout_budget, route_key

pytestmark = pytest.mark.unit

SYNCED = {
    "type": "EdgeSynced",
    "status": "True",
    "reason": "Synced",
    "message": "no Cache Rule of its own: the zone's 120s applies",
    "lastTransitionTime": "2027-01-15T08:00:00Z",
    "observedGeneration": 1,
}
EDGE_ERRORS = {
    "type": "EdgeErrors",
    "status": "False",
    "reason": "No524s",
    "message": "no 524 at the edge in 5m (40 requests, 0 5xx)",
    "lastTransitionTime": "2027-01-15T08:00:00Z",
    "observedGeneration": 1,
}
EDGE = {"windowStart": "2027-01-15T07:55:00Z", "windowEnd": "2027-01-15T08:00:00Z"}
COVERAGE = [{"methods": ["GET", "HEAD"], "by": "ZoneTimeout", "timeoutSeconds": 120}]


def previous(synced: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    conditions = [
        {"type": "Ready", "status": "True", "reason": "Healthy", "observedGeneration": 1},
        synced or SYNCED,
        EDGE_ERRORS,
    ]
    return {
        "conditions": conditions,
        "edge": EDGE,
        "edgeTimeoutSeconds": 120,
        "edgeCoverage": COVERAGE,
        **extra,
    }


# -- the pure part ------------------------------------------------------------------------


def test_the_edge_conditions_and_view_of_a_read_zone_are_kept() -> None:
    kept = status.kept_edge(previous(), generation=1)
    assert kept is not None
    assert [(c.type, c.status, c.reason, c.message) for c in kept.conditions] == [
        ("EdgeSynced", ConditionStatus.TRUE, "Synced", SYNCED["message"]),
        ("EdgeErrors", ConditionStatus.FALSE, "No524s", EDGE_ERRORS["message"]),
    ]
    assert kept.fields == {"edge": EDGE, "edgeTimeoutSeconds": 120, "edgeCoverage": COVERAGE}


@pytest.mark.parametrize(
    ("prior", "generation", "why"),
    [
        (previous(), 2, "the spec changed since: edge.zoneRef may name another zone"),
        (previous({**SYNCED, "reason": "Pending", "status": "Unknown"}), 1, "never synced"),
        (previous({**SYNCED, "reason": "ZoneNotReady", "status": "False"}), 1, "not read then"),
        (previous({**SYNCED, "status": "Maybe"}), 1, "not a status the operator writes"),
        ({"conditions": [EDGE_ERRORS]}, 1, "no EdgeSynced at all"),
        (None, 1, "a new route"),
    ],
)
def test_nothing_is_kept_without_an_edge_synced_from_a_read_zone(
    prior: dict[str, Any] | None, generation: int, why: str
) -> None:
    assert status.kept_edge(prior, generation) is None, why


# -- the registry's side ------------------------------------------------------------------

EDGE_SPEC = {**spec_of("api"), "edge": {"zoneRef": {"name": "zone"}}}


def restarted(world: EdgeWorld) -> tuple[Engine, ZoneRegistry]:
    """A new process: a new engine and a registry that has read no zone."""
    engine = engine_for(world)
    registry = ZoneRegistry(base_url="http://127.0.0.1:9", clock=lambda: world.now)
    engine.edge = registry
    return engine, registry


def cycle(engine: Engine, world: World) -> CycleReport:
    world.now += 15
    return asyncio.run(engine.evaluate(world.snapshots()))


def edge_synced(world: World) -> dict[str, Any]:
    found = [c for c in world.status["api"]["conditions"] if c["type"] == "EdgeSynced"]
    assert len(found) == 1
    return found[0]


def synced_world() -> EdgeWorld:
    """A route whose status an earlier process wrote once its zone was read."""
    world = EdgeWorld(["api"])
    engine, _ = restarted(world)
    cycle(engine, world)
    written = world.status["api"]
    written["conditions"] = [
        c for c in written["conditions"] if c["type"] not in ("EdgeSynced", "EdgeErrors")
    ] + [copy.deepcopy(SYNCED), copy.deepcopy(EDGE_ERRORS)]
    written.update(edge=dict(EDGE), edgeTimeoutSeconds=120, edgeCoverage=copy.deepcopy(COVERAGE))
    return world


def test_after_a_restart_the_edge_is_kept_until_the_zone_is_read() -> None:
    world = synced_world()
    before = copy.deepcopy(world.status["api"])
    engine, registry = restarted(world)

    report = cycle(engine, world)

    assert report.status_patches == 0
    assert world.status["api"] == before
    assert registry.unread(NS, route_key(NS, "api"), parse_timeout_budget(EDGE_SPEC))


def test_a_zone_still_unread_after_the_grace_is_said_to_be_not_ready() -> None:
    world = synced_world()
    engine, _ = restarted(world)
    cycle(engine, world)
    world.now += FIRST_READ_GRACE_SECONDS

    report = cycle(engine, world)

    assert report.status_patches == 1
    found = edge_synced(world)
    assert (found["status"], found["reason"]) == ("False", "ZoneNotReady")
    assert "not read from Cloudflare yet" in found["message"]


def test_a_zone_with_a_known_problem_is_said_to_be_not_ready_at_once() -> None:
    world = synced_world()
    engine, registry = restarted(world)
    registry._zones.problems[(NS, "zone")] = Problem("SecretNotFound", "Secret shop/cf gone")

    cycle(engine, world)

    found = edge_synced(world)
    assert (found["reason"], found["message"]) == (
        "ZoneNotReady",
        "CloudflareZone shop/zone: Secret shop/cf gone",
    )


def test_a_changed_spec_does_not_keep_the_edge_of_the_spec_before() -> None:
    world = synced_world()
    world.generation["api"] = 2
    engine, _ = restarted(world)

    cycle(engine, world)

    assert edge_synced(world)["reason"] == "ZoneNotReady"
    assert not {"edge", "edgeTimeoutSeconds", "edgeCoverage"} & world.status["api"].keys()


def test_a_required_read_timeout_waits_for_the_zone_without_a_warning() -> None:
    """A route that asks for a read timeout at the edge (``budget.requiredSeconds``) is not
    refused it while its zone's first read is pending; it is once the grace is over."""
    world = synced_world()
    events: list[tuple[str, str]] = []

    async def record(_ref: Any, kind: str, reason: str, _message: str) -> None:
        events.append((kind, reason))

    def with_required(snaps: list[RouteSnapshot]) -> list[RouteSnapshot]:
        for snap in snaps:
            snap.spec["budget"] = {"timeoutSeconds": 400, "requiredSeconds": 300}  # type: ignore[index]
        return snaps

    plain = world.snapshots
    world.snapshots = lambda: with_required(plain())  # type: ignore[method-assign]
    engine, _ = restarted(world)
    engine.post_event = record

    cycle(engine, world)
    assert events == []
    assert "Cannot allow" not in world.status["api"]["message"]

    world.now += FIRST_READ_GRACE_SECONDS
    cycle(engine, world)
    assert ("Warning", "Refused") in events


def test_a_change_of_words_alone_waits_for_the_zones_read() -> None:
    """Right after a start the ladder knows less of the edge than the status says (an
    at-risk route's message loses its "edge read timeout held at 121s"): the words wait
    for the zone's read, anything a decision takes from the status does not."""
    world = synced_world()
    world.status["api"]["message"] += " Edge read timeout held at 121s."
    before = copy.deepcopy(world.status["api"])
    engine, _ = restarted(world)

    report = cycle(engine, world)
    assert (report.status_patches, report.readings_held) == (0, 1)
    assert world.status["api"] == before

    world.p95[route_key(NS, "api")] = 110.0  # over the at-risk line: scaled and written
    report = cycle(engine, world)
    assert report.status_patches == 1
    assert world.status["api"]["state"] == "AtRisk"
