"""Objects the operator does not own, planted next to its own, to prove it leaves them alone.

``Foreign.plant`` creates, in a namespace, a Deployment, a Service (with someone else's
annotations) and an HPA no TimeoutBudget names, and, in an emulated Cloudflare zone, Cache
Rules and DNS records of other tools (external-dns style). ``snapshot`` reads them back in
a comparable form: what a person or another controller set (spec, labels, annotations, the
rule and record bodies), not what servers maintain (resourceVersion, managedFields,
status, timestamps). A scenario compares the snapshot before and after.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sandbox.cloudflare_emulator import CloudflareEmulator
from sandbox.controlplane import ControlPlane
from tests.support import kube

FOREIGN_RULES: list[dict[str, Any]] = [
    {
        "ref": "team_cache_images",
        "description": "images, managed by hand",
        "expression": '(http.host eq "img.example.com")',
        "action": "set_cache_settings",
        "action_parameters": {"cache": False},
        "enabled": True,
    },
    {
        "ref": "terraform_reports_timeout",
        "description": "managed by terraform",
        "expression": '(http.host eq "reports.example.com")',
        "action": "set_cache_settings",
        "action_parameters": {"cache": True, "read_timeout": 900},
        "enabled": True,
    },
]
FOREIGN_RECORDS: list[tuple[str, str, str, bool]] = [
    ("www.example.com", "A", "192.0.2.10", True),
    ("www.example.com", "AAAA", "2001:db8::10", True),
    ("img.example.com", "CNAME", "images.cdn.example.net", True),
    ("mail.example.com", "MX", "mx.example.net", False),
]
SERVER_FIELDS = ("id", "version", "last_updated", "created_on", "modified_on", "meta")
CONTROLLER_ANNOTATIONS = (
    "deployment.kubernetes.io/",  # the Deployment controller's revision
    "autoscaling.alpha.kubernetes.io/",
    "kubectl.kubernetes.io/last-applied-configuration",
)
"""Annotations Kubernetes itself maintains; every other one (someone's) is compared."""


def _kube_object(kind: str, name: str, spec: dict[str, Any], **meta: Any) -> dict[str, Any]:
    api = {"Deployment": "apps/v1", "Service": "v1", "HorizontalPodAutoscaler": "autoscaling/v2"}
    return {
        "apiVersion": api[kind],
        "kind": kind,
        "metadata": {"name": name, **meta},
        "spec": spec,
    }


def foreign_kube_objects() -> list[dict[str, Any]]:
    labels = {"app": "foreign-api"}
    return [
        _kube_object(
            "Deployment",
            "foreign-api",
            {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "api", "image": "registry.local/api:7"}]},
                },
            },
            annotations={"team.example.com/owner": "payments"},
        ),
        _kube_object(
            "Service",
            "foreign-svc",
            {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
            annotations={"external-dns.alpha.kubernetes.io/hostname": "www.example.com"},
        ),
        _kube_object(
            "HorizontalPodAutoscaler",
            "foreign-hpa",
            {
                # Targets a Deployment that does not exist, so the HPA controller never
                # moves anything and the snapshot stays comparable.
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "batch"},
                "minReplicas": 2,
                "maxReplicas": 4,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 60},
                        },
                    }
                ],
            },
        ),
    ]


def _normal_kube(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata", {})
    notes = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if not k.startswith(CONTROLLER_ANNOTATIONS)
    }
    return {
        "kind": obj.get("kind"),
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "generation": meta.get("generation"),
        "labels": meta.get("labels") or {},
        "annotations": notes,
        "spec": obj.get("spec"),
    }


def _normal_cf(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in SERVER_FIELDS}


@dataclass
class Foreign:
    cp: ControlPlane
    namespace: str
    emulator: CloudflareEmulator | None = None
    zone_id: str | None = None
    before: dict[str, Any] = field(default_factory=dict)
    checks: int = 0

    def plant(self) -> Foreign:
        for obj in foreign_kube_objects():
            self.cp.kubectl("apply", "-n", self.namespace, "-f", "-", input_text=json.dumps(obj))
        if self.emulator is not None and self.zone_id is not None:
            self.emulator.add_rules(self.zone_id, FOREIGN_RULES)
            for name, rtype, content, proxied in FOREIGN_RECORDS:
                self.emulator.add_dns_record(
                    self.zone_id, name, rtype, content, proxied=proxied, comment="external-dns"
                )
        self.before = self.snapshot()
        return self

    def snapshot(self) -> dict[str, Any]:
        shot: dict[str, Any] = {}
        for kind, name in (
            ("deployment", "foreign-api"),
            ("service", "foreign-svc"),
            ("hpa", "foreign-hpa"),
        ):
            shot[f"{kind}/{name}"] = _normal_kube(
                kube.get_json(self.cp, kind, name, "-n", self.namespace)
            )
        if self.emulator is not None and self.zone_id is not None:
            refs = {r["ref"] for r in FOREIGN_RULES}
            rules = [r for r in self.emulator.rules(self.zone_id) if r.get("ref") in refs]
            shot["cache rules"] = [_normal_cf(r) for r in rules]
            names = {r[0] for r in FOREIGN_RECORDS}
            records = [
                _normal_cf(r)
                for r in self.emulator.dns_records(self.zone_id)
                if r.get("name") in names
            ]
            shot["dns records"] = sorted(records, key=lambda r: json.dumps(r, sort_keys=True))
        return shot

    def assert_unchanged(self) -> None:
        after = self.snapshot()
        changed = [k for k in self.before if self.before[k] != after.get(k)]
        assert not changed, f"foreign objects changed: {changed}: {after}"
        self.checks += 1

    def inventory(self) -> str:
        parts = ["Deployment foreign-api", "Service foreign-svc", "HPA foreign-hpa"]
        if "cache rules" in self.before:
            parts.append(f"{len(self.before['cache rules'])} Cache Rules of other tools")
            parts.append(f"{len(self.before['dns records'])} DNS records (external-dns)")
        return ", ".join(parts)
