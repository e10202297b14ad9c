"""How long does one observe cycle take for 1,000 and 10,000 routes, per method and backend?

The operator is meant to carry 10,000 routes in a 15 s loop, and the observe step's batched
PromQL is its largest fixed cost. This script builds, for each size, a history of one
28-bucket histogram per route (``route``/``host`` labels, like the synthetic origin's),
backfills it with ``promtool``, starts the sandbox's Prometheus on it, and times
``LatencyObserver.observe`` for all routes at once:

* cold: a fresh observer, so the bucket-coverage queries run too (first cycle, and every
  ``coverage_refresh_seconds`` after);
* warm: the steady state, quantile queries only (coverage cached).

Each is run with the query in the URL (``GET``, 8,000-character batches) and in a form body
(``POST``, 128,000), against Prometheus itself and through Thanos Query (one sidecar store
in front of a Prometheus holding the same history). Medians over ``--runs`` runs are
printed, with the number of HTTP queries per cycle; the warm figure is the floor. No
assertions: the figures are for the issue's closing note. Everything stops by itself
(``--deadline`` bounds the whole run).

    .venv/bin/python bench/bench_latency_query.py [--routes 1000 10000] [--runs 5]
        [--methods GET POST] [--backends prometheus thanos]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "operator"), str(ROOT)]

from sandbox.origin_exporter import BUCKETS  # noqa: E402
from sandbox.prometheus import HistogramSample, PrometheusServer, write_openmetrics  # noqa: E402
from sandbox.thanos import ThanosSandbox  # noqa: E402
from timeout_budget.model.observation import Outcome  # noqa: E402
from timeout_budget.model.spec import RouteKey, TimeoutBudgetSpec, parse_timeout_budget  # noqa: E402
from timeout_budget.observe.latency import LatencyObserver  # noqa: E402
from timeout_budget.observe.promql.planning import plan_queries  # noqa: E402
from timeout_budget.observe.settings import PrometheusSettings  # noqa: E402

METRIC = "http_request_duration_seconds"
T0 = 1_700_000_000.0
STEP = 15.0
SAMPLES = 5  # T0 .. T0+60 every 15 s: a 1m window holds all of them
AT = T0 + STEP * (SAMPLES - 1)


def route_name(i: int) -> str:
    return f"route-{i:05d}"


def history(n: int) -> Iterator[HistogramSample]:
    rng = random.Random(n)
    for i in range(n):
        labels = {"route": route_name(i), "host": f"api-{i % 50:02d}.example.com"}
        per_step = [float(rng.randint(0, 20)) for _ in range(len(BUCKETS) + 1)]
        counts = [0.0] * (len(BUCKETS) + 1)
        for s in range(SAMPLES):
            cumulative = [sum(counts[: j + 1]) for j in range(len(BUCKETS))]
            yield HistogramSample(labels, BUCKETS, cumulative, sum(counts), T0 + STEP * s)
            counts = [c + d for c, d in zip(counts, per_step, strict=True)]


def routes_for(n: int) -> dict[RouteKey, TimeoutBudgetSpec]:
    return {
        RouteKey(f"bench/{route_name(i)}"): parse_timeout_budget(
            {
                "route": {"host": f"api-{i % 50:02d}.example.com"},
                "latency": {"metric": METRIC, "selector": {"route": route_name(i)}, "window": "1m"},
                "origin": {"deploymentName": "origin"},
            }
        )
        for i in range(n)
    }


async def time_cycles(
    url: str, routes: dict[RouteKey, TimeoutBudgetSpec], runs: int, method: str
) -> dict[str, object]:
    settings = PrometheusSettings(url, method=method, timeout_seconds=60)
    cold: list[float] = []
    cold_queries = 0
    for _ in range(runs):
        async with LatencyObserver(settings) as obs:
            t = time.perf_counter()
            got = await obs.observe(routes, at=AT)
            cold.append(time.perf_counter() - t)
            cold_queries = obs.queries_sent
    values = sum(o.outcome is Outcome.VALUE for o in got.values())
    covered = sum(o.top_bucket_seconds == BUCKETS[-1] for o in got.values())
    warm: list[float] = []
    async with LatencyObserver(settings) as obs:
        await obs.observe(routes, at=AT)
        before = obs.queries_sent
        for _ in range(runs):
            t = time.perf_counter()
            await obs.observe(routes, at=AT)
            warm.append(time.perf_counter() - t)
        warm_queries = (obs.queries_sent - before) // runs
    t = time.perf_counter()
    plan = plan_queries(
        {k: s.latency for k, s in routes.items()}, settings.query_length, settings.max_concurrency
    )
    plan_seconds = time.perf_counter() - t
    return {
        "cold": statistics.median(cold),
        "warm": statistics.median(warm),
        "cold_queries": cold_queries,
        "warm_queries": warm_queries,
        "batches": len(plan.batches),
        "length": settings.query_length,
        "plan": plan_seconds,
        "values": values,
        "covered": covered,
    }


def report(n: int, backend: str, method: str, r: dict[str, object]) -> None:
    print(
        f"  {backend:<10} {method:<4} (batches up to {r['length']:>6} chars): "
        f"{r['batches']} batches; floor (warm, quantiles) median {r['warm']:.3f}s with "
        f"{r['warm_queries']} queries; cold (+coverage) median {r['cold']:.3f}s with "
        f"{r['cold_queries']} queries; planning {r['plan']:.3f}s; "
        f"{r['values']}/{n} values, {r['covered']} covered",
        flush=True,
    )


def bench(n: int, runs: int, methods: list[str], backends: list[str], workdir: Path) -> None:
    t = time.perf_counter()
    source = write_openmetrics(workdir / f"history-{n}.om.txt", METRIC, history(n))
    generate = time.perf_counter() - t
    size_mb = source.stat().st_size / 1e6
    series = n * (len(BUCKETS) + 3)
    print(
        f"\n{n} routes: {series} series, {size_mb:.0f} MB OpenMetrics (generated {generate:.1f}s)",
        flush=True,
    )
    routes = routes_for(n)
    if "prometheus" in backends:
        with PrometheusServer(workdir=workdir / f"prom-{n}", quiet=True) as prom:
            t = time.perf_counter()
            prom.start(backfill_openmetrics=source, ready_timeout=300)
            print(f"  Prometheus backfilled and ready in {time.perf_counter() - t:.1f}s")
            for method in methods:
                report(
                    n,
                    "prometheus",
                    method,
                    asyncio.run(time_cycles(prom.url, routes, runs, method)),
                )
    if "thanos" in backends:
        # One store (Prometheus + sidecar) behind Thanos Query: every query crosses the
        # StoreAPI, as in a fleet where Query fans out to sidecars or store gateways.
        with ThanosSandbox(workdir / f"thanos-{n}", quiet=True) as thanos:
            t = time.perf_counter()
            thanos.add_store("a", backfill_openmetrics=source, ready_timeout=300)
            thanos.add_query("main", strict=True)
            print(f"  Thanos store and Query ready in {time.perf_counter() - t:.1f}s")
            for method in methods:
                report(
                    n, "thanos", method, asyncio.run(time_cycles(thanos.url, routes, runs, method))
                )
    source.unlink()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--routes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--methods",
        nargs="+",
        default=["GET", "POST"],
        choices=["GET", "POST"],
        help="GET: the query in the URL (8,000-character batches); POST: in a form body",
    )
    parser.add_argument(
        "--backends", nargs="+", default=["prometheus", "thanos"], choices=["prometheus", "thanos"]
    )
    parser.add_argument("--deadline", type=float, default=1200, help="seconds for everything")
    args = parser.parse_args()

    def out_of_time(*_: object) -> None:
        raise TimeoutError(f"benchmark exceeded its {args.deadline:.0f}s deadline")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(int(args.deadline))
    with tempfile.TemporaryDirectory(prefix="tbo-bench-") as tmp:
        probe = PrometheusServer(workdir=Path(tmp) / "probe", quiet=True)
        try:
            probe.start()
            version = probe.version()
        finally:
            probe.stop()
        print(f"Prometheus {version}, {args.runs} runs per figure, medians; window 1m, 28 buckets")
        for n in args.routes:
            bench(n, args.runs, args.methods, args.backends, Path(tmp))
    signal.alarm(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
