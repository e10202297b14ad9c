"""The label sweep's JSON patch (``label_sweep.sweep_patch``): it files a route under its
spec's shard and adds kopf's finalizer, only while the route is at the listed
``resourceVersion``; and its setting. The patches run against the real API server in
tests/integration/test_label_sweep.py."""

from __future__ import annotations

import asyncio
from typing import Any

import jsonpatch
import pytest

from timeout_budget import app
from timeout_budget.label_sweep import label_path, sweep_patch
from timeout_budget.model.errors import SettingsError
from timeout_budget.model.shards import ROUTE_SHARD_LABEL, route_shard_label
from timeout_budget.route_watch import KOPF_FINALIZER
from timeout_budget.settings import OperatorSettings

pytestmark = pytest.mark.unit

SHARDS = 4


def route(zone: str | None = None, **meta: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"route": {"host": "api.example.com"}}
    if zone:
        spec["edge"] = {"zoneRef": {"name": zone}}
    return {
        "metadata": {"name": "r", "namespace": "team-a", "resourceVersion": "41", **meta},
        "spec": spec,
    }


def test_an_unlabeled_route_gets_its_shard_and_kopfs_finalizer_at_the_listed_version() -> None:
    body = route(zone="z")
    ops = sweep_patch(body, SHARDS)
    assert ops is not None
    assert ops[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "41"}
    patched = jsonpatch.apply_patch(body, ops)
    want = route_shard_label("team-a", body["spec"], SHARDS)
    assert patched["metadata"]["labels"] == {ROUTE_SHARD_LABEL: want}
    assert patched["metadata"]["finalizers"] == [KOPF_FINALIZER]


def test_the_zone_decides_the_shard_else_the_namespace() -> None:
    for body in (route(zone="z"), route()):
        ops = sweep_patch(body, SHARDS)
        assert ops is not None
        patched = jsonpatch.apply_patch(body, ops)
        assert patched["metadata"]["labels"][ROUTE_SHARD_LABEL] == route_shard_label(
            "team-a", body["spec"], SHARDS
        )


def test_other_labels_and_finalizers_are_kept_and_a_label_of_another_count_replaced() -> None:
    body = route(labels={"team": "a", ROUTE_SHARD_LABEL: "7"}, finalizers=["example.com/keep"])
    ops = sweep_patch(body, SHARDS)
    assert ops is not None
    patched = jsonpatch.apply_patch(body, ops)
    want = route_shard_label("team-a", body["spec"], SHARDS)
    assert patched["metadata"]["labels"] == {"team": "a", ROUTE_SHARD_LABEL: want}
    assert patched["metadata"]["finalizers"] == ["example.com/keep", KOPF_FINALIZER]


def test_a_route_changed_since_listed_is_not_patched() -> None:
    body = route()
    ops = sweep_patch(body, SHARDS)
    assert ops is not None
    body["metadata"]["resourceVersion"] = "42"  # labeled by another replica, or edited
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        jsonpatch.apply_patch(body, ops)


def test_routes_being_deleted_and_routes_already_filed_are_left_alone() -> None:
    assert sweep_patch(route(deletionTimestamp="2026-12-07T10:00:00Z"), SHARDS) is None
    body = route()
    want = route_shard_label("team-a", body["spec"], SHARDS)
    body["metadata"]["labels"] = {ROUTE_SHARD_LABEL: want}
    body["metadata"]["finalizers"] = [KOPF_FINALIZER]
    assert sweep_patch(body, SHARDS) is None
    body["metadata"]["finalizers"] = []  # filed, but kopf's finalizer missing
    ops = sweep_patch(body, SHARDS)
    assert ops is not None
    assert jsonpatch.apply_patch(body, ops)["metadata"]["finalizers"] == [KOPF_FINALIZER]


def test_the_label_key_is_escaped_as_a_json_pointer() -> None:
    assert label_path() == "/metadata/labels/timeoutbudget.io~1shard"


ENV = {"TBO_PROMETHEUS_URL": "http://prometheus:9090"}


@pytest.mark.parametrize(("raw", "seconds"), [(None, 90.0), ("0", 0.0), ("600", 600.0)])
def test_the_setting(raw: str | None, seconds: float) -> None:
    env = ENV if raw is None else {**ENV, "TBO_LABEL_SWEEP_SECONDS": raw}
    assert OperatorSettings.from_env(env).label_sweep_seconds == seconds


@pytest.mark.parametrize("raw", ["-1", "3601", "nan", "soon"])
def test_the_setting_refused(raw: str) -> None:
    with pytest.raises(SettingsError, match="TBO_LABEL_SWEEP_SECONDS"):
        OperatorSettings.from_env({**ENV, "TBO_LABEL_SWEEP_SECONDS": raw})


@pytest.mark.parametrize("env", [ENV, {**ENV, "TBO_SHARDS": "4", "TBO_LABEL_SWEEP_SECONDS": "0"}])
def test_no_sweep_unsharded_or_when_off(env: dict[str, str]) -> None:
    class NoKube:
        def __getattr__(self, name: str) -> object:
            raise AssertionError(f"the sweep called the API ({name})")

    asyncio.run(app.sweep_labels(OperatorSettings.from_env(env), NoKube()))  # type: ignore[arg-type]
