"""The Kubernetes API misbehaving: kube-apiserver restarted, and other writers racing the
operator on the objects it changes.

* **kube-apiserver restarted** (etcd kept, same port and certificates): the operator's
  watches break and its cycles fail while it is down; afterwards the watches resume (a
  TimeoutBudget created after the restart is acted on) and the loop goes on (an existing
  route that becomes at risk is scaled).
* **Concurrent writers**: while the operator raises an HPA's ``minReplicas``, reroutes a
  Service and scales a Deployment, a writer thread rewrites the same three objects in a tight
  loop with ``resourceVersion``-conditioned updates (PUT), the way controllers do. The
  writer gets 409 Conflicts and retries; the operator cannot get any, because every write it
  makes is a merge or JSON patch without a ``resourceVersion`` (the API server applies it to
  the current object). Checked: both sides' changes are all there at the end, nothing lost.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from sandbox.controlplane import ControlPlane
from tests.reliability import fixtures
from tests.reliability.helpers import Scene
from tests.support import kube
from tests.support.objects import (
    HOST,
    budget,
    deployment,
    hpa,
    service,
)

pytestmark = pytest.mark.integration

NS_PREFIX = "rel-kube"
AREA = "Faults: Kubernetes API"
LONG = {"pool": "long-running"}
COUNTER = "writer.example.com/counter"


foreign = fixtures.foreign(
    "Kubernetes API module: objects no route names, across an API server restart and a "
    "concurrent writer"
)
operator = fixtures.operator("rel-kube")


def test_apiserver_restart_watches_resume_and_the_loop_goes_on(scene: Scene) -> None:
    with scene.case(
        "kube-apiserver stopped and started again (etcd kept, same port and certificates)",
        "operator process stays up; after the restart an existing route that becomes at risk "
        "is scaled (the loop goes on) and a TimeoutBudget created after the restart is acted "
        "on (its watch resumed)",
    ) as row:
        scene.origin.set_route("before", p95=20.0, rps=40, host=HOST)
        scene.apply(deployment("before", 1), budget("before", "before"))
        kube.wait_for(lambda: scene.status("before").get("state") == "Healthy", 60, "up")
        down_at = time.monotonic()
        scene.cp.stop_apiserver()
        time.sleep(3)  # a few failed cycles and broken watches
        assert scene.operator.alive()
        scene.cp.start_apiserver()
        outage = time.monotonic() - down_at
        up_at = time.monotonic()
        scene.origin.set_route("before", p95=110.0, rps=40, host=HOST)
        kube.wait_for(lambda: scene.replicas("before") >= 2, 90, "the loop scaling again")
        loop_back = time.monotonic() - up_at
        scene.origin.set_route("after", p95=110.0, rps=40, host=HOST)
        scene.apply(deployment("after", 1), budget("after", "after"))
        kube.wait_for(lambda: scene.replicas("after") >= 2, 90, "the new route acted on")
        new_route = time.monotonic() - up_at
        assert scene.operator.alive()
        refused = sum("Connection refused" in line for line in scene.operator.output().splitlines())
        row.did = (
            f"API server down {outage:.0f} s: {refused} 'Connection refused' log lines (watches, "
            f"cycles, status writes retried), no exit; after it was back: existing route scaled "
            f"{loop_back:.0f} s later, a route "
            f"created after the restart scaled {new_route:.0f} s after it"
        )


@dataclass
class Writer:
    """Rewrites objects with resourceVersion-conditioned PUTs until stopped: one thread per
    object, each holding its read for ``GAP`` seconds before writing it back, so a write by
    anyone else (the operator's few) lands inside that gap nearly every time (with one
    thread for all three objects, each sat in a 10 ms gap a third of the time or less, and
    the control below, that the writer did race someone, failed in one CI run)."""

    GAP = 0.05

    cp: ControlPlane
    ns: str
    targets: list[tuple[str, str]]
    conflicts: int = 0
    writes: dict[tuple[str, str], int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        api = kubernetes.config.new_client_from_config(config_file=str(self.cp.kubeconfig))
        self.apps = kubernetes.client.AppsV1Api(api)
        self.core = kubernetes.client.CoreV1Api(api)
        self.autoscaling = kubernetes.client.AutoscalingV2Api(api)
        self._lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._run, args=(target,), daemon=True)
            for target in self.targets
        ]

    def _calls(self, kind: str) -> tuple[Any, Any]:
        if kind == "deployment":
            return self.apps.read_namespaced_deployment, self.apps.replace_namespaced_deployment
        if kind == "service":
            return self.core.read_namespaced_service, self.core.replace_namespaced_service
        return (
            self.autoscaling.read_namespaced_horizontal_pod_autoscaler,
            self.autoscaling.replace_namespaced_horizontal_pod_autoscaler,
        )

    def _run(self, target: tuple[str, str]) -> None:
        read, replace = self._calls(target[0])
        while not self._stop.is_set():
            count = self.writes.get(target, 0) + 1
            obj = read(target[1], self.ns)
            time.sleep(self.GAP)  # a controller's read-modify-write gap: others write meanwhile
            obj.metadata.annotations = {**(obj.metadata.annotations or {}), COUNTER: str(count)}
            try:
                replace(target[1], self.ns, obj)
            except ApiException as exc:
                with self._lock:
                    if exc.status == 409:
                        self.conflicts += 1
                    else:
                        self.errors.append(f"{exc.status} {exc.reason}")
                continue
            self.writes[target] = count

    def __enter__(self) -> Writer:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self.threads:
            thread.join(timeout=10)


def test_concurrent_writers_lose_nothing(scene: Scene) -> None:
    with scene.case(
        "Conflicts: a writer thread rewrites the Deployment, the HPA and the Service the "
        "operator is changing, in a tight loop of resourceVersion-conditioned PUTs",
        "the operator's scale (Deployment), minReplicas raise (HPA) and reroute (Service), and "
        "their undo, all land; the writer's every successful write is still there (its "
        "counter annotation); the operator logs no failed action",
    ) as row:
        reroute = {
            "serviceName": "hot-hpa",
            "longRunningSelector": LONG,
            "afterEvaluations": 1,
            "recoverySeconds": 3,
        }
        with_hpa = budget("hot-hpa", "hot-hpa", reroute=reroute)
        with_hpa["spec"]["origin"]["maxReplicas"] = 2
        plain = budget("hot-dep", "hot-dep")
        plain["spec"]["origin"]["maxReplicas"] = 2
        scene.apply(
            deployment("hot-hpa", 1), hpa("hot-hpa"), service("hot-hpa", {"app": "hot-hpa"})
        )
        scene.apply(deployment("hot-dep", 1))
        targets = [
            ("deployment", "hot-dep"),
            ("horizontalpodautoscaler", "hot-hpa"),
            ("service", "hot-hpa"),
        ]
        log_mark = len(scene.operator.output())

        def hpa_min() -> int:
            return int(
                kube.get_json(scene.cp, "hpa", "hot-hpa", "-n", scene.ns)["spec"]["minReplicas"]
            )

        with Writer(scene.cp, scene.ns, targets) as writer:
            for name in ("hot-hpa", "hot-dep"):
                scene.origin.set_route(name, p95=110.0, rps=40, host=HOST)
            scene.apply(with_hpa, plain)
            kube.wait_for(lambda: hpa_min() == 2, 60, "HPA minReplicas raised")
            kube.wait_for(lambda: scene.replicas("hot-dep") == 2, 60, "Deployment scaled")
            kube.wait_for(lambda: scene.selector("hot-hpa") == LONG, 60, "Service rerouted")
            for name in ("hot-hpa", "hot-dep"):
                scene.origin.set_route(name, p95=20.0, rps=40, host=HOST)
            kube.wait_for(
                lambda: scene.selector("hot-hpa") == {"app": "hot-hpa"}, 60, "reroute undone"
            )
            kube.wait_for(lambda: hpa_min() == 1, 60, "HPA minReplicas restored")
            kube.wait_for(lambda: scene.replicas("hot-dep") == 1, 60, "scaled back")
        assert writer.conflicts > 0, "the writer never raced anyone: no test"
        assert not writer.errors, writer.errors
        for kind, name in targets:
            notes = scene.annotations(kind, name)
            assert notes[COUNTER] == str(writer.writes[(kind, name)]), (kind, name)
            assert not {k for k in notes if k.startswith("timeoutbudget.io/")}, notes
        lines = scene.operator.output()[log_mark:].splitlines()
        failed = [x for x in lines if x.startswith("route ") and ("failed" in x or "409" in x)]
        assert not failed, failed
        row.did = (
            f"scaled hot-dep 1 → 2 → 1, raised and restored hot-hpa's minReplicas 1 → 2 → 1, "
            f"rerouted and restored Service hot-hpa, with no failed action and no 409 in its "
            f"log, while the writer made {sum(writer.writes.values())} updates and got "
            f"{writer.conflicts} 409 Conflicts (retried); every counter annotation intact"
        )
