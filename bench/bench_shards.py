"""Sharding and the fast lane at N routes: one replica against two shards, in one run.

On one sandbox (``bench.world``: N routes in 50 namespaces, Deployments paused, the bulk
exporter scraped every 15 s, the reaction routes every second):

1. **one replica** (``bench.probe``, the real operator, cluster-wide, 15 s interval): after
   its first full cycle and once its routes settled (two cycles in a row write no status
   patch: the at-risk routes climbed their ladders; the climb's cycles are reported apart),
   ``--cycles`` cycles: wall time, CPU seconds per period, RSS, origin objects held; the
   floor (the batched query for all routes) timed in the next period, whose cycle the
   operator skips, at the moment the cycle would have started;
2. **two shards** (``TBO_SHARDS=2``, two replicas): their first start labels every route
   (the time to each replica's first full cycle and its memory high-water); both are then
   restarted on the labeled routes and measured as the single one, each replica's floor
   being the batched query for its own shard's routes; the routes each evaluates;
3. **the fast lane** (on the two shards): ``--trials`` reaction routes start near their
   line (P95 between the recover and at-risk lines, so in the fast lane) and are raised
   over it at moments spread evenly over the 15 s rhythm; the time from Prometheus' first
   answer above the line to the scale change seen at the API server.

Figures are printed and written to ``bench/results/<date>-shards-<N>.json``. Nothing is
asserted. ``--deadline`` bounds the whole run.

    .venv/bin/python -m bench.bench_shards [--routes 10000] [--cycles 5] [--trials 5]
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "operator"), str(ROOT)]

from bench import measure  # noqa: E402
from bench import world as w  # noqa: E402
from timeout_budget.model.shards import route_key_for_shard, shard_of  # noqa: E402
from timeout_budget.model.spec import RouteKey  # noqa: E402

INTERVAL = 15.0
SHARDS = 2
NEAR_P95 = (w.RECOVER_RATIO + w.AT_RISK_RATIO) / 2 * w.BUDGET_SECONDS
"""Between the lines: in the fast lane, not yet acted on."""
QUIET_CYCLES = 2
"""Cycles in a row without a status patch that make a replica's routes settled."""
SETTLE_SECONDS = 300.0
"""How long a replica's routes may take to climb their ladders before it is measured (each
at-risk route: a scale step after its 60 s cooldown, then the edge raise)."""


def log(message: str) -> None:
    w.progress(message)


def shard_routes(world: w.World) -> dict[int, set[RouteKey]]:
    """Each shard's routes, by the operator's own rule (``model.shards``)."""
    out: dict[int, set[RouteKey]] = {i: set() for i in range(SHARDS)}
    for ns, _, tb in world.route_objects():
        key = RouteKey(f"{ns}/{tb['metadata']['name']}")
        out[shard_of(route_key_for_shard(ns, tb["spec"]), SHARDS)].add(key)
    for name in world.react_names():
        shard = shard_of(route_key_for_shard(w.REACT_NAMESPACE, {}), SHARDS)
        out[shard].add(RouteKey(f"{w.REACT_NAMESPACE}/{name}"))
    return out


def holders(world: w.World) -> dict[int, str]:
    """Each shard Lease's holder identity (``host-pid-suffix``), from the API server."""
    assert world.cp is not None
    out: dict[int, str] = {}
    for shard in range(SHARDS):
        got = world.cp.kubectl(
            "get",
            "lease",
            f"timeout-budget-operator-loop-shard-{shard}",
            "-n",
            w.OPERATOR_NAMESPACE,
            "-o",
            "jsonpath={.spec.holderIdentity}",
            check=False,
        )
        out[shard] = got.stdout.strip() if got.returncode == 0 else ""
    return out


