"""The typed spec models apply the CRD's defaults and refuse what the CRD refuses."""

from __future__ import annotations

import copy
from typing import Any

import pydantic
import pytest
import yaml
from pydantic import BaseModel

from tests.support.kube import SAMPLES
from timeout_budget.model import spec, spec_chain, spec_reroute
from timeout_budget.model.rules import Check

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
        (("latency",), {"quantile": 0.9}, "latency needs either metric"),
        (("budget",), {"timeoutSeconds": 6001}, "less than or equal to 6000"),
        (("route",), {"host": "api.example.com", "pathPrefix": "/x%zz"}, "only as an escape"),
        (("route",), {"host": "api.example.com", "pathPrefix": "/x%4"}, "only as an escape"),
    ],
)
def test_invalid_specs_are_refused(path: tuple[str, ...], value: Any, message: str) -> None:
    body = minimal()
    body[path[0]] = value
    with pytest.raises(pydantic.ValidationError, match=message):
        spec.parse_timeout_budget(body)


def test_a_percent_escaped_prefix_is_accepted() -> None:
    body = minimal()
    body["route"] = {"host": "api.example.com", "pathPrefix": "/caf%C3%A9/50%25"}
    assert spec.parse_timeout_budget(body).route.path_prefix == "/caf%C3%A9/50%25"


def minimal_zone() -> dict[str, Any]:
    return {"zoneId": "023e105f4ecef8ad9ca31a8372d0c353", "apiTokenSecretRef": {"name": "cf"}}


