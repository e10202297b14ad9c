"""What the benchmark measures, one piece each.

* ``OperatorRun``: the real operator process (``bench.probe``), and its cycle records.
* ``StatusWatch``: a watch on every TimeoutBudget; counts, per time window, the routes whose
  status really changed (anything but ``lastEvaluationTime``), which is the least number of
  status writes a cycle can make.
* ``floor_observe``: the batched PromQL query alone, as the operator sends it (the same
  ``LatencyObserver`` and query plan, warm coverage cache), timed in the same run.
* ``per_object_poll``: one query per route, as KEDA's Prometheus scaler does per object.
* ``reaction_trial``: from the first Prometheus answer showing a route above its at-risk
  line to the scale change seen at the API server.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from bench import world as w
from sandbox.procutil import free_port
from timeout_budget.model.spec import RouteKey, TimeoutBudgetSpec, parse_timeout_budget
from timeout_budget.observe.latency import LatencyObserver
from timeout_budget.observe.settings import PrometheusSettings

CREDENTIAL_ENV = ("CLOUDFLARE_EMAIL", "CLOUDFLARE_API_KEY", "CLOUDFLARE_API_TOKEN")


def load() -> tuple[float, float, float]:
    return os.getloadavg()


# ---------------------------------------------------------------------------- operator


class OperatorRun:
    """``python -m bench.probe`` (the real operator, instrumented), cluster-wide."""

    def __init__(
        self,
        world: w.World,
        interval: float,
        logdir: Path,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        cp, prom, emu = world.cp, world.prometheus, world.emulator
        assert cp is not None
        assert prom is not None
        assert emu is not None
        self.records_path = logdir / "operator-cycles.jsonl"
        self.log = logdir / "operator.log"
        logdir.mkdir(parents=True, exist_ok=True)
        self.records_path.unlink(missing_ok=True)
        env = cp.env()
        for var in CREDENTIAL_ENV:
            env.pop(var, None)
        env.update(
            {
                "TBO_PROMETHEUS_URL": prom.url,
                "TBO_EVALUATION_INTERVAL_SECONDS": f"{interval:g}",
                "TBO_CLOUDFLARE_BASE_URL": emu.base_url,
                "TBO_OPERATOR_NAMESPACE": w.OPERATOR_NAMESPACE,
                "TBO_METRICS_ADDRESS": "127.0.0.1",
                "TBO_METRICS_PORT": str(free_port()),
                "TBO_BENCH_PROBE_OUT": str(self.records_path),
                "TBO_BENCH_KUBE_PORT": str(cp.apiserver_port),
                "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": os.pathsep.join([str(w.REPO / "operator"), str(w.REPO)]),
                **(extra_env or {}),
            }
        )
        self.started_at = time.time()
        with self.log.open("ab") as handle:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bench.probe"],
                cwd=w.REPO,
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._seen = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def records(self) -> list[dict[str, Any]]:
        if not self.records_path.exists():
            return []
        lines = self.records_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def next_record(self, timeout: float) -> dict[str, Any] | None:
        """The next cycle record after the ones already returned, or None at timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.records()
            if len(found) > self._seen:
                self._seen += 1
                return found[self._seen - 1]
            if not self.alive():
                tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])
                raise RuntimeError(f"the operator exited ({self.proc.returncode}):\n{tail}")
            time.sleep(0.2)
        return None

    def request_skip(self) -> None:
        """The operator's next cycle is skipped (``bench.probe``): the period is the floor's."""
        self.records_path.with_suffix(".skip").touch()

    def wait_for(self, pred: Any, timeout: float, poll: float = 0.02) -> dict[str, Any] | None:
        """The first record from now on that ``pred`` accepts (polled every ``poll`` s)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.records()
            for index in range(self._seen, len(found)):
                if pred(found[index]):
                    self._seen = index + 1
                    return found[index]
            if not self.alive():
                raise RuntimeError(f"the operator exited ({self.proc.returncode})")
            time.sleep(poll)
        return None

    def skip_to_latest(self) -> None:
        self._seen = len(self.records())

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


# ---------------------------------------------------------------------------- status watch


def comparable(status: Mapping[str, Any] | None) -> str:
    return json.dumps(
        {k: v for k, v in (status or {}).items() if k != "lastEvaluationTime" and v is not None},
        sort_keys=True,
    )


@dataclass
class StatusWatch:
    """A watch on every TimeoutBudget: when (arrival time) which route's status changed."""

    api: Any
    changes: list[tuple[float, str, bool]] = field(default_factory=list)
    """(arrival time, namespace/name, state changed)"""
    other_modifications: list[float] = field(default_factory=list)
    """MODIFIED events that changed no status field (kopf's annotations, ...)."""
    _last: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> StatusWatch:
        self._thread = threading.Thread(target=self._run, name="status-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        import kubernetes

        custom = kubernetes.client.CustomObjectsApi(self.api)
        rv = ""
        while not self._stop.is_set():
            try:
                if not rv:
                    raw: Any = custom.list_cluster_custom_object(
                        "timeoutbudget.io", "v1alpha1", "timeoutbudgets", _preload_content=False
                    )
                    data = json.loads(raw.data)
                    rv = data["metadata"]["resourceVersion"]
                    for item in data["items"]:
                        self._note(item, time.time(), initial=True)
                stream = kubernetes.watch.Watch().stream(
                    custom.list_cluster_custom_object,
                    "timeoutbudget.io",
                    "v1alpha1",
                    "timeoutbudgets",
                    resource_version=rv,
                    timeout_seconds=60,
                    allow_watch_bookmarks=True,
                )
                for event in stream:
                    obj = event["object"]
                    rv = obj.get("metadata", {}).get("resourceVersion", rv)
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._note(obj, time.time(), initial=False)
                    if self._stop.is_set():
                        break
            except kubernetes.client.exceptions.ApiException as exc:
                if exc.status == 410:
                    rv = ""
                else:
                    time.sleep(1)
            except Exception:  # a broken stream: resume from the last version
                time.sleep(0.5)

    def _note(self, obj: Mapping[str, Any], at: float, initial: bool) -> None:
        meta = obj.get("metadata", {})
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        status = obj.get("status") or {}
        new = (comparable(status), status.get("state"))
        with self._lock:
            old = self._last.get(key)
            self._last[key] = new
            if initial or old is None:
                return
            if old[0] != new[0]:
                self.changes.append((at, key, old[1] != new[1]))
            else:
                self.other_modifications.append(at)

    def changed_between(self, start: float, end: float) -> tuple[int, int, int]:
        """(routes whose status changed, of them whose state changed, other MODIFIED events)."""
        with self._lock:
            inside = [c for c in self.changes if start <= c[0] < end]
            other = sum(1 for t in self.other_modifications if start <= t < end)
        return len({c[1] for c in inside}), len({c[1] for c in inside if c[2]}), other

    def states(self) -> dict[str, int]:
        out: dict[str, int] = {}
        with self._lock:
            for _, state in self._last.values():
                out[str(state)] = out.get(str(state), 0) + 1
        return out


# ---------------------------------------------------------------------------- Prometheus


def route_specs(world: w.World) -> dict[RouteKey, TimeoutBudgetSpec]:
    """The specs the operator evaluates (bulk and reaction routes), keyed as it keys them."""
    specs: dict[RouteKey, TimeoutBudgetSpec] = {}
    for ns, _, tb in world.route_objects():
        specs[RouteKey(f"{ns}/{tb['metadata']['name']}")] = parse_timeout_budget(tb["spec"])
    for name in world.react_names():
        tb = w.budget(name, name, w.REACT_HOST, world.window, edge=False)
        specs[RouteKey(f"{w.REACT_NAMESPACE}/{name}")] = parse_timeout_budget(tb["spec"])
    return specs


class Floor:
    """The batched query alone: the operator's own observer and plan, warm coverage.

    ``queries`` are the plan's quantile queries, the same text the operator sends for these
    routes (what ``QueryLog.span`` looks for); ``sent_at`` and ``done_at`` bound the last
    ``time_once`` on the wall clock."""

    def __init__(self, url: str, specs: Mapping[RouteKey, TimeoutBudgetSpec]) -> None:
        self.specs = specs
        self.observer = LatencyObserver(PrometheusSettings(url, timeout_seconds=60))
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self.observer.observe(specs))  # coverage: warm
        plan = self.observer.last_plan
        self.queries = frozenset(b.promql for b in plan.batches) if plan else frozenset()
        self.sent_at = self.done_at = 0.0

    def time_once(self) -> tuple[float, int, int]:
        """(seconds, queries sent, routes with a value)."""
        before = self.observer.queries_sent
        self.sent_at = time.time()
        started = time.perf_counter()
        got = self.loop.run_until_complete(self.observer.observe(self.specs))
        seconds = time.perf_counter() - started
        self.done_at = time.time()
        values = sum(1 for o in got.values() if o.seconds is not None)
        return seconds, self.observer.queries_sent - before, values

    def close(self) -> None:
        self.observer.close()
        self.loop.close()


