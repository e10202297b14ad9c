"""A synthetic origin: per-route latency histograms that follow a model tests can steer.

The operator's loop only closes if something real produces latency that Prometheus scrapes
and that responds to what the operator does. ``OriginExporter`` is that something: an HTTP
server on loopback serving ``/metrics`` (Prometheus text format) with one
``http_request_duration_seconds`` histogram per route (labels ``route`` and ``host``), whose
buckets reach 6000 s (Cloudflare's largest read timeout). A background thread "serves"
``rps`` requests per second per route, drawing each duration from a log-normal distribution
whose P95 is the route's target, so a live scrape moves P95 as the model moves.

Durations come from a low-discrepancy (van der Corput) sequence pushed through the
log-normal quantile function rather than from a random generator: the empirical
distribution converges within a few dozen requests, which keeps live tests fast and stable.

The model is set through Python (``set_route``) or HTTP (``POST /model`` with
``{"<route>": {"p95": 2.0, "rps": 20, "host": "api.example.com"}}``, ``null`` removes a
route; ``GET /model`` reads it). To close the loop, ``replicas_for(route)`` (e.g. the
Deployment's ready replicas, polled from the API) and a per-replica capacity stretch
latency under load. By default the stretch is linear in the overload::

    effective_p95 = p95 * max(1, rps / (capacity_rps_per_replica * replicas))

With ``servers_per_replica`` set, the route follows a queueing model instead: the shape of
an M/M/c queue's response time, with ``c = replicas * servers_per_replica`` parallel slots
and utilisation ``rho = rps / (capacity_rps_per_replica * replicas)``, using Sakasegawa's
approximation of the mean wait (``queueing_stretch``). Latency stays near the base while
there is headroom and climbs steeply as ``rho`` nears 1, as real origins do; past
``RHO_MAX`` (an overload: the queue would grow without bound) it keeps climbing along the
curve's tangent, up to ``MAX_STRETCH`` times the base (``sandbox.origin_queueing``).

With ``edge_url`` set (the Cloudflare emulator's admin URL), the origin also reports every
request it serves to the emulated edge, in batches every ``edge_report_seconds``
(``POST {edge_url}/edge-requests``: host, path, method, time to first byte, status), so the
edge answers 524 for those slower than the read timeout in force for them and counts them
for its analytics (``sandbox.cloudflare_emulator.edge_serving``). Time is not compressed
there: a request drawn with a 130 s time to first byte is reported at once, and the edge
judges it by the read timeout in force then.

A route served by two pools of pods at once (a weighted reroute) is two models with the
same ``route_label`` and their own ``pool`` label, each with its load and capacity: a
query summing by ``route`` reads their requests together, as it would a real origin's.

Standalone: ``python -m sandbox.origin_exporter --port 9101 --route api=2.5:20``.
"""

from __future__ import annotations

import argparse
import bisect
import collections
import contextlib
import json
import math
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from statistics import NormalDist
from typing import Any

from sandbox.origin_queueing import MAX_STRETCH as MAX_STRETCH
from sandbox.origin_queueing import RHO_MAX as RHO_MAX
from sandbox.origin_queueing import queueing_stretch as queueing_stretch

METRIC = "http_request_duration_seconds"
BUCKETS: tuple[float, ...] = (
    0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 45, 60, 75, 90, 100, 110, 120, 150, 180, 240,
    300, 360, 480, 600, 900, 1200, 1800, 3600, 6000,
)  # fmt: skip
"""Fine around Cloudflare's 100/120/125 s timeouts, up to the 6000 s Enterprise maximum."""
CLIENT_DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
)  # fmt: skip
"""The Prometheus client libraries' defaults: too coarse to see a 120 s budget."""
_STD_NORMAL = NormalDist()
_Z95 = _STD_NORMAL.inv_cdf(0.95)