def changed(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``body`` with ``path`` (like "edge.zoneRef.name") set to ``value``."""
    out = copy.deepcopy(body)
    *parents, leaf = path.split(".")
    node = out
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return out


def refusal(parse: Any, body: dict[str, Any]) -> str:
    """The messages the model refuses ``body`` with (it must refuse it)."""
    with pytest.raises(pydantic.ValidationError) as refused:
        parse(body)
    return "; ".join(e["msg"] for e in refused.value.errors())


NAME_FIELDS = [
    pytest.param(spec.parse_timeout_budget, minimal(), "edge.zoneRef.name", id="zoneRef"),
    pytest.param(spec.parse_timeout_budget, minimal(), "origin.deploymentName", id="deployment"),
    pytest.param(spec.parse_cloudflare_zone, minimal_zone(), "apiTokenSecretRef.name", id="secret"),
]
BAD_NAMES = ["", "cf\x00", "cf\n", "\x1b[2Jcf", "../../etc/passwd", "Upper", "-cf", "cf-", "a..b"]


@pytest.mark.parametrize(("parse", "body", "path"), NAME_FIELDS)
@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_object_names_the_api_server_would_refuse_are_refused(
    parse: Any, body: dict[str, Any], path: str, name: str
) -> None:
    message = refusal(parse, changed(body, path, name))
    assert f"{path} must be a Kubernetes object name" in message


@pytest.mark.parametrize(("parse", "body", "path"), NAME_FIELDS)
def test_an_object_name_is_at_most_253_characters(
    parse: Any, body: dict[str, Any], path: str
) -> None:
    assert "at most 253 characters" in refusal(parse, changed(body, path, "a" * 5000))
    for name in ("a" * 253, "example-com", "a.b-c.d", "0"):
        parse(changed(body, path, name))


def with_pool(labels: dict[str, str]) -> dict[str, Any]:
    return changed(minimal(), "reroute", {"serviceName": "api", "longRunningSelector": labels})


@pytest.mark.parametrize(
    "key",
    ["", "long running", "-pool", "pool-", "a" * 64, "example.com/", "/pool", "a/b/c",
     "Example.com/pool", "example..com/pool", "p" * 254 + "/pool", "pööl", "pool\n"],
    ids=repr,
)  # fmt: skip
def test_label_keys_kubernetes_refuses_are_refused(key: str) -> None:
    message = refusal(spec.parse_timeout_budget, with_pool({key: "long"}))
    assert "reroute.longRunningSelector keys must be Kubernetes label keys" in message


@pytest.mark.parametrize(
    "value", ["long running!", "-long", "long-", "a" * 64, "long\n", "lång", "a/b"], ids=repr
)
def test_label_values_kubernetes_refuses_are_refused(value: str) -> None:
    message = refusal(spec.parse_timeout_budget, with_pool({"pool": value}))
    assert "reroute.longRunningSelector values must be Kubernetes label values" in message or (
        "at most 63 characters" in message
    )


def test_label_keys_and_values_kubernetes_accepts_are_accepted() -> None:
    labels = {
        "pool": "long-running",
        "app.kubernetes.io/name": "api_v2.1",
        "a" * 63: "b" * 63,
        "p" * 253 + "/x": "",
        "Pool_2.x": "X",
    }
    parsed = spec.parse_timeout_budget(with_pool(labels))
    assert parsed.reroute is not None
    assert parsed.reroute.long_running_selector == labels


SHIFT = {"name": "api", "backend": {"name": "api-long", "port": 8080}}
"""A weighted reroute on HTTPRoute ``api`` (``reroute.httpRoute``), all else defaulted."""


def test_a_weighted_reroute_takes_its_defaults() -> None:
    parsed = spec.parse_timeout_budget(changed(minimal(), "reroute", {"httpRoute": SHIFT}))
    assert parsed.reroute is not None
    assert parsed.reroute.http_route is not None
    shift = parsed.reroute.http_route
    assert (shift.steps, shift.hold_seconds, shift.set_timeouts) == ([25, 50, 100], 60, False)
    assert (shift.backend.name, shift.backend.port, shift.rule_name) == ("api-long", 8080, None)


CHECK_COUNTER_EXAMPLES: dict[str, tuple[Any, dict[str, Any]]] = {
    "budget.recoverRatio must be lower than budget.atRiskRatio (hysteresis, e.g. 0.6 and 0.8)": (
        spec.parse_timeout_budget,
        changed(minimal(), "budget", {"atRiskRatio": 0.5, "recoverRatio": 0.5}),
    ),
    "budget.requiredSeconds cannot exceed budget.timeoutSeconds; raise timeoutSeconds (at most "
    "6000) or leave it unset": (
        spec.parse_timeout_budget,
        changed(minimal(), "budget", {"timeoutSeconds": 100, "requiredSeconds": 300}),
    ),
    "latency needs either metric (a histogram name) or query (a full PromQL override)": (
        spec.parse_timeout_budget,
        changed(minimal(), "latency", {"window": "5m"}),
    ),
    "latency.metric and latency.query are exclusive; set one": (
        spec.parse_timeout_budget,
        changed(minimal(), "latency.query", "vector(1)"),
    ),
    "origin.minReplicas must be less than or equal to origin.maxReplicas": (
        spec.parse_timeout_budget,
        changed(minimal(), "origin.minReplicas", 11),
    ),
    "reroute needs serviceName (with longRunningSelector), dnsOnlyHostname or httpRoute": (
        spec.parse_timeout_budget,
        changed(minimal(), "reroute", {"afterEvaluations": 2}),
    ),
    "reroute.httpRoute.steps must increase from one step to the next": (
        spec.parse_timeout_budget,
        changed(minimal(), "reroute", {"httpRoute": {**SHIFT, "steps": [50, 25, 100]}}),
    ),
    "reroute.httpRoute.steps must end at 100 (the whole rule on the long-running backend)": (
        spec.parse_timeout_budget,
        changed(minimal(), "reroute", {"httpRoute": {**SHIFT, "steps": [25, 50]}}),
    ),
    "reroute.httpRoute.setTimeouts and chain.sync.httpRouteName would both set the timeouts "
    "of the same HTTPRoute: keep one of them": (
        spec.parse_timeout_budget,
        changed(
            changed(minimal(), "reroute", {"httpRoute": {**SHIFT, "setTimeouts": True}}),
            "chain",
            {"sync": {"httpRouteName": "api"}},
        ),
    ),
    "chain.sync names what to keep in line: ingressName or httpRouteName": (
        spec.parse_timeout_budget,
        changed(minimal(), "chain", {"sync": {}}),
    ),
    "reroute.serviceName and reroute.longRunningSelector go together": (
        spec.parse_timeout_budget,
        changed(minimal(), "reroute", {"serviceName": "api"}),
    ),
    "route.methods must not name a method twice": (
        spec.parse_timeout_budget,
        changed(minimal(), "route.methods", ["GET", "POST", "GET"]),
    ),
    "budget.requiredSeconds needs edge.zoneRef, since the edge read timeout is what allows a "
    "long route": (
        spec.parse_timeout_budget,
        changed(minimal(), "budget", {"requiredSeconds": 300}),
    ),
}
"""One body per rule across fields (``rules.Check``), which the model must refuse with the
rule's message and nothing else (the CRD refuses the same at the API server:
tests/integration/test_crds.py)."""


FIELD_CHECK_EXAMPLES: dict[str, tuple[str, list[float], list[float]]] = {
    "budget.atRiskRatio must be between 0.1 and 1 (a fraction of the budget)": (
        "budget.atRiskRatio",
        [0, 0.09, 1.01, 2],
        [0.1, 0.8, 1],
    ),
    "budget.recoverRatio must be between 0.05 and 0.95 (a fraction of the budget)": (
        "budget.recoverRatio",
        [0, 0.04, 0.96, 1],
        [0.05, 0.6, 0.95],
    ),
    "analytics.agreementFraction must be between 0.05 and 1 (a fraction of the budget)": (
        "analytics.agreementFraction",
        [0, 0.04, 1.01, 2],
        [0.05, 0.25, 1],
    ),
    "analytics.nearFraction must be between 0.1 and 1 (a fraction of the budget)": (
        "analytics.nearFraction",
        [0, 0.09, 1.01],
        [0.1, 0.8, 1],
    ),
}
"""Per rule on one field (``rules.Check`` in ``Annotated``): the field, values it refuses,
values it accepts. The model's own bounds on the field refuse first, with their message."""


