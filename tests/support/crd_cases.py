"""Resources the CRDs must refuse, each with the message the API server gives: the table
``tests/integration/test_crds.py`` applies case by case, and the hostile-input reliability
tests reuse (with the valid objects it changes)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import yaml

from tests.support import kube
from tests.support.objects import API, manifest


def valid_budget() -> dict[str, Any]:
    return manifest(
        API,
        "TimeoutBudget",
        "bad",
        spec={
            "route": {"host": "api.example.com", "pathPrefix": "/export"},
            "budget": {"timeoutSeconds": 120, "atRiskRatio": 0.8, "recoverRatio": 0.6},
            "latency": {"metric": "http_request_duration_seconds", "selector": {"route": "x"}},
            "origin": {"deploymentName": "api", "minReplicas": 1, "maxReplicas": 5},
            "reroute": {"serviceName": "api", "longRunningSelector": {"pool": "long"}},
            "edge": {"zoneRef": {"name": "example-com"}},
        },
    )


def valid_zone() -> dict[str, Any]:
    spec = {"zoneId": "023e105f4ecef8ad9ca31a8372d0c353", "apiTokenSecretRef": {"name": "cf"}}
    return manifest(API, "CloudflareZone", "bad", spec=spec)


def with_change(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Set (or delete, for value=DELETE) ``path`` like "spec.budget.timeoutSeconds"."""
    body = copy.deepcopy(base)
    *parents, leaf = path.split(".")
    node = body
    for key in parents:
        node = node.setdefault(key, {})
    if value is DELETE:
        node.pop(leaf, None)
    else:
        node[leaf] = value
    return body


DELETE = object()
SHIFT = {"name": "api", "backend": {"name": "api-long", "port": 8080}}
"""A weighted reroute on HTTPRoute ``api`` (``spec.reroute.httpRoute``)."""

Case = tuple[str, dict[str, Any], str]


def refused(
    case_id: str,
    path: str,
    value: Any,
    says: str,
    base: Callable[[], dict[str, Any]] = valid_budget,
) -> Case:
    """A case: ``base()`` with ``path`` set to ``value`` (or removed), and what the user reads."""
    return case_id, with_change(base(), path, value), says


