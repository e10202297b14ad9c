"""The Gateway API hop of the timeout chain, on the real API server with the real Gateway
API CRDs (standard channel, installed by the sandbox): the HTTPRoute rule in front of a
route is found, its ``timeouts`` count only where the GatewayClass says it honours them,
and the API server's own CEL rules refuse what the operator must never write."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sandbox.controlplane import ControlPlane
from sandbox.origin_exporter import OriginExporter
from tests.support import kube
from tests.support.objects import HOST, apply, budget, chain_of, deployment, status_of
from tests.support.operator import OperatorProcess

pytestmark = pytest.mark.integration

NS_PREFIX = "gwapi"
GATEWAY_API = "gateway.networking.k8s.io/v1"
FEATURES = ["HTTPRouteBackendRequestTimeout", "HTTPRouteRequestTimeout"]


def gateway_class(cp: ControlPlane, name: str, features: list[str]) -> None:
    """A GatewayClass, and the status its implementation would write (no data plane runs
    in the sandbox)."""
    body = {
        "apiVersion": GATEWAY_API,
        "kind": "GatewayClass",
        "metadata": {"name": name},
        "spec": {"controllerName": "example.net/gateway-controller"},
    }
    cp.kubectl("apply", "-f", "-", input_text=json.dumps(body))
    status = {"supportedFeatures": [{"name": f} for f in features]}
    cp.kubectl(
        "patch",
        "gatewayclass",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )


def gateway(name: str, class_name: str) -> dict[str, Any]:
    listener = {"name": "http", "protocol": "HTTP", "port": 80}
    return {
        "apiVersion": GATEWAY_API,
        "kind": "Gateway",
        "metadata": {"name": name},
        "spec": {"gatewayClassName": class_name, "listeners": [listener]},
    }


def httproute(name: str, path: str, **timeouts: str) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "name": "slow",
        "matches": [{"path": {"type": "PathPrefix", "value": path}}],
        "backendRefs": [{"name": name, "port": 80}],
    }
    if timeouts:
        rule["timeouts"] = timeouts
    return {
        "apiVersion": GATEWAY_API,
        "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {"parentRefs": [{"name": "edge"}], "hostnames": [HOST], "rules": [rule]},
    }


def test_the_httproute_rule_in_front_is_judged_by_what_its_class_honours(
    control_plane: ControlPlane, origin: OriginExporter, operator: OperatorProcess, ns: str
) -> None:
    """A 60 s ``timeouts.request`` under a 120 s budget fires first while the class lists
    the feature; unknown once the class stops listing it (an implementation that ignores
    timeouts, with no known default); consistent once raised to 300 s and honoured."""
    cp = control_plane
    class_name = f"gw-{ns}"
    gateway_class(cp, class_name, FEATURES)
    origin.set_route("export", p95=10.0, rps=20, host=HOST)
    route = budget("export", "export", chain={})
    apply(cp, ns, gateway("edge", class_name), httproute("export", "/export", request="60s"))
    apply(cp, ns, deployment("export", 1), route)

    def hops() -> list[tuple[str, Any, str]]:
        return chain_of(cp, ns, "export")

    kube.wait_for(
        lambda: hops() == [("cloudflare", 120, "Ok"), ("gateway", 60, "FiresFirst")],
        60,
        "the HTTPRoute rule in the chain",
    )
    st = status_of(cp, ns, "export")
    assert st["chain"][1]["object"] == (
        f"HTTPRoute {ns}/export rule slow via GatewayClass {class_name}"
    )
    assert (st["chain"][1]["source"], st["chain"][1]["measures"]) == ("timeouts.request", "total")
    found = next(c for c in st["conditions"] if c["type"] == "ChainConsistent")
    assert "a visitor gets 504 after 60s" in found["message"]

    # The real CEL rule: a backend try longer than the whole request is refused.
    refused = cp.kubectl(
        "apply",
        "-n",
        ns,
        "-f",
        "-",
        input_text=json.dumps(httproute("export", "/export", request="60s", backendRequest="90s")),
        check=False,
    )
    assert refused.returncode != 0
    assert "backendRequest timeout cannot be longer than request" in refused.stderr

    # The class stops listing the feature: the 60 s is not honoured, the default unknown.
    gateway_class(cp, class_name, [])
    kube.wait_for(
        lambda: hops() == [("cloudflare", 120, "Ok"), ("gateway", None, "Unknown")],
        60,
        "timeouts not honoured",
    )
    assert "not honoured" in status_of(cp, ns, "export")["chain"][1]["object"]

    # Raised and honoured again: consistent.
    gateway_class(cp, class_name, FEATURES)
    apply(cp, ns, httproute("export", "/export", request="300s", backendRequest="200s"))
    kube.wait_for(
        lambda: hops() == [("cloudflare", 120, "Ok"), ("gateway", 200, "Ok")],
        60,
        "the raised timeouts followed",
    )


def rule_of(cp: ControlPlane, ns: str, name: str) -> dict[str, Any]:
    found = json.loads(cp.kubectl("get", "httproute", name, "-n", ns, "-o", "json").stdout)
    rule: dict[str, Any] = found["spec"]["rules"][0]
    return rule


def test_sync_sets_the_rules_timeouts_and_gives_them_back(
    control_plane: ControlPlane, origin: OriginExporter, operator: OperatorProcess, ns: str
) -> None:
    """chain.sync.httpRouteName: the rule's 60 s request and 30 s backendRequest are raised
    to 121 s (both, as the API's CEL rule wants backendRequest ≤ request; the real API
    server checks it), the operator's field manager owns spec.rules while it holds them,
    and the rule's own timeouts come back exactly when the route is deleted."""
    cp = control_plane
    class_name = f"gw-sync-{ns}"
    gateway_class(cp, class_name, FEATURES)
    origin.set_route("upload", p95=10.0, rps=20, host=HOST)
    own = {"request": "60s", "backendRequest": "30s"}
    apply(cp, ns, gateway("edge", class_name), httproute("upload", "/upload", **own))
    synced = budget("upload", "upload", chain={"sync": {"httpRouteName": "upload"}})
    apply(cp, ns, deployment("upload", 1), synced)
    kube.wait_for(
        lambda: (
            rule_of(cp, ns, "upload").get("timeouts")
            == {"request": "121s", "backendRequest": "121s"}
        ),
        60,
        "the rule's timeouts raised",
    )
    kube.wait_for(
        lambda: chain_of(cp, ns, "upload") == [("cloudflare", 120, "Ok"), ("gateway", 121, "Ok")],
        60,
        "a consistent chain",
    )
    out = cp.kubectl("get", "httproute", "upload", "-n", ns, "--show-managed-fields", "-o", "json")
    managers = {
        e["manager"]: e.get("fieldsV1", {}).get("f:spec", {})
        for e in json.loads(out.stdout)["metadata"]["managedFields"]
    }
    assert "f:rules" in managers["timeout-budget-operator"]
    cp.kubectl("delete", "tb", "upload", "-n", ns, "--timeout=60s")
    assert rule_of(cp, ns, "upload")["timeouts"] == own
    notes = json.loads(cp.kubectl("get", "httproute", "upload", "-n", ns, "-o", "json").stdout)[
        "metadata"
    ].get("annotations", {})
    assert not [k for k in notes if k.startswith("timeoutbudget.io/")]


def test_sync_is_refused_where_the_class_ignores_timeouts(
    control_plane: ControlPlane, origin: OriginExporter, operator: OperatorProcess, ns: str
) -> None:
    cp = control_plane
    class_name = f"gw-ignores-{ns}"
    gateway_class(cp, class_name, [])
    origin.set_route("ignored", p95=10.0, rps=20, host=HOST)
    apply(cp, ns, gateway("ignoring", class_name))
    route = httproute("ignored", "/ignored", request="60s")
    route["spec"]["parentRefs"] = [{"name": "ignoring"}]
    apply(cp, ns, route)
    synced = budget("ignored", "ignored", chain={"sync": {"httpRouteName": "ignored"}})
    apply(cp, ns, deployment("ignored", 1), synced)
    kube.wait_for(
        lambda: (
            "the operator cannot set its timeout there" in json.dumps(status_of(cp, ns, "ignored"))
        ),
        60,
        "the refusal",
    )
    assert rule_of(cp, ns, "ignored")["timeouts"] == {"request": "60s"}
