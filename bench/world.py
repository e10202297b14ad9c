"""The benchmark's world: N routes on the real sandbox, and the reaction routes.

* Kubernetes: the sandbox's control plane (etcd, kube-apiserver, KCM, scheduler, KWOK),
  the CRDs, ``namespaces`` namespaces ``bench-00`` ... holding N ``TimeoutBudget`` s and N
  origin Deployments (route ``i`` lives in ``bench-{i % namespaces}``).
* Pods: with ``pods="running"`` every origin Deployment has one replica and its pod runs on
  a KWOK node; with ``pods="none"`` the Deployments are created ``paused`` (the deployment
  controller then makes no ReplicaSet and no pod, yet ``spec.replicas`` and the ``scale``
  subresource behave as usual, so every scale the operator makes is a real write). The
  default is ``running`` up to 1,000 routes and ``none`` above: 10,000 KWOK pods cost the
  controllers minutes of CPU on two cores and tell nothing about the operator, which reads
  Deployments, never pods (``status.replicas`` in its status then shows 0).
* Latency: a bulk exporter process (``bench.exporter``) serving N route histograms, scraped
  by the sandbox's Prometheus every ``scrape_interval`` (15 s, a production default); the
  reaction routes on a small in-process exporter scraped every second.
* Cloudflare: one emulated Enterprise zone; its ``CloudflareZone`` lives in ``bench-00`` and
  the routes of that namespace sync their edge settings through it (a zone is synced through
  exactly one ``CloudflareZone``, and a route references a zone in its own namespace).

Route models (by ``i % 100``): 50 and 13 at risk (P95 100 s and 105 s for a 120 s budget,
at-risk line 96 s; those with ``i % 100 == 50`` are in ``bench-00`` and, at max replicas, ask
for a Cache Rule), 21 in the hysteresis band (80 s), 33 without traffic (NoData), all others
healthy (P95 1..50 s).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.cloudflare_emulator import CloudflareEmulator
from sandbox.controlplane import ControlPlane
from sandbox.origin_exporter import OriginExporter
from sandbox.prometheus import PrometheusServer

REPO = Path(__file__).resolve().parents[1]
METRIC = "http_request_duration_seconds"
BUDGET_SECONDS = 120
AT_RISK_RATIO = 0.8
RECOVER_RATIO = 0.6
AT_RISK_LINE = BUDGET_SECONDS * AT_RISK_RATIO
ZONE_ID = "8f14e45fceea167a5a36dedd4bea2543"
ZONE_NAME = "example-com"
CF_TOKEN = "bench-cloudflare-token"  # noqa: S105 - the emulator's, on loopback only
REACT_NAMESPACE = "bench-react"
REACT_HOST = "react.example.com"
REACT_BASE_P95 = 5.0
REACT_HIGH_P95 = 400.0
OPERATOR_NAMESPACE = "default"


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class RouteModel:
    index: int
    route: str
    host: str
    p95: float
    rps: float
    kind: str


def route_model(i: int, rps: float = 1.0, namespaces: int = 50) -> RouteModel:
    name = route_name(i)
    host = f"api-{i % namespaces:02d}.example.com"
    kind = {50: "at-risk", 13: "at-risk", 21: "band", 33: "no-traffic"}.get(i % 100, "healthy")
    p95 = {50: 100.0, 13: 105.0, 21: 80.0, 33: 1.0}.get(i % 100, 1.0 + (i * 7) % 50)
    return RouteModel(i, name, host, p95, 0.0 if kind == "no-traffic" else rps, kind)


def route_name(i: int) -> str:
    return f"route-{i:05d}"


def namespace_of(i: int, namespaces: int) -> str:
    return f"bench-{i % namespaces:02d}"


def budget(
    name: str, route: str, host: str, window: str, *, edge: bool, cooldown: int = 60
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "route": {"host": host, "pathPrefix": f"/{route}"},
        "budget": {
            "timeoutSeconds": BUDGET_SECONDS,
            "atRiskRatio": AT_RISK_RATIO,
            "recoverRatio": RECOVER_RATIO,
        },
        "latency": {"metric": METRIC, "selector": {"route": route}, "window": window},
        "origin": {
            "deploymentName": name,
            "minReplicas": 1,
            "maxReplicas": 3,
            "scaleUpStep": 1,
            "scaleUpCooldownSeconds": cooldown,
        },
    }
    if edge:
        spec["edge"] = {"zoneRef": {"name": ZONE_NAME}}
    return {
        "apiVersion": "timeoutbudget.io/v1alpha1",
        "kind": "TimeoutBudget",
        "metadata": {"name": name},
        "spec": spec,
    }


def deployment(name: str, paused: bool) -> dict[str, Any]:
    labels = {"app": name}
    spec: dict[str, Any] = {
        "replicas": 1,
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "origin", "image": "registry.local/origin:1"}]},
        },
    }
    if paused:
        spec["paused"] = True
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}


class BenchPrometheus(PrometheusServer):
    """The sandbox's Prometheus with two scrape jobs: the bulk routes and the reaction routes;
    it logs every query it runs with its own timings to ``query_log``
    (``measure.QueryLog``)."""

    jobs: dict[str, tuple[list[str], str]]

    @property
    def query_log(self) -> Path:
        assert self.workdir is not None  # set in __post_init__
        return self.workdir / "queries.jsonl"

    def write_config(self, scrape_targets: Sequence[str], scrape_interval: str = "1s") -> None:
        jobs = getattr(self, "jobs", {"origin": (list(scrape_targets), scrape_interval)})
        config = {
            "global": {
                "scrape_interval": "15s",
                "evaluation_interval": "15s",
                "query_log_file": str(self.query_log),
            },
            "scrape_configs": [
                {
                    "job_name": name,
                    "scrape_interval": interval,
                    "scrape_timeout": interval,
                    "static_configs": [{"targets": targets}],
                }
                for name, (targets, interval) in jobs.items()
            ],
        }
        self.config_path.write_text(json.dumps(config, indent=2) + "\n")


@dataclass
class World:
    """Everything one benchmark size runs on; ``close()`` stops all of it."""

    routes: int
    namespaces: int
    window: str
    pods: str
    workdir: Path
    rps: float = 1.0
    react_routes: int = 6
    scrape_interval: str = "15s"
    cp: ControlPlane | None = None
    prometheus: BenchPrometheus | None = None
    emulator: CloudflareEmulator | None = None
    react_exporter: OriginExporter | None = None
    bulk_exporter: subprocess.Popen[str] | None = None
    bulk_port: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    # ------------------------------------------------------------------ names
    @property
    def paused(self) -> bool:
        return self.pods == "none"

    def bench_namespaces(self) -> list[str]:
        return [f"bench-{n:02d}" for n in range(min(self.namespaces, self.routes))]

    def route_objects(self) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
        for i in range(self.routes):
            model = route_model(i, self.rps, self.namespaces)
            ns = namespace_of(i, self.namespaces)
            edge = ns == "bench-00"
            name = model.route
            yield (
                ns,
                deployment(name, self.paused),
                budget(name, name, model.host, self.window, edge=edge),
            )

    def react_names(self) -> list[str]:
        return [f"react-{k}" for k in range(self.react_routes)]

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> World:
        t0 = time.monotonic()
        running_pods = (self.routes if not self.paused else 0) + self.react_routes * 3
        nodes = max(3, math.ceil((running_pods + 60) / 100))
        progress(f"starting the control plane ({nodes} KWOK nodes)")
        self.cp = ControlPlane.start(workdir=self.workdir / "cp", nodes=nodes)
        self.cp.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        for crd in ("timeoutbudgets.timeoutbudget.io", "cloudflarezones.timeoutbudget.io"):
            self.cp.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
        self.timings["control_plane_seconds"] = time.monotonic() - t0

        t = time.monotonic()
        progress(f"starting the bulk exporter ({self.routes} routes) and Prometheus")
        self.bulk_exporter = subprocess.Popen(
            [
                *(sys.executable, "-m", "bench.exporter"),
                *("--routes", str(self.routes), "--rps", str(self.rps)),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.bulk_exporter.stdout is not None
        self.bulk_port = int(self.bulk_exporter.stdout.readline().strip())
        self.react_exporter = OriginExporter(tick_seconds=0.25)
        for name in self.react_names():
            self.react_exporter.set_route(name, p95=REACT_BASE_P95, rps=20, host=REACT_HOST)
        self.react_exporter.start()
        self.prometheus = BenchPrometheus(workdir=self.workdir / "prometheus", quiet=True)
        self.prometheus.jobs = {
            "origin": ([f"127.0.0.1:{self.bulk_port}"], self.scrape_interval),
            "react": ([self.react_exporter.target], "1s"),
        }
        self.prometheus.start(ready_timeout=120)
        self.emulator = CloudflareEmulator(token=CF_TOKEN)
        self.emulator.start()
        self.emulator.add_zone(ZONE_ID, "enterprise", name="example.com", proxy_read_timeout=120)
        self.timings["latency_sources_seconds"] = time.monotonic() - t
        return self

    def close(self) -> None:
        if self.emulator is not None:
            self.emulator.stop()
        if self.prometheus is not None:
            self.prometheus.stop()
        if self.react_exporter is not None:
            self.react_exporter.stop()
        if self.bulk_exporter is not None and self.bulk_exporter.poll() is None:
            self.bulk_exporter.terminate()
            try:
                self.bulk_exporter.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.bulk_exporter.kill()
        if self.cp is not None:
            self.cp.stop()

    # ------------------------------------------------------------------ objects
    def api(self) -> Any:
        import kubernetes

        assert self.cp is not None
        config = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(
            config_file=str(self.cp.kubeconfig), client_configuration=config
        )
        config.connection_pool_maxsize = 24
        return kubernetes.client.ApiClient(configuration=config)

    def create_objects(self, deadline: float) -> None:
        """Namespaces, the zone, N Deployments and N TimeoutBudgets, 12 requests in flight."""
        import kubernetes

        t = time.monotonic()
        api = self.api()
        core = kubernetes.client.CoreV1Api(api)
        apps = kubernetes.client.AppsV1Api(api)
        custom = kubernetes.client.CustomObjectsApi(api)
        for ns in [*self.bench_namespaces(), REACT_NAMESPACE]:
            meta = kubernetes.client.V1ObjectMeta(name=ns)
            core.create_namespace(kubernetes.client.V1Namespace(metadata=meta))
        secret = kubernetes.client.V1Secret(
            metadata=kubernetes.client.V1ObjectMeta(name="cf"), string_data={"token": CF_TOKEN}
        )
        core.create_namespaced_secret("bench-00", secret)
        zone = {
            "apiVersion": "timeoutbudget.io/v1alpha1",
            "kind": "CloudflareZone",
            "metadata": {"name": ZONE_NAME},
            "spec": {"zoneId": ZONE_ID, "apiTokenSecretRef": {"name": "cf"}},
        }
        custom.create_namespaced_custom_object(
            "timeoutbudget.io", "v1alpha1", "bench-00", "cloudflarezones", zone
        )

        def create(item: tuple[str, Any, dict[str, Any]]) -> None:
            ns, dep, tb = item  # the Deployment as a manifest: the client sends a dict as is
            if time.monotonic() > deadline:
                raise TimeoutError("creating the benchmark's objects ran out of time")
            apps.create_namespaced_deployment(ns, dep, _preload_content=False)
            custom.create_namespaced_custom_object(
                "timeoutbudget.io", "v1alpha1", ns, "timeoutbudgets", tb, _preload_content=False
            )

        react = [
            (
                REACT_NAMESPACE,
                deployment(name, paused=False),
                budget(name, name, REACT_HOST, self.window, edge=False, cooldown=0),
            )
            for name in self.react_names()
        ]
        total = self.routes + len(react)
        done = 0
        step = max(100, total // 10)
        items = [*react, *self.route_objects()]
        with ThreadPoolExecutor(max_workers=12) as pool:
            for start in range(0, total, 240):  # in slices, so running out of time stops soon
                for _ in pool.map(create, items[start : start + 240]):
                    done += 1
                    if done % step == 0 or done == total:
                        rate = done / (time.monotonic() - t)
                        progress(
                            f"created {done}/{total} routes (Deployment + TimeoutBudget), "
                            f"{rate:.0f}/s"
                        )
        api.close()
        self.timings["create_objects_seconds"] = time.monotonic() - t

    def wait_pods(self, deadline: float, report: Callable[[str], None] = progress) -> int:
        """Wait (bounded) until the origin pods run; returns how many run."""
        import kubernetes

        want = (0 if self.paused else self.routes) + self.react_routes
        t = time.monotonic()
        api = self.api()
        core = kubernetes.client.CoreV1Api(api)
        running = 0
        last = 0.0
        while time.monotonic() < deadline:
            raw: Any = core.list_pod_for_all_namespaces(
                field_selector="status.phase=Running", _preload_content=False
            )
            running = len(json.loads(raw.data)["items"])
            if running >= want:
                break
            if time.monotonic() - last > 15:
                report(f"{running}/{want} origin pods running on KWOK nodes")
                last = time.monotonic()
            time.sleep(3)
        api.close()
        self.timings["pods_running_seconds"] = time.monotonic() - t
        report(f"{running}/{want} origin pods running")
        return running