def wait_split(world: w.World, runs: list[measure.OperatorRun], deadline: float) -> dict[int, int]:
    """Wait until every replica holds one shard; the shard by replica pid."""
    while time.monotonic() < deadline:
        found = holders(world)
        by_pid = {
            run.pid: shard
            for shard, identity in found.items()
            for run in runs
            if f"-{run.pid}-" in identity
        }
        if len(by_pid) == len(runs):
            return by_pid
        time.sleep(1)
    raise TimeoutError("the replicas never split the shards")


def first_full_cycle(
    run: measure.OperatorRun, routes: int, deadline: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The replica's first cycle over all its ``routes``, and when (and at what memory
    high-water) it came."""
    first = run.wait_for(lambda r: r["routes"] >= routes, timeout=deadline - time.monotonic())
    if first is None:
        raise TimeoutError(f"no full cycle of {routes} routes in time")
    return first, {
        "first_full_cycle_after_seconds": first["ended"] - run.started_at,
        "hwm_mib_at_first_full_cycle": first["vmhwm"] / 1024,
        "rss_mib_at_first_full_cycle": first["vmrss"] / 1024,
    }


def settle(
    run: measure.OperatorRun, after: dict[str, Any], deadline: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The replica's cycles until ``QUIET_CYCLES`` in a row write no status patch: the
    world's at-risk routes have climbed their ladders (scale, edge raise, each after its
    cooldown), so what is measured next is the steady rhythm, not the one-off climb a fresh
    world or a restart in the middle of it makes. One quiet cycle is not enough: after a
    restart a zone's routes wait for its first read (``FIRST_READ_GRACE_SECONDS``) and then
    climb. At most ``SETTLE_SECONDS``; the last cycle seen, and the climb's figures
    (reported, not measured against the floor)."""
    rows: list[dict[str, Any]] = []
    last, quiet = after, 0 if after["status_patches"] else 1
    limit = min(deadline, time.monotonic() + SETTLE_SECONDS)
    while quiet < QUIET_CYCLES and time.monotonic() < limit:
        rec = run.next_record(timeout=limit - time.monotonic())
        if rec is None:
            break
        rows.append(
            {"wall_seconds": rec["duration_seconds"], "status_patches": rec["status_patches"]}
        )
        quiet = 0 if rec["status_patches"] else quiet + 1
        last = rec
    return last, {
        "settled": quiet >= QUIET_CYCLES,
        "settled_after_seconds": last["ended"] - after["ended"],
        "settling_cycles": rows,
    }


