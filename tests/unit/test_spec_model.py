"""The typed spec models apply the CRD's defaults and refuse what the CRD refuses."""

from __future__ import annotations

import copy
from typing import Any

import pydantic
import pytest
import yaml

from tests.support.kube import SAMPLES
from timeout_budget.model import spec

pytestmark = pytest.mark.unit


def minimal() -> dict[str, Any]:
    return {
        "route": {"host": "api.example.com"},
        "latency": {"metric": "http_request_duration_seconds"},
        "origin": {"deploymentName": "api"},
    }


def test_defaults_match_the_crd() -> None:
    parsed = spec.parse_timeout_budget(minimal())
    assert parsed.route.path_prefix == "/"
    assert parsed.budget.at_risk_ratio == 0.8
    assert parsed.budget.recover_ratio == 0.6
    assert parsed.latency.quantile == 0.95
    assert parsed.latency.window == "5m"
    assert parsed.origin.min_replicas == 1
    assert parsed.origin.max_replicas == 10
    assert not parsed.paused
    assert not parsed.dry_run


@pytest.mark.parametrize(
    ("zone_timeout", "spec_timeout", "expected"),
    [(None, None, 120), (300, None, 300), (300, 90, 90), (None, 600, 600)],
)
def test_budget_in_force(zone_timeout: int | None, spec_timeout: int | None, expected: int) -> None:
    body = minimal()
    if spec_timeout is not None:
        body["budget"] = {"timeoutSeconds": spec_timeout}
    assert spec.parse_timeout_budget(body).budget_seconds(zone_timeout) == expected


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("budget",), {"atRiskRatio": 0.5, "recoverRatio": 0.7}, "recoverRatio must be lower"),
        (("origin",), {"deploymentName": "a", "minReplicas": 5, "maxReplicas": 2}, "minReplicas"),
        (("latency",), {"quantile": 0.9}, "exactly one of metric or query"),
        (("budget",), {"timeoutSeconds": 6001}, "less than or equal to 6000"),
    ],
)
def test_invalid_specs_are_refused(path: tuple[str, ...], value: Any, message: str) -> None:
    body = minimal()
    body[path[0]] = value
    with pytest.raises(pydantic.ValidationError, match=message):
        spec.parse_timeout_budget(body)


def test_every_sample_parses() -> None:
    kinds = set()
    for path in SAMPLES.glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc["kind"] == "TimeoutBudget":
                spec.parse_timeout_budget(doc["spec"])
            elif doc["kind"] == "CloudflareZone":
                spec.parse_cloudflare_zone(doc["spec"])
            kinds.add(doc["kind"])
    assert {"TimeoutBudget", "CloudflareZone"} <= kinds


def test_parsed_specs_share_their_fields_sets_and_stay_independent() -> None:
    """Equal fields-sets are shared between parsed specs (memory at 10,000 routes); what
    pydantic derives from them is unchanged, and a copy with an update changes only the
    copy."""
    body = {
        "route": {"host": "api.example.com"},
        "latency": {
            "metric": "m",
            "matchers": [{"label": "code", "operator": "!=", "value": "500"}],
        },
        "origin": {"deploymentName": "api"},
        "edge": {"zoneRef": {"name": "z"}},
    }
    a = spec.parse_timeout_budget(copy.deepcopy(body))
    b = spec.parse_timeout_budget(copy.deepcopy(body))
    assert a.__pydantic_fields_set__ is b.__pydantic_fields_set__
    assert a.origin.__pydantic_fields_set__ is b.origin.__pydantic_fields_set__
    assert (
        a.latency.matchers[0].__pydantic_fields_set__
        is b.latency.matchers[0].__pydantic_fields_set__
    )
    assert a.edge is not None
    assert b.edge is not None
    assert a.edge.zone_ref.__pydantic_fields_set__ is b.edge.zone_ref.__pydantic_fields_set__
    unshared = spec.TimeoutBudgetSpec.model_validate(copy.deepcopy(body))
    dumped = a.model_dump(exclude_unset=True, by_alias=True)
    assert dumped == unshared.model_dump(exclude_unset=True, by_alias=True)
    assert "budget" not in dumped  # defaults are still told apart from what was set
    dry = a.model_copy(update={"dry_run": True})
    assert dry.dry_run
    assert "dry_run" in dry.model_fields_set
    assert "dry_run" not in a.model_fields_set
    assert "dry_run" not in b.model_fields_set
    assert a == b
