"""What deleting the demo's TimeoutBudgets left behind, checked against how the demo began.

The operator's finalizer must give back everything it changed: the Service selector, the
HPA's ``minReplicas``, its annotations on every object, the Ingress's read timeout, the
Cache Rules and DNS records at the edge, and the weighted route's HTTPRoute rule (exactly
as the manifest has it, without the operator's record). ``check`` reads the cluster's
view and the edge's state after the deletion and lists what is not as it was. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from sandbox import demo_scenario as sc
from sandbox import demo_shift
from sandbox.demo_timeline import Restoration
from sandbox.demo_watch import ClusterView

OWNED_ANNOTATION_PREFIX = "timeoutbudget.io/"
INGRESS_READ_TIMEOUT = "nginx.ingress.kubernetes.io/proxy-read-timeout"


def manifest_rules(manifest: Path, routes: Sequence[sc.Route]) -> dict[str, list[dict[str, Any]]]:
    """The ``spec.rules`` of the weighted routes' HTTPRoutes as the manifest has them."""
    wanted = {r.http_route for r in routes if r.http_route is not None}
    found = {
        doc["metadata"]["name"]: list(doc["spec"]["rules"])
        for doc in yaml.safe_load_all(manifest.read_text())
        if doc and doc.get("kind") == "HTTPRoute" and doc["metadata"]["name"] in wanted
    }
    if wanted - set(found):
        raise LookupError(f"no HTTPRoute {sorted(wanted - set(found))} in {manifest}")
    return found


def check(
    view: ClusterView,
    deleted: bool,
    not_deleted: str,
    ingress: Mapping[str, str],
    operator_rules: Sequence[Mapping[str, Any]],
    unproxied: Sequence[str],
    httproute_rules: Mapping[str, Sequence[Mapping[str, Any]]],
) -> Restoration:
    """``httproute_rules``: per HTTPRoute the operator may have shifted, its manifest's rules."""
    problems: list[str] = []
    if not deleted:
        problems.append(f"TimeoutBudgets not deleted: {not_deleted}")
    selectors = {n: dict(s["spec"].get("selector") or {}) for n, s in view.services.items()}
    if selectors.get("api") != {"app": "api"}:
        problems.append(f"Service api selector is {selectors.get('api')}, not {{'app': 'api'}}")
    hpa_min = {n: int(h["spec"].get("minReplicas", 1)) for n, h in view.hpas.items()}
    if hpa_min.get("search") != 1:
        problems.append(f"HPA search minReplicas is {hpa_min.get('search')}, not 1")
    annotations: dict[str, list[str]] = {}
    for kind, objects in (
        ("Deployment", view.deployments),
        ("Service", view.services),
        ("HorizontalPodAutoscaler", view.hpas),
        ("HTTPRoute", view.httproutes),
        ("Ingress", {"export": {"metadata": {"annotations": dict(ingress)}}}),
    ):
        for name, obj in objects.items():
            notes = obj.get("metadata", {}).get("annotations") or {}
            ours = sorted(k for k in notes if k.startswith(OWNED_ANNOTATION_PREFIX))
            if ours:
                annotations[f"{kind}/{name}"] = ours
                problems.append(f"{kind} {name} still carries {', '.join(ours)}")
    if ingress.get(INGRESS_READ_TIMEOUT) != "60":
        problems.append(
            f"Ingress export's proxy-read-timeout is {ingress.get(INGRESS_READ_TIMEOUT)}, not 60"
        )
    for name, rules in httproute_rules.items():
        found = view.httproutes.get(name)
        for problem in demo_shift.rules_restored(found, rules):
            if not problem.startswith("it still carries"):  # counted with the annotations
                problems.append(f"HTTPRoute {name}: {problem}")
    for rule in operator_rules:
        problems.append(f"Cache Rule {rule.get('ref')} is still in the zone")
    for name in unproxied:
        problems.append(f"DNS record {name} is no longer proxied")
    return Restoration(deleted, selectors, hpa_min, annotations, operator_rules, problems)