class QueryLog:
    """Prometheus' own record of every query it ran (``global.query_log_file``, one JSON
    object a line): how long it took to evaluate, whoever sent it. Beside the client's
    timing, it tells Prometheus' time for a cycle's queries at that very moment from the
    operator's time around them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._read = 0
        self._runs: list[tuple[float, float, int]] = []  # (began, finished, hash of text)

    def span(self, queries: Collection[str], start: float, end: float) -> float | None:
        """Seconds from the first of ``queries`` Prometheus began to evaluate between
        ``start`` and ``end`` (wall clock) to the last it finished; None if none was."""
        self._load()
        wanted = {hash(q) for q in queries}
        found = [(b, f) for b, f, h in self._runs if h in wanted and start <= b <= end]
        if not found:
            return None
        return max(f for _, f in found) - min(b for b, _ in found)

    def _load(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as log:
            log.seek(self._read)
            for line in log:
                if not line.endswith(b"\n"):
                    break  # Prometheus is still writing it: read it next time
                self._read += len(line)
                entry = json.loads(line)
                timings = entry.get("stats", {}).get("timings", {})
                finished = datetime.fromisoformat(entry["ts"].replace("Z", "+00:00"))
                done = finished.timestamp()
                began = done - float(timings.get("execTotalTime", 0.0))
                self._runs.append((began, done, hash(entry["params"].get("query", ""))))


def per_object_poll(
    url: str, routes: Sequence[str], window: str, concurrency: int
) -> tuple[float, int]:
    """One ``histogram_quantile`` per route, ``concurrency`` in flight; (seconds, queries)."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=concurrency)
    session.mount(url, adapter)

    def one(route: str) -> None:
        query = (
            f"histogram_quantile(0.95, sum by (le) "
            f'(rate({w.METRIC}_bucket{{route="{route}"}}[{window}])))'
        )
        response = session.get(f"{url}/api/v1/query", params={"query": query}, timeout=60)
        response.raise_for_status()
        response.json()

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, routes))
    seconds = time.perf_counter() - started
    session.close()
    return seconds, len(routes)