def all_checks() -> dict[str, Check[Any]]:
    """Every ``rules.Check`` of the spec models, on objects and on fields, by message."""
    namespaces = (*vars(spec).values(), *vars(spec_chain).values(), *vars(spec_reroute).values())
    models = {m for m in namespaces if isinstance(m, type) and issubclass(m, BaseModel)}
    found: dict[str, Check[Any]] = {}
    for model in models:
        on_fields = [c for f in model.model_fields.values() for c in f.metadata]
        for check in [*getattr(model, "checks", ()), *on_fields]:
            if isinstance(check, Check):
                found[check.message] = check
    return found


def test_every_check_has_a_counter_example() -> None:
    assert set(all_checks()) == set(CHECK_COUNTER_EXAMPLES) | set(FIELD_CHECK_EXAMPLES)


@pytest.mark.parametrize(("message", "example"), FIELD_CHECK_EXAMPLES.items())
def test_a_rule_on_a_field_refuses_its_counter_examples(
    message: str, example: tuple[str, list[float], list[float]]
) -> None:
    path, bad, good = example
    check = all_checks()[message]
    assert [v for v in bad if check.holds(v)] == []
    assert [v for v in good if not check.holds(v)] == []
    zone = path.startswith("analytics.")
    parse = spec.parse_cloudflare_zone if zone else spec.parse_timeout_budget
    for value in bad:
        refusal(parse, changed(minimal_zone() if zone else minimal(), path, value))


@pytest.mark.parametrize(("message", "example"), CHECK_COUNTER_EXAMPLES.items())
def test_a_rule_across_fields_refuses_its_counter_example(
    message: str, example: tuple[Any, dict[str, Any]]
) -> None:
    parse, body = example
    assert refusal(parse, body) == message


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
