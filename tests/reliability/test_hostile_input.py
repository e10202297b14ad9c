"""Hostile and malformed input: refused at the API server, or reported in status; never
turned into a query, a rule or a patch without escaping.

Three tiers, as a user meets them:

* **The API server refuses it** (``kubectl apply`` fails with a message that says what to
  fix, nothing is stored): the CRD tests' bad resources (among them one just beyond each
  numeric bound of the CRDs, object names and pod label keys and values the operator could
  never use: empty, control characters, paths, too long), plus injection attempts in host,
  path, metric, window and label names, unicode and control characters where only DNS names
  or label names may go, huge and negative numbers. Every CEL rule of the CRDs has a case.
* **The schema allows it, the operator reports it**: references to a Deployment, Service,
  Secret (or key) or CloudflareZone that do not exist, a zone id already synced by another
  CloudflareZone, a selector that matches many series, a regex Prometheus rejects, a regex
  or matcher the operator refuses to build, PromQL-injection and unicode/control characters
  in selector values (matched literally), a Service another route already rerouted, a
  foreign Cache Rule squatting on the route's ref, a plan that allows no read timeout,
  garbage written into ``status.memory``.
* **Settings**: the operator's own environment (``TBO_*``) malformed or hostile: it exits at
  once with a message naming the variable, never a traceback.

The module runs its own synthetic origin and Prometheus (hostile label values in the
exposition must not disturb other tests' scrapes), Prometheus behind ``FaultProxy`` to
record every query the operator sends, and the Cloudflare emulator to record every rule.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from sandbox.cloudflare_emulator import CloudflareEmulator
from sandbox.controlplane import ControlPlane
from sandbox.origin_exporter import OriginExporter
from sandbox.prometheus import PrometheusServer
from tests.reliability import fixtures
from tests.reliability.helpers import apply_all, condition, short
from tests.support import kube, servers
from tests.support.crd_cases import BAD_RESOURCES, DELETE, valid_budget, valid_zone, with_change
from tests.support.faults import FaultProxy
from tests.support.objects import (
    HOST,
    apply,
    budget,
    deployment,
    selector_of,
    service,
    status_of,
    zone,
)
from tests.support.operator import OperatorProcess
from tests.support.reliability import REPORT

pytestmark = pytest.mark.integration

NS_PREFIX = "rel-hostile"
API_AREA = "Hostile input: rejected by the API server"
STATUS_AREA = "Hostile input: reported in status"
SETTINGS_AREA = "Hostile input: settings"
TOKEN = "cf-hostile-token-4f2d8a61b7"
ZONE_ID = "4f2d8a61b7c94e0aa1d3e5f7091b2c3d"
FREE_ZONE_ID = "aaaabbbbccccddddeeeeffff00001111"

INJECTION = 'x"} or vector(250) or {route="'
"""Closes the label matcher and adds a clause, if pasted unescaped: P95 would read 250."""
LITERAL = 'café ☕ "quoted" back\\slash tab\there'
"""Unicode, a quote, a backslash and a tab: must match the exporter's label value exactly."""
PROM_REJECTS = "[[:foo:]]"
"""Passes the operator's regex check, Prometheus' RE2 refuses the unknown class."""
HOSTILE_PATH = "/export)or(true;--%22"
"""Schema-valid URL path characters that would end a Rules expression if pasted unquoted."""


# -- the API server refuses ------------------------------------------------------------
def _tb(path: str, value: Any) -> dict[str, Any]:
    return with_change(valid_budget(), path, value)