@dataclass(frozen=True)
class RouteModel:
    """How one route behaves: its P95 target, its request rate and its label values."""

    p95: float
    rps: float = 20.0
    host: str = "origin.example.com"
    sigma: float = 0.5
    """Log-normal spread; larger means a longer tail below the P95."""
    capacity_rps_per_replica: float | None = None
    """With ``replicas_for``: requests per second one replica serves at the base P95 (linear
    model), or at full utilisation (queueing model)."""
    servers_per_replica: int | None = None
    """Parallel slots per replica; set, it selects the queueing model (``queueing_stretch``)."""
    route_label: str | None = None
    """The ``route`` label's value; default: the name the model is set under. Two models
    with the same ``route_label`` and different ``pool`` are two pools of pods serving one
    route, as a real origin's pods each export their own histogram."""
    pool: str | None = None
    """A ``pool`` label on the series, when set."""
    path: str = "/"
    """The path its requests are reported to the edge with (``edge_url``)."""
    method: str = "GET"
    """The method its requests are reported to the edge with."""
    status: int = 200
    """The status the origin answers (the edge's, unless it gives up first)."""

    def __post_init__(self) -> None:
        if not (self.p95 > 0 and math.isfinite(self.p95)):
            raise ValueError(f"p95 must be a positive number of seconds, got {self.p95!r}")
        if self.rps < 0 or self.sigma <= 0:
            raise ValueError("rps must be >= 0 and sigma > 0")
        if self.servers_per_replica is not None and self.servers_per_replica < 1:
            raise ValueError("servers_per_replica must be >= 1")

    @classmethod
    def from_json(cls, data: Mapping[str, Any], base: RouteModel | None = None) -> RouteModel:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model fields {sorted(unknown)}; known: {sorted(known)}")
        if base is not None:
            return replace(base, **data)
        return cls(**data)


@dataclass
class _Histogram:
    bounds: tuple[float, ...]
    counts: list[int]
    total: int = 0
    sum: float = 0.0
    drawn: int = 0
    carry: float = 0.0

    def observe(self, seconds: float) -> None:
        index = bisect.bisect_left(self.bounds, seconds)  # first bound >= seconds (le)
        if index < len(self.bounds):
            self.counts[index] += 1
        self.total += 1
        self.sum += seconds


def _van_der_corput(n: int) -> float:
    """The n-th (n >= 1) point of the base-2 van der Corput sequence, in (0, 1)."""
    q, denom = 0.0, 1.0
    while n:
        denom *= 2
        n, bit = divmod(n, 2)
        q += bit / denom
    return q


