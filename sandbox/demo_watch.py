"""The demo's eyes on the cluster: one background thread reading the API about once a second.

Two things need the cluster's current state while the demo runs. The synthetic origin's
latency must follow the pods that really serve each route (the READY pods behind its
Service, or its Deployment, and the weights of its HTTPRoute), so that what the operator
does shows up in the P95 that Prometheus scrapes; and the live table, timeline and plots
need each route's status and the operator's Events. Both read the latest ``ClusterView``,
which this thread replaces whole on every poll (readers never see half an update). A
failed poll keeps the previous view, so a slow API server only makes the picture a second
older.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config

GROUP, VERSION, PLURAL = "timeoutbudget.io", "v1alpha1", "timeoutbudgets"
GATEWAY_GROUP, GATEWAY_VERSION = "gateway.networking.k8s.io", "v1"


@dataclass(frozen=True)
class ClusterView:
    at: float = 0.0
    """``time.monotonic()`` of the poll."""
    ready_pods: tuple[Mapping[str, str], ...] = ()
    """Labels of every Ready pod that is not being deleted."""
    deployments: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    services: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    hpas: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    budgets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    httproutes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def ready(self, labels: Mapping[str, str]) -> int:
        """Ready pods carrying all of ``labels``."""
        return sum(1 for pod in self.ready_pods if all(pod.get(k) == v for k, v in labels.items()))

    def selector(self, service: str | None) -> dict[str, str] | None:
        if service is None or service not in self.services:
            return None
        return dict(self.services[service].get("spec", {}).get("selector") or {})

    def spec_replicas(self, deployment: str) -> int:
        return int(self.deployments.get(deployment, {}).get("spec", {}).get("replicas") or 0)

    def hpa_min(self, hpa: str | None) -> int | None:
        if hpa is None or hpa not in self.hpas:
            return None
        return int(self.hpas[hpa].get("spec", {}).get("minReplicas", 1))

    def status(self, budget: str) -> Mapping[str, Any]:
        return self.budgets.get(budget, {}).get("status") or {}

    def spec(self, budget: str) -> Mapping[str, Any]:
        return self.budgets.get(budget, {}).get("spec") or {}


def _ready(pod: Mapping[str, Any]) -> bool:
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


class ClusterWatch:
    """Polls one namespace every ``period`` seconds in a daemon thread."""

    def __init__(self, kubeconfig: Path, namespace: str, period: float = 1.0) -> None:
        self.namespace = namespace
        self.period = period
        self._api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        self._core = client.CoreV1Api(self._api)
        self._apps = client.AppsV1Api(self._api)
        self._autoscaling = client.AutoscalingV2Api(self._api)
        self._custom = client.CustomObjectsApi(self._api)
        self._view = ClusterView()
        self._events: list[dict[str, Any]] = []
        self._seen_events: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-cluster-watch", daemon=True)
        self.errors = 0

    # -- reading ------------------------------------------------------------------------
    @property
    def view(self) -> ClusterView:
        return self._view

    def take_events(self) -> list[dict[str, Any]]:
        """Events about TimeoutBudgets seen since the last call, oldest first."""
        with self._lock:
            events, self._events = self._events, []
        return events

    def refresh(self) -> ClusterView:
        """Poll now, in the caller's thread, and return the (fresh, if it worked) view."""
        self.poll()
        return self._view

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> ClusterWatch:
        self.poll()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._api.close()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.poll()

    def poll(self) -> None:
        try:
            view, events = self._read()
        except Exception:  # the API server may be slow or going away: keep the last view
            self.errors += 1
            return
        with self._lock:
            self._view = view
            for event in events:
                uid = str(event.get("metadata", {}).get("uid"))
                if uid not in self._seen_events:
                    self._seen_events.add(uid)
                    self._events.append(event)

    def _list(self, call: Any) -> list[dict[str, Any]]:
        response = call(self.namespace, _preload_content=False, _request_timeout=5)
        items: list[dict[str, Any]] = json.loads(response.data)["items"]
        return items

    def _read(self) -> tuple[ClusterView, list[dict[str, Any]]]:
        pods = self._list(self._core.list_namespaced_pod)
        deployments = self._list(self._apps.list_namespaced_deployment)
        services = self._list(self._core.list_namespaced_service)
        hpas = self._list(self._autoscaling.list_namespaced_horizontal_pod_autoscaler)
        budgets = self._list(
            lambda ns, **kw: self._custom.list_namespaced_custom_object(
                GROUP, VERSION, ns, PLURAL, **kw
            )
        )
        httproutes = self._list(
            lambda ns, **kw: self._custom.list_namespaced_custom_object(
                GATEWAY_GROUP, GATEWAY_VERSION, ns, "httproutes", **kw
            )
        )
        events = [
            e
            for e in self._list(self._core.list_namespaced_event)
            if e.get("involvedObject", {}).get("kind") == "TimeoutBudget"
        ]
        events.sort(key=lambda e: str(e.get("firstTimestamp") or e.get("eventTime") or ""))
        view = ClusterView(
            at=time.monotonic(),
            ready_pods=tuple(
                dict(p.get("metadata", {}).get("labels") or {}) for p in pods if _ready(p)
            ),
            deployments={d["metadata"]["name"]: d for d in deployments},
            services={s["metadata"]["name"]: s for s in services},
            hpas={h["metadata"]["name"]: h for h in hpas},
            budgets={b["metadata"]["name"]: b for b in budgets},
            httproutes={h["metadata"]["name"]: h for h in httproutes},
        )
        return view, events
