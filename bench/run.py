"""``make bench``: thousands of routes per cycle, against the floor and per-object polling.

For each size (default 1,000 and 10,000 routes) on a fresh sandbox (see ``bench.world``):

1. the real operator process runs cluster-wide (``bench.probe``: the operator unchanged,
   plus request counters and a record per cycle); after its first full cycle and
   ``--warmup`` more, ``--cycles`` cycles are measured: wall time, Prometheus queries,
   Kubernetes reads and writes, Cloudflare requests (the emulator's log), RSS, CPU;
2. for each measured cycle, the floor: the batched query alone, timed the same way, in the
   next period (which the operator skips) at the moment a cycle would have started, and
   right after the cycle in its pause; and the least writes: routes whose status changed;
3. reaction: ``--trials`` times, a reaction route's P95 is raised above its at-risk line, the
   trials spread evenly over the phases of the operator's rhythm; the time from
   Prometheus' first answer showing it to the scale change;
4. the operator stopped, per-object polling (one query per route, as KEDA's Prometheus
   scaler does per ScaledObject) next to the batched query, in the same quiet conditions;
   above ``--poll-sample`` routes a sample is timed and the rest extrapolated.

Figures are printed and written to ``bench/results/<date>-<N>[-<label>].json``; the table in
``bench/README.md`` is regenerated. Nothing is asserted. The run is bounded: ``--deadline``
seconds for everything (each size gets a share); a phase out of time is cut short and
says so in the results.
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "operator"), str(ROOT)]

from bench import measure, results  # noqa: E402
from bench import world as w  # noqa: E402


def log(message: str) -> None:
    w.progress(message)


def reads_writes(before: dict[str, int], after: dict[str, int]) -> dict[str, Any]:
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)}
    delta = {k: v for k, v in delta.items() if v}
    kube = {k[5:]: v for k, v in delta.items() if k.startswith("kube ")}
    reads = sum(v for k, v in kube.items() if k.split()[0] in ("get", "list", "watch"))
    writes = sum(v for k, v in kube.items() if k.split()[0] not in ("get", "list", "watch"))
    prom = sum(v for k, v in delta.items() if k.startswith("prom /api/v1/query"))
    events = delta.get("watch events origins", 0)
    return {
        "kube_reads": reads,
        "kube_writes": writes,
        "prometheus_queries": prom,
        "kube": kube,
        "watch_events": events,
    }


def cycle_figures(
    prev: dict[str, Any],
    rec: dict[str, Any],
    status: measure.StatusWatch,
    world: w.World,
) -> dict[str, Any]:
    assert world.emulator is not None
    counts = reads_writes(prev["counts"], rec["counts"])
    delta = {k: rec["counts"].get(k, 0) - prev["counts"].get(k, 0) for k in rec["counts"]}
    cf = [e for e in world.emulator.requests() if prev["ended"] < e.started_at <= rec["ended"]]
    changed, state_changed, other = status.changed_between(rec["started"], rec["ended"] + 1.0)
    return {
        "ended": rec["ended"],
        "wall_seconds": rec["duration_seconds"],
        "phases": rec["phases"],
        "routes": rec["routes"],
        "actions_applied": rec["actions_applied"],
        "actions_failed": rec["actions_failed"],
        "status_patches": rec["status_patches"],
        "changed_routes": changed,
        "state_changed_routes": state_changed,
        "metadata_only_modifications": other,
        "cloudflare_requests": len(cf),
        "cpu_seconds_period": rec["cpu_seconds"] - prev["cpu_seconds"],
        "cpu_seconds_in_cycle": rec["cpu_seconds"]
        - (rec.get("cpu_at_start") or rec["cpu_seconds"]),
        "period_seconds": rec["ended"] - prev["ended"],
        "rss_mib": rec["vmrss"] / 1024,
        "hwm_mib": rec["vmhwm"] / 1024,
        "states": rec["states"],
        "new_connections": {
            k[12:]: v for k, v in delta.items() if k.startswith("connections") and v
        },
        "status_fields_patched": {
            k[13:]: v for k, v in delta.items() if k.startswith("status field") and v
        },
        **counts,
    }


def median_of(cycles: list[dict[str, Any]], key: str) -> float | None:
    values = [c[key] for c in cycles if c.get(key) is not None]
    return statistics.median(values) if values else None


def run_size(n: int, args: argparse.Namespace, deadline: float) -> dict[str, Any]:
    started_at = time.time()
    workdir = ROOT / ".sandbox" / f"bench-{n}-{int(started_at)}"
    pods = args.pods if args.pods != "auto" else ("running" if n <= 1000 else "none")
    world = w.World(
        routes=n,
        namespaces=args.namespaces,
        window=args.window,
        pods=pods,
        workdir=workdir,
        rps=args.rps,
        react_routes=max(args.trials, 1),
    )
    loads: dict[str, Any] = {"start": measure.load()}
    notes: list[str] = []
    out: dict[str, Any] = {
        "routes": n,
        "label": args.label,
        "date": time.strftime("%Y-%m-%d", time.localtime(started_at)),
        "started_at": started_at,
        "interval_seconds": args.interval,
        "namespaces": min(args.namespaces, n),
        "window": args.window,
        "pods": pods,
        "route_rps": args.rps,
        "load_average": loads,
        "notes": notes,
    }
    log(
        f"=== {n} routes in {min(args.namespaces, n)} namespaces (pods: {pods}), "
        f"load {loads['start']}"
    )
    operator: measure.OperatorRun | None = None
    status: measure.StatusWatch | None = None
    replicas: measure.ReplicaWatch | None = None
    try:
        world.start()
        api = world.api()
        status = measure.StatusWatch(api).start()
        replicas = measure.ReplicaWatch(api, w.REACT_NAMESPACE).start()
        assert world.prometheus is not None
        prom = world.prometheus
        out["machine"] = results.machine(versions(world))
        operator_first = args.start == "operator-first"
        t_op = time.monotonic()
        if operator_first:
            loads["operator_start"] = measure.load()
            log("starting the operator first (real process, cluster-wide); routes arrive after")
            operator = measure.OperatorRun(world, args.interval, workdir / "logs")
        remaining = deadline - time.monotonic()
        world.create_objects(time.monotonic() + remaining * 0.75)
        world.wait_pods(min(deadline, time.monotonic() + 240))
        out["setup"] = dict(world.timings)
        t_created = time.monotonic()
        if operator is None:
            loads["operator_start"] = measure.load()
            log("starting the operator on the existing routes (real process, cluster-wide)")
            t_op = time.monotonic()
            operator = measure.OperatorRun(world, args.interval, workdir / "logs")
        total = n + world.react_routes
        first: dict[str, Any] | None = None
        startup: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            rec = operator.next_record(timeout=max(1.0, deadline - time.monotonic()))
            if rec is None:
                break
            startup.append(rec)
            if rec["routes"] >= total or not operator_first or len(startup) % 10 == 0:
                log(
                    f"cycle {len(startup)}: {rec['routes']} routes, {rec['status_patches']} "
                    f"status patches, {rec['actions_applied']} actions in "
                    f"{rec['duration_seconds']:.2f}s, RSS {rec['vmrss'] / 1024:.0f} MiB"
                )
            if rec["routes"] >= total:
                first = rec
                break
        if first is None:
            raise TimeoutError("the operator never evaluated every route in time")
        out["startup"] = {
            "start": args.start,
            "seconds_to_first_full_cycle": time.monotonic() - t_op,
            "seconds_after_routes_created": time.monotonic() - t_created,
            "first_full_cycle_seconds": first["duration_seconds"],
            "first_full_cycle_status_patches": first["status_patches"],
            "cycles_before_full": len(startup) - 1,
            "rss_high_water_mib": first["vmhwm"] / 1024,
            "kopf_patches": first["counts"].get("kube patch timeoutbudgets", 0),
            "kopf_connections": first["counts"].get("connections kube (aiohttp)", 0),
        }
        # Cycles that ran while the harness waited (routes being created) are not measured.
        operator.skip_to_latest()
        latest = operator.records()
        prev = latest[-1] if latest else first
        for i in range(args.warmup):
            rec = operator.next_record(timeout=max(1.0, deadline - time.monotonic()))
            if rec is None:
                break
            log(
                f"warm-up cycle {i + 1}: {rec['status_patches']} status patches, "
                f"{rec['actions_applied']} actions in {rec['duration_seconds']:.2f}s"
            )
            prev = rec

        # -- measured cycles, each with its floor ----------------------------------------
        # The floor is timed twice per measured cycle: right after it, in the pause (as
        # before), and in the next period, which the operator skips (``bench.probe``), at
        # the very moment a cycle would have started. The second is the same moment of the
        # 15 s rhythm as the cycle itself: the bulk scrape (every 15 s too) lands at the same
        # point of both, so the two are timed with the same background. One more cycle, not
        # measured, then takes up the changes of the skipped period.
        floor = measure.Floor(prom.url, measure.route_specs(world))
        cycles: list[dict[str, Any]] = []
        floors: list[dict[str, Any]] = []
        last_floor_end = 0.0
        reserve = args.trials * (args.interval + 20) + 90  # reaction, polling, teardown
        wait = 2 * args.interval + 60

        def real(record: dict[str, Any]) -> bool:
            return not record.get("skipped")

        while len(cycles) < args.cycles:
            budget_left = deadline - time.monotonic() - reserve
            if budget_left <= 0:
                notes.append(f"measured {len(cycles)} of {args.cycles} cycles: out of time")
                break
            rec = operator.wait_for(real, timeout=budget_left, poll=0.2)
            if rec is None:
                notes.append(f"measured {len(cycles)} of {args.cycles} cycles: out of time")
                break
            cycle = cycle_figures(prev, rec, status, world)
            # A floor that ran into the next cycle would skew both: such a cycle is marked
            # (and said) rather than hidden.
            cycle["overlapped_floor"] = bool(rec["started"] and rec["started"] < last_floor_end)
            if cycle["overlapped_floor"]:
                notes.append(f"measured cycle {len(cycles) + 1} began before a floor query ended")
            cycle["load_average"] = measure.load()
            cycles.append(cycle)
            before = measure.load()
            after_seconds, queries, values = floor.time_once()
            operator.request_skip()
            skipped = operator.wait_for(lambda r: bool(r.get("skipped")), timeout=wait)
            entry: dict[str, Any] = {
                "after_cycle_seconds": after_seconds,
                "queries": queries,
                "values": values,
                "load_before": before,
            }
            if skipped is not None:
                entry["seconds"], _, _ = floor.time_once()
                entry["late_seconds"] = time.time() - entry["seconds"] - skipped["ended"]
            else:
                notes.append(f"cycle {len(cycles)}: the operator did not skip its next period")
            last_floor_end = time.time()
            entry["load_after"] = measure.load()
            floors.append(entry)
            settle = operator.wait_for(real, timeout=wait, poll=0.2)  # takes up the skip
            if settle is not None and settle["started"] < last_floor_end:
                notes.append(f"cycle {len(cycles)}: its floor ran into the cycle after it")
                entry["overlapped"] = True
            prev = settle if settle is not None else rec
            log(
                f"cycle {len(cycles)}/{args.cycles}: {cycle['wall_seconds']:.2f}s "
                f"(floor {fmt_s(entry.get('seconds'))} at the cycle's moment, "
                f"{after_seconds:.2f}s right after it), prom {cycle['prometheus_queries']} q, "
                f"kube {cycle['kube_reads']} r / {cycle['kube_writes']} w "
                f"(+{cycle.get('watch_events', 0)} watch events), changed "
                f"{cycle['changed_routes']}, CF {cycle['cloudflare_requests']}, "
                f"RSS {cycle['rss_mib']:.0f} MiB, CPU {cycle['cpu_seconds_period']:.2f}s, "
                f"load {cycle['load_average'][0]:.1f}"
            )
        loads["cycles_end"] = measure.load()
        floor.close()
        out["cycles"] = summarize_cycles(cycles)
        out["cycles"]["all"] = cycles
        out["floor"] = {
            "seconds": measure.summary([f["seconds"] for f in floors if "seconds" in f]),
            "after_cycle_seconds": measure.summary([f["after_cycle_seconds"] for f in floors]),
            "queries": floors[0]["queries"] if floors else None,
            "routes_with_value": floors[-1]["values"] if floors else None,
            "all": floors,
        }

        # -- reaction --------------------------------------------------------------------
        loads["reaction_start"] = measure.load()
        trials: list[dict[str, Any]] = []
        rng = random.Random(n)
        for k, name in enumerate(world.react_names()[: args.trials]):
            timeout = 2 * args.interval + 45
            if deadline - time.monotonic() < timeout + args.interval + 60:
                notes.append(f"reaction: {k} of {args.trials} trials, out of time")
                break
            started = [r["started"] for r in operator.records() if r.get("started")]
            raise_at = measure.raise_moment(
                time.time(), max(started), args.interval, k, args.trials, rng.random()
            )
            trial = measure.reaction_trial(world, replicas, name, raise_at, timeout)
            trials.append(trial)
            log(f"reaction trial {k + 1}/{args.trials}: {fmt_s(trial['reaction_seconds'])}")
        loads["reaction_end"] = measure.load()
        reactions = [t["reaction_seconds"] for t in trials if t["reaction_seconds"] is not None]
        scaled = [t["scaled_at"] for t in trials if t.get("scaled_at") is not None]
        if scaled:  # the record of the cycle that scaled last is written when it ends
            operator.wait_for(lambda r: r.get("ended", 0) >= max(scaled), timeout=wait)
        starts = [rec["started"] for rec in operator.records() if "started" in rec]
        for trial in trials:
            trial.update(measure.reaction_parts(trial, starts))
        in_cycle = [t["in_cycle_seconds"] for t in trials if t.get("in_cycle_seconds") is not None]
        out["reaction"] = {
            "trials": trials,
            "median_seconds": statistics.median(reactions) if reactions else None,
            "max_seconds": max(reactions) if reactions else None,
            "completed": len(reactions),
            "in_cycle_median_seconds": statistics.median(in_cycle) if in_cycle else None,
            "in_cycle_max_seconds": max(in_cycle) if in_cycle else None,
        }
        final = operator.records()
        out["operator_final"] = {
            "rss_mib": final[-1]["vmrss"] / 1024 if final else None,
            "hwm_mib": final[-1]["vmhwm"] / 1024 if final else None,
            "cpu_seconds_total": final[-1]["cpu_seconds"] if final else None,
        }
        operator.stop()
        operator = None

        # -- per-object polling vs the batched query, quiet ------------------------------
        loads["polling_start"] = measure.load()
        out["per_object_polling"] = poll(world, args, deadline, notes)
        loads["polling_end"] = measure.load()
        out["ratios"] = ratios(out)
        out["status_states_at_end"] = status.states()
    finally:
        loads["end"] = measure.load()
        if operator is not None:
            operator.stop()
        if status is not None:
            status.stop()
        if replicas is not None:
            replicas.stop()
        world.close()
        if not args.keep:
            keep_logs(workdir)
    return out


def keep_logs(workdir: Path) -> None:
    """Drop the data (etcd, Prometheus TSDB), keep the logs of this run."""
    for heavy in ("cp/etcd-data", "prometheus/data"):
        shutil.rmtree(workdir / heavy, ignore_errors=True)


def versions(world: w.World) -> dict[str, str]:
    from importlib.metadata import version

    assert world.cp is not None
    assert world.prometheus is not None
    return {
        "kubernetes": world.cp.binaries.versions.get("K8S_VERSION", "?"),
        "etcd": world.cp.binaries.versions.get("ETCD_VERSION", "?"),
        "kwok": world.cp.binaries.versions.get("KWOK_VERSION", "?"),
        "prometheus": world.prometheus.version(),
        "kopf": version("kopf"),
        "kubernetes_client": version("kubernetes"),
    }


def summarize_cycles(cycles: list[dict[str, Any]]) -> dict[str, Any]:
    wall = [c["wall_seconds"] for c in cycles]
    rss = [c["rss_mib"] for c in cycles]
    return {
        "count": len(cycles),
        "wall_seconds": measure.summary(wall),
        "prometheus_queries_median": median_of(cycles, "prometheus_queries"),
        "kube_reads_median": median_of(cycles, "kube_reads"),
        "kube_writes_median": median_of(cycles, "kube_writes"),
        "status_patches_median": median_of(cycles, "status_patches"),
        "changed_routes_median": median_of(cycles, "changed_routes"),
        "cloudflare_requests_median": median_of(cycles, "cloudflare_requests"),
        "cpu_seconds_median": median_of(cycles, "cpu_seconds_period"),
        "cpu_seconds_in_cycle_median": median_of(cycles, "cpu_seconds_in_cycle"),
        "rss_mib_max": max(rss) if rss else None,
        "hwm_mib_max": max(c["hwm_mib"] for c in cycles) if cycles else None,
        "totals": {
            key: sum(c[key] for c in cycles)
            for key in (
                "kube_reads",
                "kube_writes",
                "status_patches",
                "changed_routes",
                "actions_applied",
                "cloudflare_requests",
                "prometheus_queries",
            )
        },
        "phases_median": {
            phase: statistics.median([c["phases"].get(phase, 0.0) for c in cycles])
            for phase in sorted({p for c in cycles for p in c["phases"]})
        },
    }


def poll(
    world: w.World, args: argparse.Namespace, deadline: float, notes: list[str]
) -> dict[str, Any]:
    assert world.prometheus is not None
    url = world.prometheus.url
    specs = measure.route_specs(world)
    floor = measure.Floor(url, specs)
    batched = [floor.time_once() for _ in range(3)]
    floor.close()
    routes = [w.route_name(i) for i in range(world.routes)]
    sample = routes
    if len(routes) > args.poll_sample:
        sample = random.Random(0).sample(routes, args.poll_sample)
    if deadline - time.monotonic() < 60:
        notes.append("per-object polling skipped: out of time")
        return {}
    seconds, queries = measure.per_object_poll(url, sample, args.window, concurrency=4)
    scale = len(routes) / len(sample)
    log(
        f"per-object polling: {queries} queries in {seconds:.2f}s"
        + (f" (sample of {len(routes)}, x {scale:.0f} extrapolated)" if scale > 1 else "")
    )
    return {
        "sampled_routes": len(sample),
        "sample_seconds": seconds,
        "extrapolated": scale > 1,
        "queries_per_cycle": len(routes),
        "seconds_per_cycle": seconds * scale,
        "concurrency": 4,
        "batched_seconds": measure.summary([b[0] for b in batched]),
        "batched_queries": batched[0][1],
    }


def ratios(out: dict[str, Any]) -> dict[str, Any]:
    c, floor, poll_ = out["cycles"], out["floor"], out.get("per_object_polling") or {}
    cycle_median = c["wall_seconds"]["median"]
    floor_median = floor["seconds"]["median"]
    totals = c["totals"]
    r: dict[str, Any] = {
        "cycle_over_floor": cycle_median / floor_median if cycle_median and floor_median else None,
        "cycle_over_floor_after_cycle": (
            cycle_median / floor["after_cycle_seconds"]["median"]
            if cycle_median and floor.get("after_cycle_seconds", {}).get("median")
            else None
        ),
        "writes_over_changed": (
            totals["kube_writes"] / totals["changed_routes"] if totals["changed_routes"] else None
        ),
        "status_patches_over_changed": (
            totals["status_patches"] / totals["changed_routes"]
            if totals["changed_routes"]
            else None
        ),
    }
    if poll_:
        batched_q = poll_["batched_queries"] or 1
        r["poll_queries_over_batched"] = poll_["queries_per_cycle"] / batched_q
        r["poll_time_over_batched"] = (
            poll_["seconds_per_cycle"] / poll_["batched_seconds"]["median"]
        )
        r["poll_time_over_cycle"] = (
            poll_["seconds_per_cycle"] / cycle_median if cycle_median else None
        )
    return r


def fmt_s(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}s"


def print_result(r: dict[str, Any]) -> None:
    c, ra = r["cycles"], r["ratios"]
    poll_ = r.get("per_object_polling") or {}
    react = r["reaction"]
    lines = [
        f"\n== {r['routes']:,} routes, {r['namespaces']} namespaces, pods {r['pods']}, "
        f"interval {r['interval_seconds']:g}s, window {r['window']} ==",
        f"startup ({r['startup']['start']}): first full cycle "
        f"{r['startup']['seconds_after_routes_created']:.1f}s after the routes existed, "
        f"it took {r['startup']['first_full_cycle_seconds']:.2f}s with "
        f"{r['startup']['first_full_cycle_status_patches']} status patches; kopf patched "
        f"{r['startup']['kopf_patches']} TimeoutBudgets over {r['startup']['kopf_connections']} "
        f"connections; RSS high-water {r['startup']['rss_high_water_mib']:.0f} MiB",
        f"cycles measured: {c['count']}; wall median {fmt_s(c['wall_seconds']['median'])}, "
        f"p95 {fmt_s(c['wall_seconds']['p95'])}; phases (median) "
        + ", ".join(f"{k} {v:.2f}s" for k, v in c["phases_median"].items()),
        f"floor (batched query alone, at the moment of the rhythm a cycle starts): median "
        f"{fmt_s(r['floor']['seconds']['median'])} with {r['floor']['queries']} queries; "
        f"cycle / floor = {fmt_ratio(ra['cycle_over_floor'])} (right after each cycle: "
        f"{fmt_s(r['floor']['after_cycle_seconds']['median'])}, cycle / that = "
        f"{fmt_ratio(ra.get('cycle_over_floor_after_cycle'))})",
        f"per cycle (median): Prometheus {c['prometheus_queries_median']} queries, Kubernetes "
        f"{c['kube_reads_median']} reads / {c['kube_writes_median']} writes, Cloudflare "
        f"{c['cloudflare_requests_median']} requests, status patches {c['status_patches_median']}, "
        f"routes whose status changed {c['changed_routes_median']}",
        f"writes / changed routes = {fmt_ratio(ra['writes_over_changed'])} (status patches / "
        f"changed = {fmt_ratio(ra['status_patches_over_changed'])})",
        f"operator: RSS max {c['rss_mib_max']:.0f} MiB (high-water {c['hwm_mib_max']:.0f} MiB), "
        f"CPU {c['cpu_seconds_median']:.2f}s per period ({c['cpu_seconds_in_cycle_median']:.2f}s "
        "inside the cycle)",
    ]
    if poll_:
        lines.append(
            f"per-object polling: {poll_['queries_per_cycle']} queries per cycle "
            f"(x {ra['poll_queries_over_batched']:.0f} the batched {poll_['batched_queries']}), "
            f"{poll_['seconds_per_cycle']:.1f}s per cycle"
            + (f" (extrapolated from {poll_['sampled_routes']})" if poll_["extrapolated"] else "")
            + f" vs batched {poll_['batched_seconds']['median']:.2f}s "
            f"(x {ra['poll_time_over_batched']:.1f}); x {fmt_ratio(ra['poll_time_over_cycle'])} "
            "the operator's cycle"
        )
    lines.append(
        f"reaction: median {fmt_s(react['median_seconds'])}, max {fmt_s(react['max_seconds'])} "
        f"over {react['completed']} trials (interval {r['interval_seconds']:g}s); of which "
        f"inside the cycle that scaled (its start to the scale): median "
        f"{fmt_s(react.get('in_cycle_median_seconds'))}, max "
        f"{fmt_s(react.get('in_cycle_max_seconds'))}, the rest waiting for that cycle"
    )
    loads = r["load_average"]
    lines.append(
        "load average (1/5/15 min): "
        + "; ".join(f"{k} {v[0]:.2f}/{v[1]:.2f}/{v[2]:.2f}" for k, v in loads.items())
    )
    for note in r["notes"]:
        lines.append(f"note: {note}")
    print("\n".join(lines), flush=True)


def fmt_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--routes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--cycles", type=int, default=10, help="measured cycles per size")
    parser.add_argument(
        "--warmup", type=int, default=2, help="cycles skipped after the first full one"
    )
    parser.add_argument(
        "--interval", type=float, default=15.0, help="TBO_EVALUATION_INTERVAL_SECONDS"
    )
    parser.add_argument("--namespaces", type=int, default=50)
    parser.add_argument("--window", default="1m", help="latency.window of every route")
    parser.add_argument("--rps", type=float, default=1.0, help="requests per second per route")
    parser.add_argument("--pods", choices=["auto", "running", "none"], default="auto")
    parser.add_argument(
        "--start",
        choices=["operator-first", "routes-first"],
        default="operator-first",
        help="operator running while the routes are created, or started on all of them",
    )
    parser.add_argument("--trials", type=int, default=5, help="reaction trials")
    parser.add_argument("--poll-sample", type=int, default=1000, help="per-object polling sample")
    parser.add_argument("--deadline", type=float, default=1500, help="seconds for everything")
    parser.add_argument("--label", default=None, help="suffix of the results file, e.g. before")
    parser.add_argument("--keep", action="store_true", help="keep etcd and TSDB data")
    parser.add_argument("--no-write", action="store_true", help="print only, write no results")
    args = parser.parse_args(argv)

    def out_of_time(*_: object) -> None:
        raise TimeoutError(f"benchmark exceeded its {args.deadline:.0f}s deadline")

    signal.signal(signal.SIGALRM, out_of_time)
    # Stopped from outside (Ctrl-C, SIGTERM): unwind, so every process of the sandbox stops.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.alarm(int(args.deadline) + 60)  # the phases stop themselves first
    start = time.monotonic()
    end = start + args.deadline
    weights = [max(1.0, n / 1000) ** 0.3 for n in args.routes]
    written: list[Path] = []
    for k, n in enumerate(args.routes):
        share = weights[k] / sum(weights[k:])
        deadline = time.monotonic() + (end - time.monotonic()) * share
        result = run_size(n, args, deadline)
        print_result(result)
        if not args.no_write:
            written.append(results.write(result, args.label))
    signal.alarm(0)
    if written:
        results.regenerate()
        print("\nwritten: " + ", ".join(str(p.relative_to(ROOT)) for p in written))
        print(f"table regenerated in {results.README.relative_to(ROOT)}")
    print(f"total {time.monotonic() - start:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