HOSTILE_RESOURCES: list[tuple[str, dict[str, Any], str]] = [
    (
        "host-expression-injection",
        _tb("spec.route.host", 'api.example.com" or http.host ne "x'),
        "route.host must be a lowercase DNS hostname",
    ),
    ("host-unicode", _tb("spec.route.host", "äpi.example.com"), "route.host must be a lowercase"),
    (
        "host-trailing-newline",
        _tb("spec.route.host", "api.example.com\n"),
        "route.host must be a lowercase DNS hostname",
    ),
    (
        "path-backslash",
        _tb("spec.route.pathPrefix", "/export\\"),
        "route.pathPrefix must start with '/' and contain only URL path characters",
    ),
    (
        "path-control-character",
        _tb("spec.route.pathPrefix", "/export\r\nX-Injected: 1"),
        "route.pathPrefix must start with '/' and contain only URL path characters",
    ),
    (
        "path-too-long",
        _tb("spec.route.pathPrefix", "/" + "a" * 600),
        "may not be more than 512 bytes",
    ),
    (
        "metric-promql-injection",
        _tb("spec.latency.metric", 'up{job="x"} or vector(1)'),
        "latency.metric must be a Prometheus metric name",
    ),
    (
        "window-promql-injection",
        _tb("spec.latency.window", "5m])or(vector(1"),
        "latency.window must be a duration like 30s, 5m or 1h",
    ),
    (
        "selector-key-injection",
        _tb("spec.latency.selector", {'route"} or vector(1) #': "x"}),
        "latency.selector keys must be Prometheus label names",
    ),
    (
        "selector-key-unicode",
        _tb("spec.latency.selector", {"rоute": "x"}),  # noqa: RUF001 (a Cyrillic o)
        "latency.selector keys must be Prometheus label names",
    ),
    (
        "selector-value-huge",
        _tb("spec.latency.selector", {"route": "x" * 5000}),
        "may not be more than 1024 bytes",
    ),
    (
        "selector-too-many-labels",
        _tb("spec.latency.selector", {f"l{i}": "x" for i in range(40)}),
        "must have at most 16 items",
    ),
    (
        "matcher-label-injection",
        _tb("spec.latency.matchers", [{"label": 'a"}or{b', "operator": "=", "value": "x"}]),
        "matcher label must be a Prometheus label name",
    ),
    (
        "query-huge",
        with_change(
            _tb("spec.latency.metric", DELETE), "spec.latency.query", "vector(1)" + " " * 5000
        ),
        "may not be more than 4096 bytes",
    ),
    (
        "timeout-huge",
        _tb("spec.budget.timeoutSeconds", 10**18),
        "should be less than or equal to 6000",
    ),
    (
        "replicas-huge",
        _tb("spec.origin.maxReplicas", 2**31),
        "should be less than or equal to 10000",
    ),
    (
        "cooldown-negative",
        _tb("spec.origin.scaleUpCooldownSeconds", -60),
        "should be greater than or equal to 0",
    ),
    (
        "ratio-negative",
        _tb("spec.budget.atRiskRatio", -0.5),
        "should be greater than or equal to 0.1",
    ),
    ("quantile-zero", _tb("spec.latency.quantile", 0), "should be greater than 0"),
    (
        "deployment-name-traversal",
        _tb("spec.origin.deploymentName", "../../kube-system/coredns"),
        "origin.deploymentName must be a Kubernetes object name",
    ),
    (
        "service-name-unicode",
        _tb("spec.reroute.serviceName", "sërvice"),
        "reroute.serviceName must be a Service name",
    ),
    (
        "dns-only-hostname-injection",
        _tb("spec.reroute", {"dnsOnlyHostname": "api.example.com;rm -rf"}),
        "reroute.dnsOnlyHostname must be a lowercase DNS hostname",
    ),
    (
        "zone-id-uppercase",
        with_change(valid_zone(), "spec.zoneId", "023E105F4ECEF8AD9CA31A8372D0C353"),
        "zoneId must be the 32-character hexadecimal Cloudflare zone id",
    ),
    (
        "zone-budget-above-cloudflare-limit",
        with_change(valid_zone(), "spec.apiRequestBudget", 100000),
        "should be less than or equal to 1200",
    ),
]


def the_line(text: str, needle: str) -> str:
    """kubectl's error line carrying ``needle``, after its "is invalid" head line."""
    lines = [line.strip(" *") for line in text.strip().splitlines() if line.strip()]
    found = next((line for line in lines if needle in line), "")
    head = lines[0] if lines else ""
    return found if found.startswith(head) else f"{head} {found}".strip()


def first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


HOSTILE_CASES = [("crds: " + i, r, m) for i, r, m in BAD_RESOURCES] + HOSTILE_RESOURCES


@pytest.fixture(scope="module")
def refusals_ns(control_plane: ControlPlane) -> Iterator[str]:
    """Where every hostile resource is sent: nothing may ever be stored in it."""
    yield from kube.scratch_namespace(control_plane)


