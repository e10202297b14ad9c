"""Everything the demo runs, started in order and stopped in reverse, Ctrl-C included.

The demo's world is the real thing on loopback: the control plane (etcd, kube-apiserver,
controller-manager, scheduler, KWOK nodes), the Cloudflare API emulator serving one
Enterprise zone, the synthetic origin whose latency follows the load and the READY pods
behind each route, Prometheus scraping it, and the operator as its own process. ``World``
starts them with progress lines, drives the origin's load (``apply_load``), takes
Prometheus away and back, reads the edge from the emulator, and checks what deleting the
TimeoutBudgets leaves behind. The origin reports every request it serves to the emulated
edge, which answers 524 for those slower than the read timeout in force for them
(``edge_counts``).
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox import demo_restore, demo_shift, procutil
from sandbox import demo_scenario as sc
from sandbox.cloudflare_emulator import CloudflareEmulator
from sandbox.controlplane import ControlPlane, KubectlError
from sandbox.demo_restore import INGRESS_READ_TIMEOUT
from sandbox.demo_steps import Background, SetupFailed, wait_until
from sandbox.demo_timeline import Restoration
from sandbox.demo_watch import ClusterView, ClusterWatch
from sandbox.operator_process import OperatorProcess
from sandbox.origin_exporter import OriginExporter
from sandbox.prometheus import PrometheusServer
from timeout_budget.decide import rules as cache_rules

REPO = Path(__file__).resolve().parents[1]
MANIFESTS = Path(__file__).resolve().parent / "manifests" / "demo"
DNS_RECORDS = (
    ("api.example.com", "192.0.2.10"),
    ("search.example.com", "192.0.2.20"),
    ("export-direct.example.com", "192.0.2.11"),
    ("www.example.com", "192.0.2.30"),
)
"""Proxied A records of the zone (documentation addresses: nothing is ever sent there)."""


def announce(message: str) -> None:
    """A progress line of the demo's own, on stderr."""
    procutil.progress("demo", message)


NAMESPACE_MANIFEST = json.dumps(
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": sc.NAMESPACE}}
)