def route_p95(url: str, route: str, window: str) -> float | None:
    query = (
        f"histogram_quantile(0.95, sum by (le) "
        f'(rate({w.METRIC}_bucket{{route="{route}"}}[{window}])))'
    )
    response = requests.get(f"{url}/api/v1/query", params={"query": query}, timeout=10)
    result = response.json()["data"]["result"]
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if value != value else value  # NaN: no data


# ---------------------------------------------------------------------------- reaction


@dataclass
class ReplicaWatch:
    """Arrival times of ``spec.replicas`` changes of the reaction routes' Deployments."""

    api: Any
    namespace: str
    changes: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> ReplicaWatch:
        threading.Thread(target=self._run, name="replica-watch", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        import kubernetes

        apps = kubernetes.client.AppsV1Api(self.api)
        last: dict[str, int] = {}
        while not self._stop.is_set():
            try:
                for event in kubernetes.watch.Watch().stream(
                    apps.list_namespaced_deployment, self.namespace, timeout_seconds=30
                ):
                    dep = event["object"]
                    name, replicas = dep.metadata.name, int(dep.spec.replicas or 0)
                    if last.get(name) != replicas:
                        last[name] = replicas
                        with self._lock:
                            self.changes.setdefault(name, []).append((time.time(), replicas))
                    if self._stop.is_set():
                        break
            except Exception:
                time.sleep(0.5)

    def first_above(self, name: str, replicas: int, after: float) -> float | None:
        with self._lock:
            for at, value in self.changes.get(name, []):
                if at >= after and value > replicas:
                    return at
        return None


def reaction_trial(
    world: w.World,
    watch: ReplicaWatch,
    name: str,
    raise_at: float,
    timeout: float,
    base_p95: float = w.REACT_BASE_P95,
) -> dict[str, Any]:
    """Raise one reaction route's P95 over its at-risk line at ``raise_at`` (Unix seconds);
    time Prometheus → scale."""
    prom, exporter = world.prometheus, world.react_exporter
    assert prom is not None
    assert exporter is not None
    time.sleep(max(0.0, raise_at - time.time()))
    raised = time.time()
    exporter.set_route(name, p95=w.REACT_HIGH_P95, rps=20, host=w.REACT_HOST)
    deadline = time.monotonic() + timeout
    seen: float | None = None
    value: float | None = None
    while time.monotonic() < deadline and seen is None:
        value = route_p95(prom.url, name, world.window)
        if value is not None and value >= w.AT_RISK_LINE:
            seen = time.time()
            break
        time.sleep(0.1)
    scaled: float | None = None
    while seen is not None and time.monotonic() < deadline:
        scaled = watch.first_above(name, 1, raised)
        if scaled is not None:
            break
        time.sleep(0.05)
    exporter.set_route(name, p95=base_p95, rps=20, host=w.REACT_HOST)
    return {
        "route": name,
        "raised_at": raised,
        "prometheus_above_at": seen,
        "prometheus_value": value,
        "scaled_at": scaled,
        "reaction_seconds": None if seen is None or scaled is None else scaled - seen,
    }


def raise_moment(
    now: float, last_cycle_start: float, interval: float, trial: int, trials: int, jitter: float
) -> float:
    """When trial ``trial`` of ``trials`` raises its route: the first moment after ``now``
    at phase ``(trial + jitter) / trials`` of the operator's rhythm (``jitter`` in [0, 1)).
    The trials' phases are spread evenly over the interval (stratified), so five trials see
    five different points of the cycle instead of wherever the draws happen to fall; where
    the rise lands against the route's query is what decides a poller's reaction."""
    phase = (trial + jitter) / trials * interval
    moment = last_cycle_start + phase
    while moment <= now + 1.0:
        moment += interval
    return moment


def reaction_parts(trial: Mapping[str, Any], cycle_starts: Sequence[float]) -> dict[str, Any]:
    """A reaction in its two parts: waiting for the cycle that scaled (from the first
    answer above the line to that cycle's start: up to one interval, depending only on
    when the rise came) and that cycle's own part (its start to the scale change: the
    route's query, its decision and the write). A poller's worst case is one interval plus
    the second part: the rise lands just after the route's query in one cycle."""
    seen, scaled = trial.get("prometheus_above_at"), trial.get("scaled_at")
    if seen is None or scaled is None:
        return {"waiting_seconds": None, "in_cycle_seconds": None}
    started = max((s for s in cycle_starts if s <= scaled), default=None)
    if started is None:
        return {"waiting_seconds": None, "in_cycle_seconds": None}
    return {"waiting_seconds": started - seen, "in_cycle_seconds": scaled - started}


def summary(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p95": None, "max": None, "min": None}
    ordered = sorted(values)
    p95_index = max(0, min(len(ordered) - 1, round(0.95 * (len(ordered) - 1))))
    return {
        "median": statistics.median(ordered),
        "p95": ordered[p95_index],
        "max": ordered[-1],
        "min": ordered[0],
    }
