"""Resources the CRDs must refuse, each with the message the API server gives: the table
``tests/integration/test_crds.py`` applies case by case, and the hostile-input reliability
tests reuse (with the valid objects it changes)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import yaml

from tests.support import kube

API = "timeoutbudget.io/v1alpha1"


def valid_budget() -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "TimeoutBudget",
        "metadata": {"name": "bad"},
        "spec": {
            "route": {"host": "api.example.com", "pathPrefix": "/export"},
            "budget": {"timeoutSeconds": 120, "atRiskRatio": 0.8, "recoverRatio": 0.6},
            "latency": {"metric": "http_request_duration_seconds", "selector": {"route": "x"}},
            "origin": {"deploymentName": "api", "minReplicas": 1, "maxReplicas": 5},
            "reroute": {"serviceName": "api", "longRunningSelector": {"pool": "long"}},
            "edge": {"zoneRef": {"name": "example-com"}},
        },
    }


def valid_zone() -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "CloudflareZone",
        "metadata": {"name": "bad"},
        "spec": {
            "zoneId": "023e105f4ecef8ad9ca31a8372d0c353",
            "apiTokenSecretRef": {"name": "cf"},
        },
    }


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

# (id, resource, text the user must read in kubectl's error)
BAD_RESOURCES: list[tuple[str, dict[str, Any], str]] = [
    (
        "hysteresis-inverted",
        with_change(valid_budget(), "spec.budget.recoverRatio", 0.9),
        "budget.recoverRatio must be lower than budget.atRiskRatio",
    ),
    (
        "min-above-max",
        with_change(valid_budget(), "spec.origin.minReplicas", 9),
        "origin.minReplicas must be less than or equal to origin.maxReplicas",
    ),
    (
        "timeout-above-6000",
        with_change(valid_budget(), "spec.budget.timeoutSeconds", 7000),
        "spec.budget.timeoutSeconds: Invalid value: 7000: spec.budget.timeoutSeconds in body "
        "should be less than or equal to 6000",
    ),
    (
        "timeout-zero",
        with_change(valid_budget(), "spec.budget.timeoutSeconds", 0),
        "should be greater than or equal to 1",
    ),
    (
        "host-with-scheme",
        with_change(valid_budget(), "spec.route.host", "https://api.example.com"),
        "route.host must be a lowercase DNS hostname",
    ),
    (
        "host-wildcard",
        with_change(valid_budget(), "spec.route.host", "*.example.com"),
        "route.host must be a lowercase DNS hostname",
    ),
    (
        "path-without-slash",
        with_change(valid_budget(), "spec.route.pathPrefix", "export"),
        "route.pathPrefix must start with '/'",
    ),
    (
        "path-with-quote-injection",
        with_change(valid_budget(), "spec.route.pathPrefix", '/x" or true or "'),
        "route.pathPrefix must start with '/' and contain only URL path characters",
    ),
    (
        "path-with-broken-escape",
        with_change(valid_budget(), "spec.route.pathPrefix", "/export%zz"),
        "'%' only as an escape such as %20",
    ),
    (
        "methods-unknown",
        with_change(valid_budget(), "spec.route.methods", ["GET", "TRACE"]),
        'Unsupported value: "TRACE"',
    ),
    (
        "methods-empty",
        with_change(valid_budget(), "spec.route.methods", []),
        "should have at least 1 items",
    ),
    (
        "methods-twice",
        with_change(valid_budget(), "spec.route.methods", ["POST", "GET", "POST"]),
        "route.methods must not name a method twice",
    ),
    (
        "window-in-words",
        with_change(valid_budget(), "spec.latency.window", "5 minutes"),
        "latency.window must be a duration like 30s, 5m or 1h",
    ),
    (
        "quantile-above-one",
        with_change(valid_budget(), "spec.latency.quantile", 1.5),
        "spec.latency.quantile in body should be less than 1",
    ),
    (
        "metric-with-bucket-suffix",
        with_change(valid_budget(), "spec.latency.metric", "http_request_duration_seconds_bucket"),
        "latency.metric must be a Prometheus metric name",
    ),
    (
        "selector-reserved-label",
        with_change(valid_budget(), "spec.latency.selector", {"__name__": "up"}),
        "latency.selector keys must be Prometheus label names",
    ),
    (
        "no-metric-no-query",
        with_change(valid_budget(), "spec.latency.metric", DELETE),
        "latency needs either metric (a histogram name) or query",
    ),
    (
        "metric-and-query",
        with_change(valid_budget(), "spec.latency.query", "vector(1)"),
        "latency.metric and latency.query are exclusive",
    ),
    (
        "reroute-without-target",
        with_change(valid_budget(), "spec.reroute", {"afterEvaluations": 2}),
        "reroute needs serviceName (with longRunningSelector) or dnsOnlyHostname",
    ),
    (
        "required-above-timeout",
        with_change(valid_budget(), "spec.budget.requiredSeconds", 300),
        "budget.requiredSeconds cannot exceed budget.timeoutSeconds",
    ),
    (
        "matcher-bad-operator",
        with_change(
            valid_budget(),
            "spec.latency.matchers",
            [{"label": "a", "operator": "==", "value": "b"}],
        ),
        'Unsupported value: "=="',
    ),
    (
        "missing-deployment",
        with_change(valid_budget(), "spec.origin.deploymentName", DELETE),
        "spec.origin.deploymentName: Required value",
    ),
    (
        "negative-replicas",
        with_change(valid_budget(), "spec.origin.minReplicas", -3),
        "spec.origin.minReplicas in body should be greater than or equal to 1",
    ),
    (
        "zone-id-is-domain",
        with_change(valid_zone(), "spec.zoneId", "example.com"),
        "zoneId must be the 32-character hexadecimal Cloudflare zone id",
    ),
    (
        "zone-timeout-above-6000",
        with_change(valid_zone(), "spec.proxyReadTimeoutSeconds", 6001),
        "should be less than or equal to 6000",
    ),
    (
        "chain-app-server-timeout-zero",
        with_change(valid_budget(), "spec.chain", {"appServer": {"requestTimeoutSeconds": 0}}),
        "should be greater than or equal to 1",
    ),
    (
        "chain-app-server-name-with-spaces",
        with_change(
            valid_budget(),
            "spec.chain",
            {"appServer": {"name": "Gunicorn 21", "requestTimeoutSeconds": 30}},
        ),
        "chain.appServer.name must be a short lowercase name",
    ),
    (
        "zone-raise-without-ceiling",
        with_change(valid_zone(), "spec.raiseProxyReadTimeout", {"enabled": True}),
        "spec.raiseProxyReadTimeout.ceilingSeconds: Required value",
    ),
    (
        "zone-raise-ceiling-above-6000",
        with_change(
            valid_zone(), "spec.raiseProxyReadTimeout", {"enabled": True, "ceilingSeconds": 6001}
        ),
        "should be less than or equal to 6000",
    ),
    (
        "zone-without-secret",
        with_change(valid_zone(), "spec.apiTokenSecretRef", DELETE),
        "spec.apiTokenSecretRef: Required value",
    ),
]


BAD_RESOURCES += [
    (
        "reroute-service-without-pool",
        with_change(valid_budget(), "spec.reroute.longRunningSelector", DELETE),
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
    (
        "recover-ratio-zero",
        with_change(valid_budget(), "spec.budget.recoverRatio", 0),
        "spec.budget.recoverRatio: Invalid value: 0: budget.recoverRatio must be between 0.05 "
        "and 0.95 (a fraction of the budget)",
    ),
    (
        "recover-ratio-one",
        with_change(valid_budget(), "spec.budget.recoverRatio", 1),
        "budget.recoverRatio must be between 0.05 and 0.95",
    ),
    (
        "at-risk-ratio-zero",
        with_change(valid_budget(), "spec.budget.atRiskRatio", 0),
        "budget.atRiskRatio must be between 0.1 and 1 (a fraction of the budget)",
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


def name_cases() -> list[tuple[str, dict[str, Any], str]]:
    cases = []
    for field_id, base, path, what in NAME_FIELDS:
        field = path.removeprefix("spec.")
        cases += [
            (
                f"{field_id}-{name_id}",
                with_change(base(), path, name),
                f"{field} must be a Kubernetes object name, the name of {what} in the same "
                "namespace",
            )
            for name_id, name in HOSTILE_NAMES
        ]
        cases.append(
            (
                f"{field_id}-5000-characters",
                with_change(base(), path, "a" * 5000),
                f"{path}: Too long: may not be more than 253 bytes",
            )
        )
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
BAD_RESOURCES += [
    (
        f"pool-key-{key_id}",
        with_change(valid_budget(), POOL, {key: "long"}),
        "reroute.longRunningSelector keys must be Kubernetes label keys",
    )
    for key_id, key in BAD_LABEL_KEYS
]
BAD_RESOURCES += [
    (
        f"pool-value-{value_id}",
        with_change(valid_budget(), POOL, {"pool": value}),
        "reroute.longRunningSelector values must be Kubernetes label values",
    )
    for value_id, value in BAD_LABEL_VALUES
]
BAD_RESOURCES.append(
    (
        "pool-value-64-characters",
        with_change(valid_budget(), POOL, {"pool": "a" * 64}),
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


def out_of_bound_resources() -> list[tuple[str, dict[str, Any], str]]:
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
                cases.append(
                    (
                        f"{path.removeprefix('spec.')}-{bound}",
                        with_change(base(), path, value),
                        f"{path} in body should be {says}",
                    )
                )
    return cases


BAD_RESOURCES += out_of_bound_resources()