@dataclass
class OriginExporter:
    """The exporter; ``start()`` binds a free loopback port unless ``port`` is given."""

    metric: str = METRIC
    buckets: Sequence[float] = BUCKETS
    tick_seconds: float = 0.5
    port: int = 0
    replicas_for: Callable[[str], int] | None = None
    edge_url: str | None = None
    """The Cloudflare emulator's admin URL (``.../__emulator``): report requests there."""
    edge_report_seconds: float = 1.0
    edge_statuses: collections.Counter[tuple[str, int | None]] = field(
        default_factory=collections.Counter, init=False
    )
    """Per (model, edge status) the requests reported (``None``: Cloudflare never saw it)."""
    edge_errors: int = field(default=0, init=False)
    """Batches the emulator did not take (dropped: the origin does not queue them)."""
    edge_last_error: str = field(default="", init=False)
    _edge_pending: list[tuple[str, dict[str, Any]]] = field(default_factory=list, init=False)
    _models: dict[str, RouteModel] = field(default_factory=dict, init=False)
    _hist: dict[str, _Histogram] = field(default_factory=dict, init=False)
    _bucket_overrides: dict[str, tuple[float, ...]] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _server: ThreadingHTTPServer | None = field(default=None, init=False)
    _threads: list[threading.Thread] = field(default_factory=list, init=False)

    # ------------------------------------------------------------------ model

    def set_route(
        self,
        route: str,
        p95: float,
        rps: float = 20.0,
        host: str = "origin.example.com",
        buckets: Sequence[float] | None = None,
        **extra: Any,
    ) -> None:
        """Set (or replace) a route's model. ``buckets`` gives this route its own layout
        (e.g. ``CLIENT_DEFAULT_BUCKETS``); changing it restarts the route's counters."""
        model = RouteModel(p95=p95, rps=rps, host=host, **extra)
        with self._lock:
            if buckets is not None and tuple(buckets) != self._bucket_overrides.get(route):
                self._bucket_overrides[route] = tuple(sorted(buckets))
                self._hist.pop(route, None)
            old = self._models.get(route)
            if old is not None and old.host != model.host:
                self._hist.pop(route, None)  # a new label set is a new series
            self._models[route] = model

    def update_models(self, changes: Mapping[str, Mapping[str, Any] | None]) -> None:
        """Apply a ``POST /model`` body: partial updates per route, ``None`` removes one."""
        parsed: dict[str, RouteModel | None] = {}
        with self._lock:
            for route, data in changes.items():
                if data is None:
                    parsed[route] = None
                else:
                    parsed[route] = RouteModel.from_json(data, self._models.get(route))
        for route, model in parsed.items():
            if model is None:
                self.remove_route(route)
            else:
                self.set_route(route, **asdict(model))

    def remove_route(self, route: str) -> None:
        """Stop serving a route; its series disappear from ``/metrics`` (go stale)."""
        with self._lock:
            self._models.pop(route, None)
            self._hist.pop(route, None)
            self._bucket_overrides.pop(route, None)

    def models(self) -> dict[str, RouteModel]:
        with self._lock:
            return dict(self._models)

    def effective_p95(self, route: str, model: RouteModel | None = None) -> float:
        """The P95 the route produces now, after the load/replicas stretch (if wired)."""
        m = model or self._models[route]
        if self.replicas_for is None or not m.capacity_rps_per_replica:
            return m.p95
        replicas = max(1, self.replicas_for(route))
        load = m.rps / (m.capacity_rps_per_replica * replicas)
        if m.servers_per_replica is not None:
            return m.p95 * queueing_stretch(load, replicas * m.servers_per_replica)
        return m.p95 * max(1.0, load)

    # ------------------------------------------------------------------ traffic

    def tick(self, dt: float) -> None:
        """Serve ``rps * dt`` requests per route (fractions carry over to the next tick)."""
        now = time.time()
        with self._lock:
            for route, model in self._models.items():
                hist = self._hist.get(route)
                if hist is None:
                    bounds = self._bucket_overrides.get(route, tuple(sorted(self.buckets)))
                    hist = self._hist[route] = _Histogram(bounds, [0] * len(bounds))
                want = hist.carry + model.rps * dt
                n = int(want + 1e-9)  # 0.3 * 10 must make 3 requests, not 2.9999...
                hist.carry = want - n
                if n == 0:
                    continue
                # Log-normal with P95 = target: mu = ln(p95) - z95 * sigma.
                mu = math.log(self.effective_p95(route, model)) - _Z95 * model.sigma
                for _ in range(n):
                    hist.drawn += 1
                    z = _STD_NORMAL.inv_cdf(_van_der_corput(hist.drawn))
                    seconds = math.exp(mu + model.sigma * z)
                    hist.observe(seconds)
                    if self.edge_url is not None:
                        self._edge_pending.append((route, _edge_request(model, seconds, now)))

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.tick_seconds):
            now = time.monotonic()
            self.tick(now - last)
            last = now

    # ------------------------------------------------------------------ the edge

    def report_to_edge(self, timeout: float = 5.0) -> int:
        """Send the requests served since the last report to the edge (``edge_url``); returns
        how many it took. A batch the emulator does not take is dropped and counted."""
        with self._lock:
            batch, self._edge_pending = self._edge_pending, []
        url = self.edge_url
        if not batch or url is None:
            return 0
        body = json.dumps({"requests": [r for _, r in batch]}).encode()
        request = urllib.request.Request(
            f"{url}/edge-requests",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                statuses = json.loads(answer.read())["result"]["statuses"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            with self._lock:
                self.edge_errors += 1
                self.edge_last_error = repr(exc)
            return 0
        with self._lock:
            for (route, _), status in zip(batch, statuses, strict=False):
                self.edge_statuses[(route, status)] += 1
        return len(statuses)

    def _report_loop(self) -> None:
        while not self._stop.wait(self.edge_report_seconds):
            self.report_to_edge()

    # ------------------------------------------------------------------ exposition

    def render(self) -> str:
        """The Prometheus text exposition of every route's histogram."""
        lines = [
            f"# HELP {self.metric} Synthetic origin request duration (time to first byte).",
            f"# TYPE {self.metric} histogram",
        ]
        with self._lock:
            for route in sorted(self._hist):
                hist = self._hist[route]
                model = self._models.get(route)
                if model is None:
                    continue
                name = model.route_label or route
                labels = f'route="{_escape(name)}",host="{_escape(model.host)}"'
                if model.pool is not None:
                    labels += f',pool="{_escape(model.pool)}"'
                cumulative = 0
                for bound, count in zip(hist.bounds, hist.counts, strict=True):
                    cumulative += count
                    le = repr(float(bound))
                    lines.append(f'{self.metric}_bucket{{{labels},le="{le}"}} {cumulative}')
                lines.append(f'{self.metric}_bucket{{{labels},le="+Inf"}} {hist.total}')
                lines.append(f"{self.metric}_sum{{{labels}}} {hist.sum!r}")
                lines.append(f"{self.metric}_count{{{labels}}} {hist.total}")
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def target(self) -> str:
        """``host:port`` for a Prometheus ``static_configs`` target."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> OriginExporter:
        if self._server is not None:
            raise RuntimeError("exporter already started")
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler_for(self))
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._server.serve_forever, name="origin-http", daemon=True),
            threading.Thread(target=self._run, name="origin-traffic", daemon=True),
            threading.Thread(target=self._report_loop, name="origin-edge-report", daemon=True),
        ]
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for t in self._threads:
            t.join(timeout=5)
        self._threads = []

    def __enter__(self) -> OriginExporter:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _edge_request(model: RouteModel, seconds: float, at: float) -> dict[str, Any]:
    """One served request as ``POST /__emulator/edge-requests`` takes it."""
    return {
        "host": model.host,
        "path": model.path,
        "method": model.method,
        "ttfbSeconds": round(seconds, 3),
        "status": model.status,
        "at": at,
    }


def _escape(value: str) -> str:
    """Text-format label value escaping: backslash, double quote, newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _handler_for(exporter: OriginExporter) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass  # scrapes every second would flood the test output

        def _send(self, status: int, body: str, content_type: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _json(self, status: int, payload: object) -> None:
            self._send(status, json.dumps(payload) + "\n", "application/json")

        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, exporter.render(), "text/plain; version=0.0.4; charset=utf-8")
            elif self.path == "/model":
                self._json(200, {r: asdict(m) for r, m in exporter.models().items()})
            elif self.path in ("/-/healthy", "/"):
                self._send(200, "ok\n", "text/plain")
            else:
                self._json(404, {"error": f"no such path {self.path}"})

        def do_POST(self) -> None:
            if self.path != "/model":
                self._json(404, {"error": f"no such path {self.path}"})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if not isinstance(body, dict) or not all(
                    v is None or isinstance(v, dict) for v in body.values()
                ):
                    raise ValueError('expected {"<route>": {"p95": seconds, ...} | null}')
                exporter.update_models(body)
            except (ValueError, TypeError) as exc:
                self._json(400, {"error": str(exc)})
                return
            self._json(200, {r: asdict(m) for r, m in exporter.models().items()})

    return Handler


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0, help="listen port (default: a free one)")
    parser.add_argument(
        "--route",
        action="append",
        default=[],
        metavar="NAME=P95[:RPS]",
        help="a route and its P95 in seconds (repeatable), e.g. api=2.5:20",
    )
    parser.add_argument("--host", default="origin.example.com", help="host label value")
    parser.add_argument(
        "--edge-url",
        default=None,
        help="the Cloudflare emulator's admin URL (http://127.0.0.1:PORT/__emulator): "
        "report every request there",
    )
    args = parser.parse_args(argv)
    exporter = OriginExporter(port=args.port, edge_url=args.edge_url)
    for spec in args.route:
        name, _, rest = spec.partition("=")
        p95, _, rps = rest.partition(":")
        exporter.set_route(name, float(p95), float(rps or 20), host=args.host)
    exporter.start()
    print(f"origin exporter on {exporter.url}/metrics (POST {exporter.url}/model)", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with contextlib.suppress(KeyboardInterrupt):
        done.wait()
    exporter.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