# (id, resource, text the user must read in kubectl's error)
BAD_RESOURCES: list[Case] = [
    refused(
        "hysteresis-inverted",
        "spec.budget.recoverRatio",
        0.9,
        "budget.recoverRatio must be lower than budget.atRiskRatio",
    ),
    refused(
        "min-above-max",
        "spec.origin.minReplicas",
        9,
        "origin.minReplicas must be less than or equal to origin.maxReplicas",
    ),
    refused(
        "timeout-above-6000",
        "spec.budget.timeoutSeconds",
        7000,
        "spec.budget.timeoutSeconds: Invalid value: 7000: spec.budget.timeoutSeconds in body "
        "should be less than or equal to 6000",
    ),
    refused(
        "timeout-zero", "spec.budget.timeoutSeconds", 0, "should be greater than or equal to 1"
    ),
    refused(
        "host-with-scheme",
        "spec.route.host",
        "https://api.example.com",
        "route.host must be a lowercase DNS hostname",
    ),
    refused(
        "host-wildcard",
        "spec.route.host",
        "*.example.com",
        "route.host must be a lowercase DNS hostname",
    ),
    refused(
        "path-without-slash",
        "spec.route.pathPrefix",
        "export",
        "route.pathPrefix must start with '/'",
    ),
    refused(
        "path-with-quote-injection",
        "spec.route.pathPrefix",
        '/x" or true or "',
        "route.pathPrefix must start with '/' and contain only URL path characters",
    ),
    refused(
        "path-with-broken-escape",
        "spec.route.pathPrefix",
        "/export%zz",
        "'%' only as an escape such as %20",
    ),
    refused(
        "methods-unknown", "spec.route.methods", ["GET", "TRACE"], 'Unsupported value: "TRACE"'
    ),
    refused("methods-empty", "spec.route.methods", [], "should have at least 1 items"),
    refused(
        "methods-twice",
        "spec.route.methods",
        ["POST", "GET", "POST"],
        "route.methods must not name a method twice",
    ),
    refused(
        "window-in-words",
        "spec.latency.window",
        "5 minutes",
        "latency.window must be a duration like 30s, 5m or 1h",
    ),
    refused(
        "quantile-above-one",
        "spec.latency.quantile",
        1.5,
        "spec.latency.quantile in body should be less than 1",
    ),
    refused(
        "metric-with-bucket-suffix",
        "spec.latency.metric",
        "http_request_duration_seconds_bucket",
        "latency.metric must be a Prometheus metric name",
    ),
    refused(
        "selector-reserved-label",
        "spec.latency.selector",
        {"__name__": "up"},
        "latency.selector keys must be Prometheus label names",
    ),
    refused(
        "no-metric-no-query",
        "spec.latency.metric",
        DELETE,
        "latency needs either metric (a histogram name) or query",
    ),
    refused(
        "metric-and-query",
        "spec.latency.query",
        "vector(1)",
        "latency.metric and latency.query are exclusive",
    ),
    refused(
        "reroute-without-target",
        "spec.reroute",
        {"afterEvaluations": 2},
        "reroute needs serviceName (with longRunningSelector), dnsOnlyHostname or httpRoute",
    ),
    refused(
        "shift-steps-go-down",
        "spec.reroute",
        {"httpRoute": {**SHIFT, "steps": [50, 25, 100]}},
        "reroute.httpRoute.steps must increase from one step to the next",
    ),
    refused(
        "shift-steps-stop-short",
        "spec.reroute",
        {"httpRoute": {**SHIFT, "steps": [25, 50]}},
        "reroute.httpRoute.steps must end at 100",
    ),
    refused(
        "shift-step-above-100",
        "spec.reroute",
        {"httpRoute": {**SHIFT, "steps": [50, 150]}},
        "should be less than or equal to 100",
    ),
    refused(
        "shift-backend-port-zero",
        "spec.reroute",
        {"httpRoute": {**SHIFT, "backend": {"name": "api-long", "port": 0}}},
        "should be greater than or equal to 1",
    ),
    refused(
        "shift-httproute-is-a-path",
        "spec.reroute",
        {"httpRoute": {**SHIFT, "name": "../../etc/passwd"}},
        "reroute.httpRoute.name must be a Kubernetes object name, the name of an HTTPRoute",
    ),
    refused(
        "shift-backend-uppercase",
        "spec.reroute",
        {"httpRoute": {**SHIFT, "backend": {"name": "Api-Long", "port": 8080}}},
        "reroute.httpRoute.backend.name must be a Service name",
    ),
    refused(
        "shift-rule-name-with-spaces",
        "spec.reroute",
        {"httpRoute": {**SHIFT, "ruleName": "Slow Path"}},
        "reroute.httpRoute.ruleName must be the name of a rule of the HTTPRoute",
    ),
    refused(
        "shift-and-sync-same-timeouts",
        "spec.chain",
        {"sync": {"httpRouteName": "api"}},
        "would both set the timeouts of the same HTTPRoute",
        base=lambda: with_change(
            valid_budget(), "spec.reroute", {"httpRoute": {**SHIFT, "setTimeouts": True}}
        ),
    ),
    refused(
        "required-above-timeout",
        "spec.budget.requiredSeconds",
        300,
        "budget.requiredSeconds cannot exceed budget.timeoutSeconds",
    ),
    refused(
        "matcher-bad-operator",
        "spec.latency.matchers",
        [{"label": "a", "operator": "==", "value": "b"}],
        'Unsupported value: "=="',
    ),
    refused(
        "missing-deployment",
        "spec.origin.deploymentName",
        DELETE,
        "spec.origin.deploymentName: Required value",
    ),
    refused(
        "negative-replicas",
        "spec.origin.minReplicas",
        -3,
        "spec.origin.minReplicas in body should be greater than or equal to 1",
    ),
    refused(
        "zone-id-is-domain",
        "spec.zoneId",
        "example.com",
        "zoneId must be the 32-character hexadecimal Cloudflare zone id",
        base=valid_zone,
    ),
    refused(
        "zone-timeout-above-6000",
        "spec.proxyReadTimeoutSeconds",
        6001,
        "should be less than or equal to 6000",
        base=valid_zone,
    ),
    refused(
        "chain-app-server-timeout-zero",
        "spec.chain",
        {"appServer": {"requestTimeoutSeconds": 0}},
        "should be greater than or equal to 1",
    ),
    refused(
        "chain-app-server-name-with-spaces",
        "spec.chain",
        {"appServer": {"name": "Gunicorn 21", "requestTimeoutSeconds": 30}},
        "chain.appServer.name must be a short lowercase name",
    ),
    refused(
        "chain-sync-names-nothing",
        "spec.chain",
        {"sync": {}},
        "chain.sync names what to keep in line: ingressName or httpRouteName",
    ),
    refused(
        "chain-sync-ingress-is-a-path",
        "spec.chain",
        {"sync": {"ingressName": "../../etc/passwd"}},
        "chain.sync.ingressName must be a Kubernetes object name",
    ),
    refused(
        "chain-sync-httproute-with-spaces",
        "spec.chain",
        {"sync": {"httpRouteName": "Api Route"}},
        "chain.sync.httpRouteName must be a Kubernetes object name",
    ),
    refused(
        "zone-raise-without-ceiling",
        "spec.raiseProxyReadTimeout",
        {"enabled": True},
        "spec.raiseProxyReadTimeout.ceilingSeconds: Required value",
        base=valid_zone,
    ),
    refused(
        "zone-raise-ceiling-above-6000",
        "spec.raiseProxyReadTimeout",
        {"enabled": True, "ceilingSeconds": 6001},
        "should be less than or equal to 6000",
        base=valid_zone,
    ),
    refused(
        "zone-without-secret",
        "spec.apiTokenSecretRef",
        DELETE,
        "spec.apiTokenSecretRef: Required value",
        base=valid_zone,
    ),
]