@pytest.mark.parametrize(
    ("case_id", "resource", "message"), [pytest.param(*case, id=case[0]) for case in HOSTILE_CASES]
)
def test_hostile_resources_are_rejected_by_the_api_server(
    control_plane: ControlPlane,
    refusals_ns: str,
    case_id: str,
    resource: dict[str, Any],
    message: str,
) -> None:
    cp = control_plane
    with REPORT.case(
        API_AREA,
        f"{case_id}: {_what(resource)}",
        f"kubectl apply fails with '{message}'; nothing stored",
    ) as row:
        result = cp.kubectl(
            "apply", "-n", refusals_ns, "-f", "-", input_text=json.dumps(resource), check=False
        )
        assert result.returncode != 0, f"accepted: {result.stdout}"
        assert message in result.stderr, result.stderr
        row.did = "rejected: " + short(the_line(result.stderr, message), 300)
    assert kube.get_json(cp, resource["kind"].lower(), "-n", refusals_ns)["items"] == []


def test_the_hostile_resources_try_every_rule_of_the_crds() -> None:
    assert len(HOSTILE_CASES) >= 100
    untried = [
        m for m in _crd_rule_messages() if not any(want in m for _, _, want in HOSTILE_CASES)
    ]
    assert not untried, f"CEL rules of the CRDs that no case here tries: {untried}"


def _crd_rule_messages() -> list[str]:
    """The message of every CEL rule in the CRDs: each is a refusal some case must see."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            found.extend(rule["message"] for rule in node.get("x-kubernetes-validations", []))
            node = list(node.values())
        if isinstance(node, list):
            for child in node:
                walk(child)

    for path in sorted(kube.CRDS.glob("*.yaml")):
        walk(yaml.safe_load(path.read_text()))
    return found


def _what(resource: dict[str, Any]) -> str:
    """The offending change against the valid resource it was made from, for the report."""
    base = valid_budget() if resource["kind"] == "TimeoutBudget" else valid_zone()
    have, had = dict(_leaves(resource["spec"], "spec")), dict(_leaves(base["spec"], "spec"))
    changed = [p for p in have if p not in had or had[p] != have[p]]
    changed = [p for p in changed if not any(q != p and q.startswith(p + ".") for q in changed)]
    removed = [p for p in had if p not in have and not any(q.startswith(p) for q in have)]
    if changed:
        path = min(changed, key=len)
        return f"{path} = {json.dumps(have[path], ensure_ascii=False)[:80]}"
    if removed:
        return f"{min(removed, key=len)} left out"
    return resource["kind"]


def _leaves(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, f"{path}.{key}")


# -- reported in status ----------------------------------------------------------------
@pytest.fixture(scope="module")
def own_origin() -> Iterator[OriginExporter]:
    with servers.synthetic_origin() as exporter:
        yield exporter


own_prometheus = fixtures.prometheus("own_origin", "prometheus-hostile")
query_log = fixtures.proxy("own_prometheus")
emulator = fixtures.emulator(TOKEN, ZONE_ID, (FREE_ZONE_ID, "free", "example.net", 100))
operator = fixtures.operator("rel-hostile", "query_log", cloudflare="emulator")


def _secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data}


def _route(
    name: str, selector: dict[str, str] | None = None, path: str | None = None, **spec: Any
) -> dict[str, Any]:
    tb = budget(name, name, **spec)
    if path is not None:
        tb["spec"]["route"]["pathPrefix"] = path
    if selector is not None:
        tb["spec"]["latency"]["selector"] = selector
    return tb


def _edge(tb: dict[str, Any], zone: str, required: int | None = 300) -> dict[str, Any]:
    tb["spec"]["edge"] = {"zoneRef": {"name": zone}}
    if required is not None:
        tb["spec"]["budget"] = {"requiredSeconds": required}
    return tb


def _at_max(tb: dict[str, Any], **reroute: Any) -> dict[str, Any]:
    tb["spec"]["origin"]["maxReplicas"] = 1
    tb["spec"]["reroute"] = {"afterEvaluations": 1, "recoverySeconds": 300, **reroute}
    return tb


Probe = Callable[[dict[str, Any]], str | None]
"""From the route's status: what it reports (for the report), or None while not yet."""


def _cond(type_: str, status: str, reason: str, *needles: str) -> Probe:
    def probe(st: dict[str, Any]) -> str | None:
        found = condition(st, type_)
        text = str(found.get("message", ""))
        same = found.get("status") == status and found.get("reason") == reason
        if same and all(n in text for n in needles):
            return f"{type_}={status}/{reason}: '{short(text, 200)}'"
        return None

    return probe