def measure_replica(
    run: measure.OperatorRun,
    floor: measure.Floor,
    query_log: measure.QueryLog,
    routes: int,
    cycles: int,
    deadline: float,
) -> dict[str, Any]:
    """Wait for a cycle over all ``routes`` of the replica and for its routes to settle
    (``settle``), then ``cycles`` measured cycles, each with its CPU over the period and
    its floor: the batched query timed in the next period, whose cycle the operator skips
    (``request_skip``), at the moment the cycle would have started. Both replicas run
    every 15 s, so that moment meets the same neighbours as the cycle did (the other
    replica's cycle, the bulk scrape); the query timed right after the cycle is kept as
    ``floor_after_seconds``. The cycle after the skipped period is not measured (its CPU
    would span two periods): three periods per measured cycle.

    Prometheus' answer to the same query varies severalfold from one moment to the next,
    so each measured cycle also has Prometheus' own time for that cycle's batched query
    (``own_query_server_seconds``, from its query log: from the first of the batch's
    queries it began to the last it finished), and the floor's (``floor_server_seconds``)."""
    first, startup = first_full_cycle(run, routes, deadline)
    prev, climb = settle(run, first, deadline)
    startup["first_cycle"] = {
        "wall_seconds": first["duration_seconds"],
        "status_patches": first["status_patches"],
    }
    startup.update(climb)
    rows: list[dict[str, Any]] = []
    wait = 2 * INTERVAL + 60

    def real(record: dict[str, Any]) -> bool:
        return not record.get("skipped")

    while len(rows) < cycles and time.monotonic() < deadline:
        rec = run.wait_for(real, timeout=deadline - time.monotonic(), poll=0.2)
        if rec is None:
            break
        after_seconds, queries, _ = floor.time_once()
        run.request_skip()
        skipped = run.wait_for(lambda r: bool(r.get("skipped")), timeout=wait)
        floor_seconds = floor_server = None
        if skipped is not None:
            floor_seconds = floor.time_once()[0]
            floor_server = query_log.span(floor.queries, floor.sent_at, floor.done_at)
        rows.append(
            {
                "routes": rec["routes"],
                "wall_seconds": rec["duration_seconds"],
                "cpu_seconds_period": rec["cpu_seconds"] - prev["cpu_seconds"],
                "rss_mib": rec["vmrss"] / 1024,
                "hwm_mib": rec["vmhwm"] / 1024,
                "floor_seconds": floor_seconds,
                "floor_after_seconds": after_seconds,
                "floor_queries": queries,
                "status_patches": rec["status_patches"],
                "readings_held": rec.get("readings_held", 0),
                "origin_objects": rec.get("origin_objects"),
                # The cycle's own batched query, answered in the cycle.
                "own_query_seconds": (rec.get("phases") or {}).get("observe_answered"),
                # The same, as its worker threads read the answers (no wait for the loop).
                "own_query_received_seconds": (rec.get("phases") or {}).get("observe_received"),
                # The same, as Prometheus evaluated it (its query log), and the floor's.
                "own_query_server_seconds": query_log.span(
                    floor.queries, rec["started"], rec["ended"]
                ),
                "floor_server_seconds": floor_server,
            }
        )
        after_skip = run.wait_for(real, timeout=wait, poll=0.2)
        prev = after_skip if after_skip is not None else rec
    return {**summarize(rows), **startup}


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def med(key: str) -> float | None:
        values = [r[key] for r in rows if r[key] is not None]
        return statistics.median(values) if values else None

    out: dict[str, Any] = {key: med(key) for key in rows[0]} if rows else {}
    out["rss_mib_max"] = max(r["rss_mib"] for r in rows) if rows else None
    out["cycles"] = len(rows)
    out["cycle_over_floor"] = (
        out["wall_seconds"] / out["floor_seconds"] if rows and out["floor_seconds"] else None
    )
    own = [r["wall_seconds"] / r["own_query_seconds"] for r in rows if r["own_query_seconds"]]
    out["cycle_over_own_query"] = statistics.median(own) if own else None
    server = [
        r["wall_seconds"] / r["own_query_server_seconds"]
        for r in rows
        if r.get("own_query_server_seconds")
    ]
    out["cycle_over_own_query_server"] = statistics.median(server) if server else None
    out["all"] = rows
    return out