BAD_RESOURCES += [
    refused(
        "reroute-service-without-pool",
        "spec.reroute.longRunningSelector",
        DELETE,
        "reroute.serviceName and reroute.longRunningSelector go together",
    ),
    (
        "required-without-edge",
        with_change(
            with_change(valid_budget(), "spec.edge", DELETE), "spec.budget.requiredSeconds", 60
        ),
        "budget.requiredSeconds needs edge.zoneRef",
    ),
]

# Whole numbers for a ratio: the API server checks them against its minimum cast to a whole
# number (0.05 -> 0), so 0 passed `minimum: 0.05`, and 1 was refused as "should be less than
# or equal to 0"; the CRD states each ratio's range once more in CEL.
BAD_RESOURCES += [
    refused(
        "recover-ratio-zero",
        "spec.budget.recoverRatio",
        0,
        "spec.budget.recoverRatio: Invalid value: 0: budget.recoverRatio must be between 0.05 "
        "and 0.95 (a fraction of the budget)",
    ),
    refused(
        "recover-ratio-one",
        "spec.budget.recoverRatio",
        1,
        "budget.recoverRatio must be between 0.05 and 0.95",
    ),
    refused(
        "at-risk-ratio-zero",
        "spec.budget.atRiskRatio",
        0,
        "budget.atRiskRatio must be between 0.1 and 1 (a fraction of the budget)",
    ),
    refused(
        "agreement-fraction-zero",
        "spec.analytics.agreementFraction",
        0,
        "analytics.agreementFraction must be between 0.05 and 1 (a fraction of the budget)",
        valid_zone,
    ),
    refused(
        "near-fraction-zero",
        "spec.analytics.nearFraction",
        0,
        "analytics.nearFraction must be between 0.1 and 1 (a fraction of the budget)",
        valid_zone,
    ),
]

# Object names the operator could never find: refused like a Kubernetes object name.
NAME_FIELDS = [
    ("zone-ref", valid_budget, "spec.edge.zoneRef.name", "a CloudflareZone"),
    ("secret-ref", valid_zone, "spec.apiTokenSecretRef.name", "a Secret"),
]
HOSTILE_NAMES = [
    ("empty", ""),
    ("control-characters", "cf\x1b[2J\x07"),
    ("nul", "cf\x00"),
    ("trailing-newline", "cf\n"),
    ("path-traversal", "../../etc/passwd"),
    ("uppercase", "Example-Com"),
]


