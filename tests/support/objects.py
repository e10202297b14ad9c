"""Kubernetes objects the operator-process tests apply, and readers of what it wrote back.

(``tests/support/manifests/`` holds YAML files; these are builders.) The route builder's
defaults suit a loop at a 1 s interval: a 120 s budget, 1..3 replicas in steps of 1, no
cooldown and a 3 s scale-down stabilization, latency over a 5 s window.
"""

from __future__ import annotations

import json
from typing import Any

from sandbox.controlplane import ControlPlane
from tests.support import kube

HOST = "api.example.com"
API = "timeoutbudget.io/v1alpha1"


def apply(cp: ControlPlane, namespace: str, *objects: dict[str, Any]) -> None:
    """``kubectl apply`` each object in turn (one call each)."""
    for obj in objects:
        cp.kubectl("apply", "-n", namespace, "-f", "-", input_text=json.dumps(obj))


def manifest(api_version: str, kind: str, name: str, **fields: Any) -> dict[str, Any]:
    """An object of ``kind`` named ``name``, with its top-level ``fields`` (spec, stringData)."""
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name}, **fields}


def deployment(name: str, replicas: int, container: str = "origin") -> dict[str, Any]:
    labels = {"app": name}
    pod = {"containers": [{"name": container, "image": "registry.local/origin:1"}]}
    return manifest(
        "apps/v1",
        "Deployment",
        name,
        spec={
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    )


def service(name: str, selector: dict[str, str]) -> dict[str, Any]:
    ports = [{"port": 80, "targetPort": 8080}]
    return manifest("v1", "Service", name, spec={"selector": selector, "ports": ports})


def hpa(
    name: str,
    target: str | None = None,
    min_replicas: int = 1,
    max_replicas: int = 5,
    cpu_percent: int = 70,
) -> dict[str, Any]:
    """A HorizontalPodAutoscaler of Deployment ``target`` (default: ``name``) on CPU."""
    ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": target or name}
    cpu = {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu_percent}}
    return manifest(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        name,
        spec={
            "scaleTargetRef": ref,
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "metrics": [{"type": "Resource", "resource": cpu}],
        },
    )


def ingress(name: str, path: str, read_timeout: str) -> dict[str, Any]:
    """An ingress-nginx Ingress for ``HOST`` + ``path`` to Service ``name``, with its
    ``proxy-read-timeout`` annotation."""
    backend = {"service": {"name": name, "port": {"number": 80}}}
    paths = [{"path": path, "pathType": "Prefix", "backend": backend}]
    body = manifest(
        "networking.k8s.io/v1",
        "Ingress",
        name,
        spec={"ingressClassName": "nginx", "rules": [{"host": HOST, "http": {"paths": paths}}]},
    )
    body["metadata"]["annotations"] = {
        "nginx.ingress.kubernetes.io/proxy-read-timeout": read_timeout
    }
    return body


def budget(name: str, route: str, **spec: Any) -> dict[str, Any]:
    """A TimeoutBudget for ``https://api.example.com/<route>`` scaling Deployment ``name``;
    ``spec`` replaces whole top-level sections."""
    body: dict[str, Any] = {
        "route": {"host": HOST, "pathPrefix": f"/{route}"},
        "budget": {"timeoutSeconds": 120, "atRiskRatio": 0.8, "recoverRatio": 0.6},
        "latency": {
            "metric": "http_request_duration_seconds",
            "selector": {"route": route},
            "window": "5s",
        },
        "origin": {
            "deploymentName": name,
            "minReplicas": 1,
            "maxReplicas": 3,
            "scaleUpStep": 1,
            "scaleUpCooldownSeconds": 0,
            "scaleDownStabilizationSeconds": 3,
        },
    }
    body.update(spec)
    return manifest(API, "TimeoutBudget", name, spec=body)


def edge_route(name: str, zone: str, route: str | None = None) -> dict[str, Any]:
    """``budget(name, route or name)`` that needs 300 s (a 301 s Cache Rule) through ``zone``."""
    tb = budget(name, route or name)
    tb["spec"]["budget"] = {"timeoutSeconds": 360, "requiredSeconds": 300}
    tb["spec"]["edge"] = {"zoneRef": {"name": zone}}
    return tb


def secret(name: str, token: str) -> dict[str, Any]:
    """A Secret holding a Cloudflare token under ``token``."""
    return manifest("v1", "Secret", name, stringData={"token": token})


def zone(name: str, zone_id: str, ref: str = "cf", **spec: Any) -> dict[str, Any]:
    """A CloudflareZone reading its token from Secret ``ref`` (key ``token``)."""
    secret_ref = {"name": ref}
    return manifest(
        API,
        "CloudflareZone",
        name,
        spec={"zoneId": zone_id, "apiTokenSecretRef": secret_ref, **spec},
    )


def status_of(cp: ControlPlane, ns: str, name: str) -> dict[str, Any]:
    """A TimeoutBudget's status (``{}`` before the first)."""
    status: dict[str, Any] = kube.get_json(cp, "tb", name, "-n", ns).get("status", {})
    return status


def chain_of(cp: ControlPlane, ns: str, name: str) -> list[tuple[str, Any, str]]:
    """A TimeoutBudget's ``status.chain`` as ``(hop, timeoutSeconds, verdict)`` rows."""
    hops = status_of(cp, ns, name).get("chain") or []
    return [(h["hop"], h.get("timeoutSeconds"), h["verdict"]) for h in hops]


def zone_status(cp: ControlPlane, ns: str, name: str) -> dict[str, Any]:
    """A CloudflareZone's status (``{}`` before the first)."""
    found: dict[str, Any] = kube.get_json(cp, "cloudflarezone", name, "-n", ns).get("status", {})
    return found


def spec_replicas(cp: ControlPlane, ns: str, name: str) -> int:
    return int(kube.get_json(cp, "deployment", name, "-n", ns)["spec"]["replicas"])


def selector_of(cp: ControlPlane, ns: str, name: str) -> dict[str, str]:
    selector: dict[str, str] = kube.get_json(cp, "service", name, "-n", ns)["spec"]["selector"]
    return selector


def event_reasons(cp: ControlPlane, ns: str, name: str) -> list[str]:
    events = kube.get_json(
        cp, "events", "-n", ns, "--field-selector", f"involvedObject.name={name}"
    )["items"]
    return [e["reason"] for e in events]
