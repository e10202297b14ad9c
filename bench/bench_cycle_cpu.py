"""The operator's own CPU per cycle, without any server: where a cycle's time goes
once the Prometheus and API-server answers are in.

The engine runs unchanged on N routes shaped like the main benchmark's (``bench.world``);
only its three outside parts are in-memory stand-ins that answer at once: the latency
source (each route's modelled P95), the Kubernetes seam (namespace lists, and writes that
land in the routes' status the way the watch would bring them back) and the Event sink.
So every second measured here is the operator's own Python work. It prints the wall
time of each cycle, the time per route, the writes, and the top functions by cumulative
time (cProfile) of one steady-state cycle.

    .venv/bin/python -m bench.bench_cycle_cpu --routes 10000
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import cProfile
import io
import json
import pstats
import sys
import time
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from prometheus_client import CollectorRegistry

from bench import world
from timeout_budget.clients.kube import Fields
from timeout_budget.cycle import Engine, RouteSnapshot
from timeout_budget.cycle.ports import AnswersAtOnce
from timeout_budget.model.observation import LatencyObservation
from timeout_budget.model.spec import RouteKey, TimeoutBudgetSpec, route_key
from timeout_budget.report.metrics import OperatorMetrics


class Cluster:
    """Namespace lists and writes, in memory (counts every call)."""

    def __init__(self, routes: int, namespaces: int) -> None:
        self.deployments: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self.status: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: dict[str, int] = defaultdict(int)
        for i in range(routes):
            name, ns = world.route_name(i), world.namespace_of(i, namespaces)
            dep = world.deployment(name, paused=True)
            dep["metadata"].update(namespace=ns, resourceVersion="1", annotations={})
            dep["status"] = {"readyReplicas": 1}
            self.deployments[ns][name] = dep

    async def list_deployments(
        self, namespace: str, fields: Fields | None = None
    ) -> list[dict[str, Any]]:
        self.calls["list"] += 1
        # The objects themselves, as the watch-fed copies hand them out: a write replaces
        # an object (below), so an unchanged one is the very same object next cycle.
        return list(self.deployments[namespace].values())

    async def list_hpas(self, namespace: str, fields: Fields | None = None) -> list[dict[str, Any]]:
        self.calls["list"] += 1
        return []

    async def list_services(
        self, namespace: str, fields: Fields | None = None
    ) -> list[dict[str, Any]]:
        self.calls["list"] += 1
        return []

    async def list_ingresses(
        self, namespace: str, fields: Fields | None = None
    ) -> list[dict[str, Any]]:
        self.calls["list"] += 1
        return []

    async def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        self.calls["scale"] += 1
        changed = copy.deepcopy(self.deployments[namespace][name])
        changed["spec"]["replicas"] = replicas
        self.deployments[namespace][name] = changed

    async def patch_deployment_metadata(
        self, namespace: str, name: str, annotations: Mapping[str, str | None]
    ) -> None:
        self.calls["patch metadata"] += 1
        changed = copy.deepcopy(self.deployments[namespace][name])
        self.deployments[namespace][name] = changed
        notes = changed["metadata"]["annotations"]
        for key, value in annotations.items():
            if value is None:
                notes.pop(key, None)
            else:
                notes[key] = value

    async def patch_budget_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.calls["status patch"] += 1
        current = self.status.setdefault((namespace, name), {})
        _merge(current, status)


def _merge(into: dict[str, Any], patch: Mapping[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            into.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


class Latency(AnswersAtOnce):
    def __init__(self, p95: Mapping[RouteKey, float | None]) -> None:
        self.p95 = p95

    async def observe(
        self, routes: Mapping[RouteKey, TimeoutBudgetSpec], at: float | None = None
    ) -> Mapping[RouteKey, LatencyObservation]:
        out = {}
        for key in routes:
            value = self.p95.get(key)
            out[key] = (
                LatencyObservation.no_data()
                if value is None
                else LatencyObservation.value(value, top_bucket_seconds=6000.0)
            )
        return out


async def _no_event(ref: Mapping[str, Any], kind: str, reason: str, message: str) -> None:
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--routes", type=int, default=10000)
    parser.add_argument("--namespaces", type=int, default=50)
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--interval", type=float, default=15.0, help="simulated seconds per cycle")
    parser.add_argument("--sort", default="cumulative", help="cProfile sort key (tottime, ...)")
    args = parser.parse_args()

    cluster = Cluster(args.routes, args.namespaces)
    simulated = [time.time()]  # the engine's clock: one interval further each cycle
    specs: dict[tuple[str, str], dict[str, Any]] = {}
    p95: dict[RouteKey, float | None] = {}
    for i in range(args.routes):
        model = world.route_model(i, 1.0, args.namespaces)
        ns = world.namespace_of(i, args.namespaces)
        spec = world.budget(model.route, model.route, model.host, "1m", edge=False)["spec"]
        specs[(ns, model.route)] = spec
        p95[route_key(ns, model.route)] = None if model.kind == "no-traffic" else model.p95
    engine = Engine(
        kube=cluster,  # type: ignore[arg-type]  # the in-memory stand-in
        latency=Latency(p95),
        post_event=_no_event,
        metrics=OperatorMetrics(registry=CollectorRegistry()),
        clock=lambda: simulated[0],
    )

    index: dict[tuple[str, str], tuple[str, RouteSnapshot]] = {}

    def snapshots() -> list[RouteSnapshot]:
        """Like kopf's index: an entry is replaced only when its object changed."""
        out = []
        for (ns, name), spec in specs.items():
            status = cluster.status.get((ns, name), {})
            text = json.dumps(status, sort_keys=True)
            known = index.get((ns, name))
            if known is None or known[0] != text:
                snap = RouteSnapshot(ns, name, f"uid-{ns}-{name}", 1, spec, json.loads(text))
                index[(ns, name)] = known = (text, snap)
            out.append(known[1])
        return out

    print(f"{args.routes} routes in {args.namespaces} namespaces, in-memory cluster and latency")
    profile_text = ""
    for cycle in range(1, args.cycles + 1):
        simulated[0] += args.interval
        snaps = snapshots()
        before = dict(cluster.calls)
        profiler = cProfile.Profile() if cycle == args.cycles else None
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if profiler is not None:
            profiler.enable()
        report = asyncio.run(engine.evaluate(snaps))
        if profiler is not None:
            profiler.disable()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        writes = {k: v - before.get(k, 0) for k, v in cluster.calls.items() if k != "list"}
        print(
            f"cycle {cycle}: {wall:6.2f} s wall, {cpu:6.2f} s CPU, "
            f"{wall / args.routes * 1e6:6.0f} us/route; unchanged {report.unchanged}, "
            f"status patches {report.status_patches}, "
            f"writes {dict(sorted(writes.items()))}"
        )
        if profiler is not None:
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(args.top)
            profile_text = out.getvalue()
    print(f"\nprofile of cycle {args.cycles} (the profiler itself slows it):")
    print(profile_text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