def name_cases() -> list[Case]:
    cases = []
    for field_id, base, path, what in NAME_FIELDS:
        field = path.removeprefix("spec.")
        says = f"{field} must be a Kubernetes object name, the name of {what} in the same namespace"
        cases += [refused(f"{field_id}-{i}", path, name, says, base) for i, name in HOSTILE_NAMES]
        too_long = f"{path}: Too long: may not be more than 253 bytes"
        cases.append(refused(f"{field_id}-5000-characters", path, "a" * 5000, too_long, base))
    return cases


BAD_RESOURCES += name_cases()

# Pod labels the Service patch would be refused with, at the moment of the reroute.
POOL = "spec.reroute.longRunningSelector"
BAD_LABEL_KEYS = [
    ("space", "long pool"),
    ("leading-dash", "-pool"),
    ("name-64-characters", "a" * 64),
    ("empty-name", "example.com/"),
    ("uppercase-prefix", "Example.com/pool"),
    ("prefix-254-characters", "p" * 254 + "/pool"),
    ("two-slashes", "a/b/c"),
    ("control-character", "pool\x1b"),
]
BAD_LABEL_VALUES = [
    ("space-and-bang", "long running!"),
    ("leading-dash", "-long"),
    ("trailing-newline", "long\n"),
    ("path", "../../etc/passwd"),
]
POOL_KEYS_SAY = "reroute.longRunningSelector keys must be Kubernetes label keys"
POOL_VALUES_SAY = "reroute.longRunningSelector values must be Kubernetes label values"
BAD_RESOURCES += [
    refused(f"pool-key-{i}", POOL, {key: "long"}, POOL_KEYS_SAY) for i, key in BAD_LABEL_KEYS
]
BAD_RESOURCES += [
    refused(f"pool-value-{i}", POOL, {"pool": value}, POOL_VALUES_SAY)
    for i, value in BAD_LABEL_VALUES
]
BAD_RESOURCES.append(
    refused(
        "pool-value-64-characters",
        POOL,
        {"pool": "a" * 64},
        f"{POOL}.pool: Too long: may not be more than 63 bytes",
    )
)


def numeric_bounds(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every numeric field of a CRD schema with its path, like "spec.budget.recoverRatio"."""
    if node.get("type") in ("integer", "number"):
        yield path, node
    for name, child in node.get("properties", {}).items():
        yield from numeric_bounds(child, f"{path}.{name}")


def just_beyond(node: dict[str, Any]) -> Iterator[tuple[str, float, str]]:
    """(which bound, a value just beyond it, what the API server says about it)."""
    low, high = node.get("minimum"), node.get("maximum")
    step = 1 if node["type"] == "integer" else 0.01
    if low is not None and node.get("exclusiveMinimum"):
        yield "at-exclusive-minimum", low, f"greater than {low}"
    elif low is not None:
        yield "below-minimum", low - step, f"greater than or equal to {low}"
    if high is not None and node.get("exclusiveMaximum"):
        yield "at-exclusive-maximum", high, f"less than {high}"
    elif high is not None:
        yield "above-maximum", high + step, f"less than or equal to {high}"


def out_of_bound_resources() -> list[Case]:
    """One resource per numeric bound of the CRDs, just beyond it: every bound the API
    server holds is tried there (and the operator's model has the same bounds:
    tests/unit/test_crd_model_agreement.py)."""
    cases = []
    for filename, base in (
        ("timeoutbudgets.timeoutbudget.io.yaml", valid_budget),
        ("cloudflarezones.timeoutbudget.io.yaml", valid_zone),
    ):
        crd = yaml.safe_load((kube.CRDS / filename).read_text())
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        for path, node in numeric_bounds(schema, "spec"):
            for bound, value, says in just_beyond(node):
                case_id = f"{path.removeprefix('spec.')}-{bound}"
                cases.append(
                    refused(case_id, path, value, f"{path} in body should be {says}", base)
                )
    return cases


BAD_RESOURCES += out_of_bound_resources()