@dataclass
class World:
    workdir: Path
    scenario: sc.Scenario
    say: Callable[[str], None] = announce
    cp: ControlPlane | None = None
    emulator: CloudflareEmulator | None = None
    origin: OriginExporter | None = None
    prometheus: PrometheusServer | None = None
    watch: ClusterWatch | None = None
    operator: OperatorProcess | None = None
    _serving: dict[str, sc.Pool] = field(default_factory=dict)

    # -- start ------------------------------------------------------------------------
    @classmethod
    def start(
        cls, workdir: Path, scenario: sc.Scenario, say: Callable[[str], None] = announce
    ) -> World:
        world = cls(workdir=workdir, scenario=scenario, say=say)
        try:
            world._start()
        except BaseException as exc:
            why = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"failed: {exc}"
            say(f"set-up {why}; stopping what was started")
            world.stop()
            say("stopped; no process left behind")
            raise
        return world

    def _start(self) -> None:
        t0 = time.monotonic()
        self._start_origin()
        # Prometheus needs only the origin: it comes up while the control plane does.
        prometheus = Background(self._start_prometheus)
        self.say("starting the control plane (etcd, kube-apiserver, controllers, KWOK nodes)")
        self.cp = ControlPlane.start(workdir=self.workdir, nodes=3)
        cp = self.cp
        self.say("installing the CRDs and the demo namespace")
        self.kubectl_retrying("apply", "--server-side", "-f", str(REPO / "crds"))
        for crd in ("timeoutbudgets.timeoutbudget.io", "cloudflarezones.timeoutbudget.io"):
            cp.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
        self.kubectl_retrying("apply", "-f", "-", input_text=NAMESPACE_MANIFEST)
        wait_until(
            lambda: (
                cp.kubectl("get", "sa", "default", "-n", sc.NAMESPACE, check=False).returncode == 0
            ),
            30,
            "the namespace's default ServiceAccount",
        )
        self.say(
            "applying the origins: Deployments, Services, the search HPA, the export Ingress, "
            "the reports HTTPRoute"
        )
        self.kubectl_apply("origins.yaml")
        self.watch = ClusterWatch(cp.kubeconfig, sc.NAMESPACE, period=1.0).start()
        self._start_emulator()
        prometheus.join()
        self._start_operator()
        want = {pool.deployment: self._initial_replicas(pool) for r in self.scenario.routes
                for pool in r.pools}  # fmt: skip
        wait_until(self._pods_ready(want), 90, f"origin pods Ready on KWOK nodes {want}")
        self.say(
            "origin pods Ready on KWOK nodes: " + ", ".join(f"{k} {v}" for k, v in want.items())
        )
        self.apply_load(0.0, self.scenario.start_rps)  # traffic only once the pods serve it
        self._start_unbudgeted()
        self.say("applying the CloudflareZone (and its token Secret) and the TimeoutBudgets")
        self.kubectl_apply("zone.yaml")
        self.kubectl_apply("routes.yaml")
        names = [r.name for r in self.scenario.routes]
        wait_until(self._evaluated(names), 90, f"the operator's first reading of {names}")
        self._sync_chain()
        self.say(f"set-up done in {time.monotonic() - t0:.0f}s; every route has a P95 reading")

    def _sync_chain(self) -> None:
        """export's Ingress cuts requests at 60 s: shown, then kept in line (chain.sync)."""
        assert self.cp is not None
        wait_until(lambda: self._chain_condition("export") is not None, 60, "export's chain")
        self.say(f"export's timeout chain: {self._chain_condition('export')}")
        self.say("turning on chain.sync for export (Ingress export)")
        sync = {"spec": {"chain": {"sync": {"ingressName": "export"}}}}
        self.kubectl_retrying(
            "patch", "tb", "export", "-n", sc.NAMESPACE, "--type=merge", "-p", json.dumps(sync)
        )
        wait_until(lambda: self.ingress_read_timeout("export") == "361", 60, "the raised Ingress")
        wait_until(
            lambda: (self._chain_condition("export") or "").startswith("Consistent"),
            60,
            "a consistent chain for export",
        )
        self.say(
            "Ingress export's proxy-read-timeout is now 361 s (server-side apply, field "
            f"manager timeout-budget-operator): {self._chain_condition('export')}"
        )

    def _chain_condition(self, budget: str) -> str | None:
        assert self.cp is not None
        out = self.cp.kubectl("get", "tb", budget, "-n", sc.NAMESPACE, "-o", "json", check=False)
        if out.returncode != 0:
            return None
        for cond in json.loads(out.stdout).get("status", {}).get("conditions") or []:
            if cond.get("type") == "ChainConsistent":
                return f"{cond.get('reason')}: {cond.get('message')}"
        return None

    def ingress_annotations(self, name: str) -> dict[str, str] | None:
        assert self.cp is not None
        out = self.cp.kubectl("get", "ingress", name, "-n", sc.NAMESPACE, "-o", "json", check=False)
        if out.returncode != 0:
            return None
        notes: dict[str, str] = json.loads(out.stdout)["metadata"].get("annotations") or {}
        return notes

    def ingress_read_timeout(self, name: str) -> str | None:
        return (self.ingress_annotations(name) or {}).get(INGRESS_READ_TIMEOUT)

    def _start_emulator(self) -> None:
        self.emulator = CloudflareEmulator(token=sc.API_TOKEN).start()
        self.emulator.add_zone(
            sc.ZONE_ID,
            "enterprise",
            name=sc.ZONE_NAME,
            proxy_read_timeout=sc.ZONE_PROXY_READ_TIMEOUT,
        )
        for name, address in DNS_RECORDS:
            self.emulator.add_dns_record(sc.ZONE_ID, name, "A", address, proxied=True)
        self.emulator.traffic.delay_seconds = sc.ANALYTICS_DELAY_SECONDS
        # Whether a Cache Rule's read_timeout holds for a response bypass_by_default does
        # not store is NOT CONFIRMED (docs/edge-contract.md C5); the emulator is strict by
        # default. The operator's rules rely on the other answer, and the demo's origins
        # send no Cache-Control: the demo's edge takes that answer, and says so.
        self.emulator.bypass_by_default_keeps_read_timeout = True
        assert self.origin is not None
        self.origin.edge_url = self.emulator.admin_url
        self.say(
            f"Cloudflare API emulator on {self.emulator.base_url}: Enterprise zone "
            f"{sc.ZONE_NAME}, Proxy Read Timeout {sc.ZONE_PROXY_READ_TIMEOUT}s; the origin "
            f"reports its requests to the edge (524 past the read timeout in force; a Cache "
            f"Rule's read_timeout taken to hold for responses it does not store, NOT "
            f"CONFIRMED), analytics {sc.ANALYTICS_DELAY_SECONDS:g}s late"
        )

    def _start_origin(self) -> None:
        self.origin = OriginExporter(tick_seconds=0.25, replicas_for=self._replicas_for)
        self.apply_load(0.0, sc.NO_TRAFFIC)
        self.origin.start()
        self.say(f"synthetic origin serving /metrics on {self.origin.url}")

    def _start_unbudgeted(self) -> None:
        """A slow path no TimeoutBudget covers, on a proxied host of the zone."""
        assert self.origin is not None
        u = sc.UNBUDGETED
        self.origin.set_route(u.name, p95=u.p95, rps=u.rps, host=u.host, path=u.path,
                              sigma=u.sigma)  # fmt: skip
        self.say(f"{u.host}{u.path}: {u.about} (P95 {u.p95:g}s, {u.rps:g} req/s)")

    def _start_prometheus(self) -> None:
        assert self.origin is not None
        prom_dir = self.workdir / "prometheus"
        shutil.rmtree(prom_dir, ignore_errors=True)  # a previous run's data is not reused
        self.prometheus = PrometheusServer(workdir=prom_dir, quiet=True)
        self.prometheus.start(scrape_targets=[self.origin.target], scrape_interval="1s")
        self.prometheus.wait_targets_up(1, timeout=30)
        self.say(
            f"Prometheus {self.prometheus.version()} on {self.prometheus.url}, scraping every 1s"
        )

    def _start_operator(self) -> None:
        assert self.cp is not None
        assert self.prometheus is not None
        assert self.emulator is not None
        self.operator = OperatorProcess(
            self.cp,
            self.prometheus.url,
            [sc.NAMESPACE],
            log=self.cp.logs / "operator.log",
            interval=self.scenario.interval_seconds,
            extra_env={
                "TBO_OPERATOR_NAMESPACE": sc.NAMESPACE,
                "TBO_CLOUDFLARE_BASE_URL": self.emulator.base_url,
            },
        )
        self.say(
            f"operator started (pid {self.operator.pid}, a cycle every "
            f"{self.scenario.interval_seconds:g}s, log {self.operator.log})"
        )

    def kubectl_apply(self, manifest: str) -> None:
        self.kubectl_retrying("apply", "-n", sc.NAMESPACE, "-f", str(MANIFESTS / manifest))

    def kubectl_retrying(self, *args: str, input_text: str | None = None) -> None:
        """An idempotent kubectl call, retried a few times: a freshly started API server
        on a busy machine may refuse the first requests (e.g. while CRDs register)."""
        assert self.cp is not None
        for attempt in range(1, 5):
            try:
                self.cp.kubectl(*args, input_text=input_text)
                return
            except KubectlError as exc:
                if attempt == 4:
                    raise
                self.say(f"kubectl {args[0]} failed (attempt {attempt}), retrying: {exc.stderr}")
                time.sleep(attempt)

    def _initial_replicas(self, pool: sc.Pool) -> int:
        spec = self.view.deployments.get(pool.deployment, {}).get("spec", {})
        return int(spec.get("replicas", 1))

    def _pods_ready(self, want: Mapping[str, int]) -> Callable[[], bool]:
        pools = {p.deployment: p for r in self.scenario.routes for p in r.pools}

        def probe() -> bool:
            assert self.watch is not None
            view = self.watch.refresh()
            return all(view.ready(pools[name].labels) >= n for name, n in want.items())

        return probe

    def _evaluated(self, names: list[str]) -> Callable[[], bool]:
        def probe() -> bool:
            assert self.watch is not None
            assert self.operator is not None
            if not self.operator.alive():
                raise SetupFailed(
                    f"the operator exited; log {self.operator.log}:\n{self.operator.tail()}"
                )
            view = self.watch.refresh()
            return all(view.status(name).get("p95Seconds") is not None for name in names)

        return probe

    # -- the origin's load --------------------------------------------------------------
    @property
    def view(self) -> ClusterView:
        return self.watch.view if self.watch is not None else ClusterView()

    def _replicas_for(self, route: str) -> int:
        pool = self._serving.get(route)
        return self.view.ready(pool.labels) if pool is not None else 1

    def serving(self, route: sc.Route) -> sc.Pool:
        return route.pool_for(self.view.selector(route.service))

    def apply_load(self, t: float, rps: Mapping[str, float] | None = None) -> None:
        """Set each route's origin model for scenario time ``t``: its request rate, and the
        pool its Service sends it to (with that pool's capacity), or for a weighted route
        its split between its pools by its HTTPRoute's weights (``demo_shift``)."""
        assert self.origin is not None
        for route in self.scenario.routes:
            rate = rps[route.name] if rps is not None else self.scenario.rps_at(route.name, t)
            share = self.long_share(route)
            if share is not None:
                self._serving.update(demo_shift.set_split(self.origin, route, rate, share))
                continue
            pool = self.serving(route)
            self._serving[route.name] = pool
            self.origin.set_route(
                route.name,
                p95=pool.base_p95 or route.base_p95,
                rps=rate,
                host=route.host,
                path=route.path,
                capacity_rps_per_replica=pool.capacity_rps_per_replica,
                servers_per_replica=pool.servers_per_replica,
            )

    def model_p95(self, route: str) -> float:
        """The route's true P95; for a weighted route, that of its two pools' mixture."""
        assert self.origin is not None
        models = self.origin.models()
        keys = [k for k in (route, demo_shift.long_key(route)) if k in models]
        if len(keys) == 1:
            return self.origin.effective_p95(route)
        return demo_shift.mixture_p95([(models[k].rps, self.origin.effective_p95(k)) for k in keys])

    def long_share(self, route: sc.Route) -> int | None:
        """The percent of a weighted route's HTTPRoute rule on its long-running backend."""
        return demo_shift.long_share(self.view.httproutes, route)

    def httproute_rules(self) -> dict[str, list[dict[str, Any]]]:
        """Per weighted route's HTTPRoute, its rules as the manifest has them."""
        return demo_restore.manifest_rules(MANIFESTS / "origins.yaml", self.scenario.routes)

    # -- Prometheus outage --------------------------------------------------------------
    def prometheus_down(self) -> None:
        assert self.prometheus is not None
        self.prometheus.stop()

    def prometheus_up(self) -> None:
        assert self.prometheus is not None
        self.prometheus.start()

    # -- the edge -----------------------------------------------------------------------
    def edge_rule(self, route: str) -> dict[str, Any] | None:
        """The operator's Cache Rule for ``route`` in the emulator, if there is one."""
        if self.emulator is None:
            return None
        ref = cache_rules.rule_ref(sc.NAMESPACE, route)
        for rule in self.emulator.rules(sc.ZONE_ID):
            if rule.get("ref") == ref:
                return dict(rule)
        return None

    def edge_timeout(self, route: str) -> int | None:
        """The read timeout Cloudflare applies to ``route``: its rule's, else the zone's."""
        if self.emulator is None:
            return None
        rule = self.edge_rule(route)
        if rule is not None:
            seconds = (rule.get("action_parameters") or {}).get("read_timeout")
            if seconds is not None:
                return int(seconds)
        return int(self.emulator.setting(sc.ZONE_ID)["value"])

    def edge_counts(self, since: float | None = None) -> list[dict[str, Any]]:
        """What the edge answered, per second by host, path, method and status, read from
        the emulator's admin endpoint (not the GraphQL API: neither late nor budgeted)."""
        assert self.emulator is not None
        query = urllib.parse.urlencode({"windowSeconds": 1, **({"since": since} if since else {})})
        url = f"{self.emulator.admin_url}/edge-requests/summary?{query}"
        with urllib.request.urlopen(url, timeout=10) as answer:
            counts: list[dict[str, Any]] = json.loads(answer.read())["result"]["counts"]
        return counts

    def zone_status(self) -> dict[str, Any]:
        """The demo's CloudflareZone's status ({} when it cannot be read)."""
        assert self.cp is not None
        out = self.cp.kubectl(
            "get", "cloudflarezone", sc.ZONE_RESOURCE, "-n", sc.NAMESPACE, "-o", "json",
            check=False,
        )  # fmt: skip
        if out.returncode != 0:
            return {}
        status: dict[str, Any] = json.loads(out.stdout).get("status") or {}
        return status

    # -- deletion -----------------------------------------------------------------------
    def delete_budgets(self, timeout: float = 60.0) -> Restoration:
        """Delete every TimeoutBudget (the operator's finalizer runs) and check what stays."""
        assert self.cp is not None
        assert self.emulator is not None
        result = self.cp.kubectl(
            "delete", "timeoutbudgets", "--all", "-n", sc.NAMESPACE, f"--timeout={timeout:.0f}s",
            check=False,
        )  # fmt: skip
        view = self.watch.refresh() if self.watch is not None else ClusterView()
        operator_rules = [
            r
            for r in self.emulator.rules(sc.ZONE_ID)
            if str(r.get("description", "")).startswith(cache_rules.DESCRIPTION_PREFIX)
        ]
        return demo_restore.check(
            view,
            deleted=result.returncode == 0 and not view.budgets,
            not_deleted=", ".join(view.budgets) or result.stderr.strip(),
            ingress=self.ingress_annotations("export") or {},
            operator_rules=operator_rules,
            unproxied=[
                name
                for name, _ in DNS_RECORDS
                if not self.emulator.effectively_proxied(sc.ZONE_ID, name)
            ],
            httproute_rules=self.httproute_rules(),
        )

    # -- stop ---------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop everything that was started, in reverse order; never raises."""
        steps: list[tuple[str, Callable[[], None] | None]] = [
            ("operator", self.operator.stop if self.operator else None),
            ("cluster watch", self.watch.stop if self.watch else None),
            ("Prometheus", self.prometheus.stop if self.prometheus else None),
            ("origin", self.origin.stop if self.origin else None),
            ("Cloudflare emulator", self.emulator.stop if self.emulator else None),
            ("control plane", self.cp.stop if self.cp else None),
        ]
        for name, stop in steps:
            if stop is None:
                continue
            try:
                stop()
            except Exception as exc:  # keep going: the rest must still stop
                self.say(f"warning: stopping the {name} failed: {exc}")
        if self.prometheus is not None:
            shutil.rmtree(self.prometheus.data_dir, ignore_errors=True)
        self.operator = self.watch = self.prometheus = self.origin = self.emulator = None
        self.cp = None