def fast_lane_trials(
    world: w.World,
    runs: list[measure.OperatorRun],
    watch: measure.ReplicaWatch,
    trials: int,
    deadline: float,
) -> dict[str, Any]:
    exporter = world.react_exporter
    assert exporter is not None
    names = world.react_names()[:trials]
    for name in names:
        exporter.set_route(name, p95=NEAR_P95, rps=20, host=w.REACT_HOST)
    time.sleep(2 * INTERVAL + 5)  # a full cycle reads them near their line
    rng, results = random.Random(7), []
    for k, name in enumerate(names):
        if deadline - time.monotonic() < 3 * INTERVAL + 60:
            break
        starts = [r["started"] for run in runs for r in run.records() if r.get("started")]
        raise_at = measure.raise_moment(time.time(), max(starts), INTERVAL, k, trials, rng.random())
        trial = measure.reaction_trial(
            world, watch, name, raise_at, 2 * INTERVAL + 45, base_p95=NEAR_P95
        )
        results.append(trial)
        log(f"fast-lane trial {k + 1}/{trials}: {trial['reaction_seconds']}")
    seconds = [t["reaction_seconds"] for t in results if t["reaction_seconds"] is not None]
    return {
        "near_p95": NEAR_P95,
        "median_seconds": statistics.median(seconds) if seconds else None,
        "max_seconds": max(seconds) if seconds else None,
        "completed": len(seconds),
        "trials": results,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--routes", type=int, default=10000)
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--deadline", type=float, default=2400)
    args = parser.parse_args()

    def out_of_time(*_: object) -> None:
        raise TimeoutError(f"benchmark exceeded its {args.deadline:.0f}s deadline")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(int(args.deadline))
    deadline = time.monotonic() + args.deadline - 60
    n = args.routes
    workdir = ROOT / ".sandbox" / f"bench-shards-{n}-{int(time.time())}"
    world = w.World(
        routes=n, namespaces=50, window="1m", pods="none", workdir=workdir, react_routes=args.trials
    )
    out: dict[str, Any] = {"routes": n, "shards": SHARDS, "interval_seconds": INTERVAL}
    runs: list[measure.OperatorRun] = []
    watch: measure.ReplicaWatch | None = None
    try:
        world.start()
        world.create_objects(time.monotonic() + 900)
        assert world.prometheus is not None
        url = world.prometheus.url
        specs = measure.route_specs(world)
        total = len(specs)

        log(f"one replica over {total} routes")
        single = measure.OperatorRun(world, INTERVAL, workdir / "logs-single")
        runs = [single]
        query_log = measure.QueryLog(world.prometheus.query_log)
        floor = measure.Floor(url, specs)
        out["single"] = measure_replica(single, floor, query_log, total, args.cycles, deadline)
        floor.close()
        single.stop()
        log(f"one replica: {json.dumps({k: v for k, v in out['single'].items() if k != 'all'})}")

        log(f"two shards (TBO_SHARDS={SHARDS}), two replicas")
        parts = shard_routes(world)
        env = {"TBO_SHARDS": str(SHARDS)}
        runs = [
            measure.OperatorRun(world, INTERVAL, workdir / f"logs-replica-{i}", extra_env=env)
            for i in range(SHARDS)
        ]
        # The first sharded start labels every route (kopf, in both replicas): timed, with
        # its memory high-water; then both are restarted on the labeled routes, as any
        # later start (a rollout, a failover) finds them, and measured there.
        held = wait_split(world, runs, deadline)
        out["migration"] = []
        for i, run in enumerate(runs):
            mine = held[run.pid]
            _, first = first_full_cycle(run, len(parts[mine]), deadline)
            out["migration"].append({"shard_routes": len(parts[mine]), **first})
            log(f"replica {i} labeled and evaluated shard {mine}: {json.dumps(first)}")
        for run in runs:
            run.stop()
        runs = [
            measure.OperatorRun(world, INTERVAL, workdir / f"logs-restarted-{i}", extra_env=env)
            for i in range(SHARDS)
        ]
        out["sharded"] = []
        held = wait_split(world, runs, deadline)
        for i, run in enumerate(runs):
            mine = held[run.pid]
            floor = measure.Floor(url, {k: specs[k] for k in parts[mine]})
            figures = measure_replica(
                run, floor, query_log, len(parts[mine]), args.cycles, deadline
            )
            floor.close()
            figures["shard_routes"] = len(parts[mine])
            out["sharded"].append(figures)
            log(
                f"replica {i} (shard {mine}, {len(parts[mine])} routes): "
                f"{json.dumps({k: v for k, v in figures.items() if k != 'all'})}"
            )

        watch = measure.ReplicaWatch(world.api(), w.REACT_NAMESPACE).start()
        out["fast_lane"] = fast_lane_trials(world, runs, watch, args.trials, deadline)
        log(
            f"fast lane: {json.dumps({k: v for k, v in out['fast_lane'].items() if k != 'trials'})}"
        )
    finally:
        for run in runs:
            run.stop()
        if watch is not None:
            watch.stop()
        world.close()
    signal.alarm(0)
    path = ROOT / "bench" / "results" / f"{time.strftime('%Y-%m-%d')}-shards-{n}.json"
    path.write_text(json.dumps(out, indent=2, default=str) + "\n")
    log(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