def _message(*needles: str) -> Probe:
    def probe(st: dict[str, Any]) -> str | None:
        text = str(st.get("message", ""))
        if not all(n in text for n in needles):
            return None
        start = text.rfind(". ", 0, text.index(needles[0])) + 1  # the sentence saying it
        return f"message: '…{short(text[start:], 220)}'"

    return probe


def test_hostile_but_valid_input_is_reported_in_status(
    control_plane: ControlPlane,
    own_origin: OriginExporter,
    own_prometheus: PrometheusServer,
    emulator: CloudflareEmulator,
    operator: OperatorProcess,
    ns: str,
) -> None:
    cp, emu, origin = control_plane, emulator, own_origin
    for name, p95 in (("normal", 30.0), ("m1", 10.0), ("m2", 20.0), ("m3", 80.0)):
        host = "many.example.com" if name.startswith("m") else HOST
        origin.set_route(name, p95=p95, rps=20, host=host)
    origin.set_route(LITERAL, p95=33.0, rps=20, host=HOST)
    for name in ("owner-a", "owner-b"):
        origin.set_route(name, p95=110.0, rps=40, host=HOST)
    squat_ref = f"tbo_{ns}_squat"
    emu.add_rules(
        ZONE_ID,
        [
            {
                "ref": squat_ref,
                "description": "someone else's rule, same ref",
                "expression": '(http.host eq "squat.example.com")',
                "action": "set_cache_settings",
                "action_parameters": {"cache": False},
                "enabled": True,
            }
        ],
    )
    squatter_before = next(r for r in emu.rules(ZONE_ID) if r["ref"] == squat_ref)
    apply(
        cp,
        ns,
        _secret("cf", {"token": TOKEN}),
        zone("main", ZONE_ID, "cf"),
        zone("free", FREE_ZONE_ID, "cf"),
        zone("nosecret", ZONE_ID.replace("4", "5"), "missing"),
        _secret("cf-nokey", {"other": "x"}),
        zone("nokey", ZONE_ID.replace("4", "6"), "cf-nokey"),
    )
    kube.wait_for(
        lambda: (
            kube.get_json(cp, "cloudflarezone", "main", "-n", ns)
            .get("status", {})
            .get("effectiveProxyReadTimeoutSeconds")
        ),
        60,
        "zone main synced",
    )
    apply(cp, ns, zone("twin", ZONE_ID, "cf"))
    with_deployment = (
        "normal hostile literal many override-many regex-prom regex-backref le-matcher "
        "query-syntax query-placeholder ghost-svc ghost-zone no-secret no-key squat paths "
        "needs-enterprise owner-a owner-b garbage"
    )
    apply_all(cp, ns, *(deployment(name, 1) for name in with_deployment.split()))
    apply(cp, ns, service("shared", {"app": "shared"}))
    many_query = (
        "histogram_quantile({{quantile}}, sum by (le, route) (rate("
        'http_request_duration_seconds_bucket{host="many.example.com"}[{{window}}])))'
    )
    routes = [
        _route("normal", {"route": "normal"}),
        _route("hostile", {"route": INJECTION}),
        _route("literal", {"route": LITERAL}),
        _route("many", {"host": "many.example.com"}),
        _route("override-many", latency={"query": many_query, "window": "5s"}),
        _route(
            "regex-prom",
            {},
            latency={
                "metric": "http_request_duration_seconds",
                "window": "5s",
                "matchers": [{"label": "route", "operator": "=~", "value": PROM_REJECTS}],
            },
        ),
        _route(
            "regex-backref",
            {},
            latency={
                "metric": "http_request_duration_seconds",
                "window": "5s",
                "matchers": [{"label": "route", "operator": "=~", "value": "(a)\\1"}],
            },
        ),
        _route(
            "le-matcher",
            {},
            latency={
                "metric": "http_request_duration_seconds",
                "window": "5s",
                "matchers": [{"label": "le", "operator": "=", "value": "+Inf"}],
            },
        ),
        _route(
            "query-syntax",
            latency={
                "query": "histogram_quantile({{quantile}}, sum(rate("
                "http_request_duration_seconds_bucket[{{window}}])",
                "window": "5s",
            },
        ),
        _route("query-placeholder", latency={"query": "vector({{evil}})", "window": "5s"}),
        _route("ghost-dep", {"route": "normal"}, origin={"deploymentName": "ghost"}),
        _route(
            "ghost-svc",
            {"route": "normal"},
            reroute={"serviceName": "nosuchsvc", "longRunningSelector": {"pool": "long"}},
        ),
        _edge(_route("ghost-zone", {"route": "normal"}), "nozone", required=None),
        _edge(_route("no-secret", {"route": "normal"}), "nosecret", required=None),
        _edge(_route("no-key", {"route": "normal"}), "nokey", required=None),
        _edge(_route("squat", {"route": "normal"}), "main"),
        _edge(_route("paths", {"route": "normal"}, path=HOSTILE_PATH), "main"),
        _edge(_route("needs-enterprise", {"route": "normal"}), "free"),
        _at_max(
            _route("owner-a", {"route": "owner-a"}),
            serviceName="shared",
            longRunningSelector={"pool": "long"},
        ),
        _at_max(
            _route("owner-b", {"route": "owner-b"}),
            serviceName="shared",
            longRunningSelector={"pool": "long"},
        ),
        _route("garbage", {"route": "normal"}),
    ]
    apply_all(cp, ns, *routes)
    # Garbage in status.memory, as a hand edit or another tool might leave it.
    garbage = {
        "status": {
            "memory": {
                "atRiskStreak": "lots",
                "lastScaleUpAt": "yesterday",
                "atRisk": "yes",
                "reroutedTo": [{"via": "Service", "name": "../../kube-system"}, "junk", {"via": 7}],
            }
        }
    }
    cp.kubectl(
        "patch",
        "tb",
        "garbage",
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(garbage),
    )

    def prometheus_p95_of_many() -> float | None:
        q = (
            "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket"
            '{host="many.example.com"}[5s])))'
        )
        url = f"{own_prometheus.url}/api/v1/query?" + urllib.parse.urlencode({"query": q})
        with urllib.request.urlopen(url, timeout=5) as response:
            result = json.loads(response.read())["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def many(st: dict[str, Any]) -> str | None:
        ours, theirs = st.get("p95Seconds"), prometheus_p95_of_many()
        if ours is None or theirs is None or abs(ours - theirs) > 0.15 * theirs:
            return None
        return (
            f"one P95 over the 3 series' summed buckets: {ours} s (Prometheus' own "
            f"sum by (le) quantile: {theirs:.2f} s); series P95s 10, 20, 80 s"
        )

    def value(low: float, high: float) -> Probe:
        def probe(st: dict[str, Any]) -> str | None:
            p95 = st.get("p95Seconds")
            if p95 is not None and low <= p95 <= high:
                return f"P95 {p95} s, state {st.get('state')}"
            return None

        return probe

    def garbage_ignored(st: dict[str, Any]) -> str | None:
        memory = st.get("memory") or {}
        if st.get("state") == "Healthy" and memory.get("atRiskStreak") == 0:
            return f"state Healthy, memory rewritten: {json.dumps(memory, sort_keys=True)}"
        return None

    def squatter(st: dict[str, Any]) -> str | None:
        found = _cond("EdgeSynced", "False", "SyncFailed", squat_ref, "left as it is")(st)
        now = next(r for r in emu.rules(ZONE_ID) if r["ref"] == squat_ref)
        unchanged = found and now == squatter_before
        return f"{found}; the squatting rule unchanged" if unchanged else None

    def rule_quoted(st: dict[str, Any]) -> str | None:
        rule = next(
            (r for r in emu.rules(ZONE_ID) if str(r.get("description", "")).endswith("/paths")),
            None,
        )
        want = (
            '(http.host eq "api.example.com" and '
            '(http.request.uri.path eq "/export)or(true;--%22" or '
            'starts_with(http.request.uri.path, "/export)or(true;--%22/")))'
        )
        if rule is None or st.get("edgeTimeoutSeconds") != 301:
            return None
        assert rule["expression"] == want, rule["expression"]
        return f"rule expression {rule['expression']}"

    cases: list[tuple[str, str, str, Probe]] = [
        (
            "missing Deployment: origin.deploymentName ghost",
            "ghost-dep",
            "Ready=False reason OriginNotFound naming the Deployment; nothing else done",
            _cond("Ready", "False", "OriginNotFound", "Deployment ghost not found"),
        ),
        (
            "missing Service: reroute.serviceName nosuchsvc",
            "ghost-svc",
            "Ready=False reason ReferenceNotFound naming the Service",
            _cond("Ready", "False", "ReferenceNotFound", "Service nosuchsvc not found"),
        ),
        (
            "missing CloudflareZone: edge.zoneRef nozone",
            "ghost-zone",
            "EdgeSynced=False reason ZoneNotReady naming the zone",
            _cond("EdgeSynced", "False", "ZoneNotReady", f"CloudflareZone {ns}/nozone"),
        ),
        (
            "missing Secret: the zone's apiTokenSecretRef names no Secret",
            "no-secret",
            "EdgeSynced=False saying which Secret to create",
            _cond("EdgeSynced", "False", "ZoneNotReady", f"Secret {ns}/missing not found"),
        ),
        (
            "Secret without the key: data has only 'other'",
            "no-key",
            "EdgeSynced=False naming the missing key and the keys there are",
            _cond("EdgeSynced", "False", "ZoneNotReady", "has no key token (keys: other)"),
        ),
        (
            "selector matching many series: {host: many.example.com} (3 routes)",
            "many",
            "one P95 over the summed buckets of every matched series, equal to Prometheus' own",
            many,
        ),
        (
            "latency.query override returning 3 series",
            "override-many",
            "MetricsAvailable=False reason QueryRejected: must return one series, aggregate it",
            _cond("MetricsAvailable", "False", "QueryRejected", "must return one series"),
        ),
        (
            f"regex Prometheus rejects: route =~ {PROM_REJECTS}",
            "regex-prom",
            "MetricsAvailable=False reason QueryRejected with Prometheus' own message; the other "
            "routes' readings unaffected",
            _cond("MetricsAvailable", "False", "QueryRejected", "Prometheus rejected the query"),
        ),
        (
            "regex the operator refuses: route =~ (a)\\1 (a backreference)",
            "regex-backref",
            "MetricsAvailable=False reason InvalidSelector; nothing sent to Prometheus",
            _cond("MetricsAvailable", "False", "InvalidSelector", "backreference"),
        ),
        (
            "matcher on the bucket label: le = +Inf",
            "le-matcher",
            "MetricsAvailable=False reason InvalidSelector",
            _cond("MetricsAvailable", "False", "InvalidSelector", "bucket label"),
        ),
        (
            "latency.query with a syntax error",
            "query-syntax",
            "MetricsAvailable=False reason QueryRejected with Prometheus' parse error",
            _cond("MetricsAvailable", "False", "QueryRejected", "parse error"),
        ),
        (
            "latency.query with an unknown placeholder {{evil}}",
            "query-placeholder",
            "MetricsAvailable=False reason InvalidSelector naming the placeholder",
            _cond("MetricsAvailable", "False", "InvalidSelector", "evil"),
        ),
        (
            f"PromQL injection in a selector value: route = {INJECTION}",
            "hostile",
            "matched literally: no such series, so NoData; never the injected 250 s",
            _cond("MetricsAvailable", "False", "NoData"),
        ),
        (
            f"unicode, quote, backslash and tab in a selector value: route = {LITERAL}",
            "literal",
            "matched literally: the exporter's series with exactly that label value is read "
            "(P95 33 s: anywhere in its (30, 45] bucket, as histogram_quantile interpolates)",
            value(25, 45),
        ),
        (
            "a foreign Cache Rule squatting on the route's ref",
            "squat",
            "EdgeSynced=False reason SyncFailed saying the rule is left as it is; the rule is "
            "unchanged",
            squatter,
        ),
        (
            f"schema-valid path that would end a Rules expression: {HOSTILE_PATH}",
            "paths",
            "the Cache Rule's expression holds the path as one quoted string literal",
            rule_quoted,
        ),
        (
            "requiredSeconds 300 on a Free-plan zone (no read timeout there)",
            "needs-enterprise",
            "refused, and said so in the status message (and a Warning Event Refused): the "
            "plan does not allow it, with Cloudflare's advice; no rule written",
            _message("requiredSeconds 300 needs 301s", "does not allow changing"),
        ),
        (
            "two routes rerouting one Service",
            "owner-a|owner-b",
            "the second is refused with the owner's name; the Service keeps the first's reroute",
            _cond("Ready", "False", "ActionFailed", "Service shared is rerouted by TimeoutBudget"),
        ),
        (
            "garbage in status.memory (strings for numbers, a reroute target '../../kube-system')",
            "garbage",
            "ignored: the route evaluated normally and status.memory rewritten sane",
            garbage_ignored,
        ),
    ]
    failures: list[str] = []
    deadline = time.monotonic() + 90
    for case, names, checked, probe in cases:
        try:
            with REPORT.case(STATUS_AREA, case, checked) as row:
                found = None
                while found is None:
                    for name in names.split("|"):
                        found = probe(status_of(cp, ns, name)) or found
                    if found is None:
                        assert time.monotonic() < deadline, (
                            "not reported in time: "
                            + json.dumps({n: status_of(cp, ns, n) for n in names.split("|")})[:1500]
                        )
                        time.sleep(0.5)
                row.did = found
        except AssertionError as exc:
            failures.append(f"{case}: {str(exc)[:1500]}")
    assert status_of(cp, ns, "normal").get("p95Seconds"), "a hostile neighbour broke the batch"
    assert selector_of(cp, ns, "shared") == {"pool": "long"}
    twin = kube.get_json(cp, "cloudflarezone", "twin", "-n", ns).get("status", {})
    twin_cond = condition(twin, "EdgeSynced")
    with REPORT.case(
        STATUS_AREA,
        "a second CloudflareZone for a zone id another one already syncs",
        "EdgeSynced=False reason ZoneIdInUse on the second; the first keeps syncing",
    ) as row:
        assert twin_cond.get("reason") == "ZoneIdInUse", twin
        row.did = f"EdgeSynced=False/ZoneIdInUse: '{short(twin_cond['message'], 200)}'"
    assert operator.alive()
    assert not failures, failures


def test_no_query_or_rule_was_built_from_unescaped_input(
    emulator: CloudflareEmulator, query_log: FaultProxy, operator: OperatorProcess
) -> None:
    with REPORT.case(
        STATUS_AREA,
        "every query and Cache Rule the operator sent during the hostile scenarios",
        "the injection text never reached Prometheus unescaped (the raw '\"} or vector(250)' "
        "appears in no query); every rule expression the operator wrote (creates and edits) "
        'is (http.host eq "...") alone, or with starts_with(http.request.uri.path, "...") or '
        '(http.request.uri.path eq "..." or starts_with(http.request.uri.path, "...")), each '
        "value one string literal",
    ) as row:
        queries = [s.query_text() for s in query_log.requests("/api/v1/query")]
        assert queries
        carrying = [q for q in queries if "or vector" in q]
        assert carrying, "the hostile value was never sent: nothing checked"
        assert not [q for q in queries if '"} or vector(250)' in q]
        lit, path = r'"(?:[^"\\]|\\.)*"', r"http\.request\.uri\.path"
        literal = re.compile(
            rf"^\(http\.host eq {lit}(?: and (?:starts_with\({path}, {lit}\)"
            rf"|\({path} eq {lit} or starts_with\({path}, {lit}\)\)))?\)$"
        )
        # Rule by rule: a create or an edit sends one rule; creating the entry point
        # sends a list.
        sent = [
            e.body
            for m in ("POST", "PATCH")
            for e in emulator.requests(m)
            if isinstance(e.body, dict)
        ]
        expressions = [
            rule["expression"]
            for body in sent
            for rule in body.get("rules", [body])
            if str(rule.get("ref", "")).startswith(("tbo_", "tbo-h-")) and "expression" in rule
        ]
        assert expressions
        bad = [e for e in expressions if not literal.match(e)]
        assert not bad, bad
        row.did = (
            f"{len(queries)} queries sent, {len(carrying)} carried the injection text, each "
            f"inside an escaped literal; {len(expressions)} rule expressions written, all of "
            "the quoted form"
        )


# -- settings --------------------------------------------------------------------------
SETTINGS: list[tuple[str, dict[str, str], str]] = [
    ("TBO_PROMETHEUS_URL unset", {}, "TBO_PROMETHEUS_URL is not set"),
    (
        "TBO_PROMETHEUS_URL=file:///etc/passwd",
        {"TBO_PROMETHEUS_URL": "file:///etc/passwd"},
        "must be http(s)://host[:port]",
    ),
    (
        "TBO_EVALUATION_INTERVAL_SECONDS=abc",
        {"TBO_EVALUATION_INTERVAL_SECONDS": "abc"},
        "TBO_EVALUATION_INTERVAL_SECONDS must be a number of seconds, not 'abc'",
    ),
    (
        "TBO_EVALUATION_INTERVAL_SECONDS=0.001 (a busy loop)",
        {"TBO_EVALUATION_INTERVAL_SECONDS": "0.001"},
        "must be between 1 and 3600",
    ),
    (
        "TBO_PROMETHEUS_BEARER_TOKEN_FILE naming no file",
        {"TBO_PROMETHEUS_BEARER_TOKEN_FILE": "/nonexistent/token"},
        "TBO_PROMETHEUS_BEARER_TOKEN_FILE '/nonexistent/token' cannot be read",
    ),
    (
        "TBO_PROMETHEUS_RETRIES=many",
        {"TBO_PROMETHEUS_RETRIES": "many"},
        "TBO_PROMETHEUS_RETRIES must be a number, not 'many'",
    ),
    (
        "TBO_PROMETHEUS_TIMEOUT_SECONDS=-1",
        {"TBO_PROMETHEUS_TIMEOUT_SECONDS": "-1"},
        "timeout must be > 0",
    ),
    (
        "TBO_PEERING_LIFETIME_SECONDS=forever",
        {"TBO_PEERING_LIFETIME_SECONDS": "forever"},
        "TBO_PEERING_LIFETIME_SECONDS must be a number, not 'forever'",
    ),
    (
        "TBO_PROMETHEUS_URL with a password and both CA file and insecure-skip-verify",
        {
            "TBO_PROMETHEUS_URL": "http://tbo:url-password-77@prom:9090",
            "TBO_PROMETHEUS_CA_FILE": "/ca.pem",
            "TBO_PROMETHEUS_INSECURE_SKIP_VERIFY": "true",
        },
        "set either a CA file or insecure_skip_verify",
    ),
]


DRIVER = """
import contextlib, io, json, os, sys, traceback
from timeout_budget import __main__ as cli
results = []
for env in json.load(sys.stdin):
    for key in [k for k in os.environ if k.startswith("TBO_")]:
        del os.environ[key]
    os.environ.update(env)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(err):
        try:
            code = cli.main(["run"])
        except BaseException:
            traceback.print_exc()
            code = None
    results.append({"code": code, "output": err.getvalue()})
print(json.dumps(results))
"""
"""Runs ``timeout-budget run``'s entry point once per environment in one interpreter (each
fresh start would import kopf and the API clients again)."""


@pytest.fixture(scope="module")
def settings_results() -> dict[str, dict[str, Any]]:
    """What ``timeout-budget run`` did with each of SETTINGS: its exit code and output."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("TBO_")}
    base["PYTHONPATH"] = str(kube.REPO / "operator")
    envs = []
    for case, env in ((c, e) for c, e, _ in SETTINGS):
        full = {"TBO_PROMETHEUS_URL": "http://prometheus:9090", **env}
        if case.startswith("TBO_PROMETHEUS_URL unset"):
            full.pop("TBO_PROMETHEUS_URL")
        envs.append(full)
    # One real process start: the exit status a container runtime would see.
    real = subprocess.run(
        [sys.executable, "-m", "timeout_budget", "run"],
        env={**base, **envs[0]},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    driven = subprocess.run(
        [sys.executable, "-c", DRIVER],
        env=base,
        input=json.dumps(envs),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    results = json.loads(driven.stdout.strip().splitlines()[-1])
    results[0] = {"code": real.returncode, "output": real.stdout + real.stderr}
    return {case: result for (case, _, _), result in zip(SETTINGS, results, strict=True)}


@pytest.mark.parametrize(
    ("case", "message"), [pytest.param(case, message, id=case) for case, _, message in SETTINGS]
)
def test_hostile_settings_stop_the_operator_with_a_clear_message(
    settings_results: dict[str, dict[str, Any]], case: str, message: str
) -> None:
    result = settings_results[case]
    with REPORT.case(
        SETTINGS_AREA,
        case,
        f"exit status 2 at once with '{message}'; no traceback; no secret echoed",
    ) as row:
        output = result["output"]
        assert result["code"] == 2, (result["code"], output[-500:])
        assert message in output, output[-500:]
        assert "Traceback" not in output
        assert "url-password-77" not in output
        row.did = f"exit 2: '{short(first_line(output), 200)}'"
