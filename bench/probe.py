"""The real operator process, with counters: ``python -m bench.probe [timeout-budget run args]``.

The benchmark must measure the operator a user runs, not a model of it. This wrapper runs
``timeout_budget.__main__.main(["run", ...])`` unchanged (kopf, its watches and index, the
evaluation loop, the engine, the clients) and only adds bookkeeping:

* every HTTP request the process sends is counted where it leaves: urllib3 (the
  ``kubernetes`` client and ``requests`` for Prometheus) and aiohttp (kopf's watches and
  patches), keyed ``kube <verb> <resource>`` (verbs as the API server names them: list,
  watch, get, create, patch, update, delete), ``prom <path>`` or ``other <host>``; the
  Cloudflare SDK's requests are counted by the emulator's own request log instead;
* the changes the origins' watches stream in (``watch events origins``: not requests, the
  events on the open watches);
* the evaluation cycle's phases (Prometheus observe, namespace lists, edge flush) are timed
  by wrapping the functions the engine calls;
* at each cycle's log line (``cycle: N routes, ...``) one JSON line is appended to
  ``$TBO_BENCH_PROBE_OUT``: the cycle's report, wall-clock start and end, the counters so
  far, CPU seconds (``/proc/self/stat`` utime+stime, all threads), ``VmRSS`` and ``VmHWM``
  from ``/proc/self/status``.

The harness turns consecutive lines into per-cycle figures.
"""

from __future__ import annotations

import collections
import ctypes
import gc
import json
import logging
import os
import re
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

_COUNTS: collections.Counter[str] = collections.Counter()
_LOCK = threading.Lock()
_PHASES: dict[str, float] = {}
_IN_FLIGHT = [0, 0]  # urllib3 requests in flight now, and the most so far
_CYCLE: dict[str, float] = {}
_CYCLE_LINE = re.compile(r"^cycle: ")
_TICKS = os.sysconf("SC_CLK_TCK")


def _count(key: str) -> None:
    with _LOCK:
        _COUNTS[key] += 1


def kube_verb_resource(method: str, path: str, query: str) -> str:
    """``list deployments``, ``patch timeoutbudgets/status``, ``watch timeoutbudgets``, ..."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"]:
        rest = parts[2:]  # api/v1/...
    elif parts[:1] == ["apis"]:
        rest = parts[3:]  # apis/group/version/...
    else:
        return f"{method.lower()} {path}"
    if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) > 2:
        rest = rest[2:]
    resource = rest[0] if rest else "(root)"
    name = rest[1] if len(rest) > 1 else None
    sub = "/".join(rest[2:])
    if sub:
        resource = f"{resource}/{sub}"
    method = method.upper()
    watching = "watch" in parse_qs(query) and parse_qs(query)["watch"][0] in ("true", "1")
    verb = {
        "GET": "watch" if watching else ("get" if name else "list"),
        "POST": "create",
        "PATCH": "patch",
        "PUT": "update",
        "DELETE": "delete",
    }.get(method, method.lower())
    return f"{verb} {resource}"


def _install_counters(kube_port: int, prom_port: int) -> None:
    import aiohttp
    import urllib3.connectionpool

    original_urlopen = urllib3.connectionpool.HTTPConnectionPool.urlopen

    def urlopen(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        split = urlsplit(url)
        if self.port == kube_port:
            _count("kube " + kube_verb_resource(method, split.path, split.query))
        elif self.port == prom_port:
            _count(f"prom {split.path}")
        else:
            _count(f"other {self.host}:{self.port}")
        with _LOCK:
            _IN_FLIGHT[0] += 1
            _IN_FLIGHT[1] = max(_IN_FLIGHT[1], _IN_FLIGHT[0])
        try:
            return original_urlopen(self, method, url, *args, **kwargs)
        finally:
            with _LOCK:
                _IN_FLIGHT[0] -= 1

    urllib3.connectionpool.HTTPConnectionPool.urlopen = urlopen  # type: ignore[method-assign]

    for pool in (urllib3.connectionpool.HTTPConnectionPool, urllib3.HTTPSConnectionPool):
        _count_new_connections(pool, kube_port, prom_port)

    original_connect = aiohttp.TCPConnector._create_connection

    async def create_connection(self: Any, req: Any, *args: Any, **kwargs: Any) -> Any:
        _count("connections kube (aiohttp)" if req.url.port == kube_port else "connections other")
        return await original_connect(self, req, *args, **kwargs)

    aiohttp.TCPConnector._create_connection = create_connection  # type: ignore[method-assign]

    original_request = aiohttp.ClientSession._request

    async def request(self: Any, method: str, str_or_url: Any, **kwargs: Any) -> Any:
        split = urlsplit(str(str_or_url))
        query = split.query
        params = kwargs.get("params")
        if params:
            query = "&".join(f"{k}={v}" for k, v in dict(params).items()) + "&" + query
        if split.port == kube_port:
            _count("kube " + kube_verb_resource(method, split.path, query))
        else:
            _count(f"other {split.hostname}:{split.port}")
        return await original_request(self, method, str_or_url, **kwargs)

    aiohttp.ClientSession._request = request  # type: ignore[method-assign]


def _count_new_connections(pool: Any, kube_port: int, prom_port: int) -> None:
    original = pool._new_conn

    def new_conn(self: Any) -> Any:
        where = "kube" if self.port == kube_port else "prom" if self.port == prom_port else "other"
        _count(f"connections {where} (urllib3)")
        return original(self)

    pool._new_conn = new_conn


def _timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            return await fn(*args, **kwargs)
        finally:
            _PHASES[name] = _PHASES.get(name, 0.0) + time.monotonic() - started

    return wrapper


def _install_phase_timers() -> None:
    from timeout_budget.clients import watch_store
    from timeout_budget.clients.kube import Kube
    from timeout_budget.cycle import engine
    from timeout_budget.cycle.report import CycleReport
    from timeout_budget.edge.registry import ZoneRegistry
    from timeout_budget.observe import cluster
    from timeout_budget.observe.latency import LatencyObserver

    parts = LatencyObserver.observe_parts

    async def timed_parts(self: Any, *args: Any, **kwargs: Any) -> Any:
        # The engine reads the answers batch by batch: "observe" is from the first query to
        # the last part handed over, "observe_answered" to Prometheus' last answer.
        started = time.monotonic()
        try:
            async for part in parts(self, *args, **kwargs):
                yield part
        finally:
            _PHASES["observe"] = _PHASES.get("observe", 0.0) + time.monotonic() - started
            for phase, attribute in (
                ("observe_answered", "answered_in"),
                ("observe_received", "received_in"),
                ("observe_sent_by", "sent_by"),
            ):
                _PHASES[phase] = _PHASES.get(phase, 0.0) + getattr(self, attribute, 0.0)

    LatencyObserver.observe_parts = timed_parts  # type: ignore[method-assign]
    apply_event = watch_store.Store.apply

    def counted_apply(self: Any, event_type: str, obj: Any) -> None:
        _count("watch events origins")  # changes streamed to the origin copies (not requests)
        apply_event(self, event_type, obj)

    watch_store.Store.apply = counted_apply  # type: ignore[method-assign]
    cluster.read_namespaces = _timed("list", cluster.read_namespaces)
    ZoneRegistry.flush = _timed("edge_flush", ZoneRegistry.flush)  # type: ignore[method-assign]
    evaluate = engine.Engine.evaluate
    patch_status = Kube.patch_budget_status

    async def counted_patch_status(
        self: Kube, namespace: str, name: str, status: dict[str, Any]
    ) -> None:
        for key in status:
            _count(f"status field {key}")
        await patch_status(self, namespace, name, status)

    Kube.patch_budget_status = counted_patch_status  # type: ignore[method-assign]

    async def timed_evaluate(self: Any, snapshots: Any, lane: Any = None) -> Any:
        if lane is not None:  # a fast-lane pass: not a cycle, not recorded as one
            return await evaluate(self, snapshots, lane=lane)
        _PHASES.clear()
        _CYCLE["started"] = time.time()
        _CYCLE["cpu_started"] = _cpu_seconds()
        health = self.origins.health() if hasattr(self.origins, "health") else {}
        _CYCLE["origin_objects"] = sum(held for held, _ in health.values())
        _CYCLE["skipped"] = _skip_requested()
        if _CYCLE["skipped"]:
            # The harness times the floor query in this period, at the very moment a cycle
            # would have started: the operator sends nothing and writes nothing in it.
            return CycleReport(routes=0)
        return await evaluate(self, snapshots)

    engine.Engine.evaluate = timed_evaluate  # type: ignore[method-assign]


def _skip_requested() -> bool:
    """The harness asks for one period without a cycle by leaving a ``.skip`` file next to
    the records (``measure.Operator.request_skip``); taken once."""
    flag = Path(os.environ["TBO_BENCH_PROBE_OUT"]).with_suffix(".skip")
    try:
        flag.unlink()
    except FileNotFoundError:
        return False
    return True


def _cpu_seconds() -> float:
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14, 15)


def _status_kib() -> dict[str, int]:
    out: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


class _CycleRecorder(logging.Handler):
    def __init__(self, out: Path) -> None:
        super().__init__(logging.INFO)
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        if not isinstance(record.msg, str) or not _CYCLE_LINE.match(record.msg):
            return
        # The operator's cycle line: routes, actions, failed, status patches, seconds,
        # states, then (since the quiet routes) the routes not decided again, then the routes
        # whose reading alone changed and was not written yet.
        args = tuple(record.args or ()) + (0,) * 8
        routes, applied, failed, patches, duration, states, unchanged, held = args[:8]
        with _LOCK:
            counts = dict(_COUNTS)
        line = {
            "ended": time.time(),
            "started": _CYCLE.get("started"),
            "skipped": bool(_CYCLE.get("skipped")),
            "routes": routes,
            "actions_applied": applied,
            "actions_failed": failed,
            "status_patches": patches,
            "unchanged_routes": unchanged,
            "readings_held": held,
            "duration_seconds": duration,
            "states": states,
            "phases": dict(_PHASES),
            "cpu_seconds": _cpu_seconds(),
            "cpu_at_start": _CYCLE.get("cpu_started"),
            "origin_objects": _CYCLE.get("origin_objects"),
            "counts": counts,
            "urllib3_max_in_flight": _IN_FLIGHT[1],
            **{k.lower(): v for k, v in _status_kib().items()},
        }
        with self.out.open("a") as handle:
            handle.write(json.dumps(line) + "\n")
        if tracemalloc.is_tracing():
            _dump_allocations(self.out.with_suffix(".tracemalloc.txt"))
        if os.environ.get("TBO_BENCH_OBJECTS"):
            _dump_objects(self.out.with_suffix(".objects.txt"))
        if os.environ.get("TBO_BENCH_MALLOCSTATS"):
            _dump_allocators(self.out.with_suffix(".malloc.txt"))


def _dump_objects(path: Path) -> None:
    """Diagnostics (``TBO_BENCH_OBJECTS=1``): the most numerous live objects, by type."""
    counts: collections.Counter[str] = collections.Counter()
    sizes: collections.Counter[str] = collections.Counter()
    for obj in gc.get_objects():
        name = f"{type(obj).__module__}.{type(obj).__qualname__}"
        counts[name] += 1
        sizes[name] += sys.getsizeof(obj)
    lines = [f"=== {time.strftime('%H:%M:%S')} {sum(counts.values())} tracked objects"]
    for name, size in sizes.most_common(25):
        lines.append(f"{size / 2**20:8.1f} MiB {counts[name]:9d} {name}")
    with path.open("a") as handle:
        handle.write("\n".join(lines) + "\n")


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


_PYMALLOC_LINES = (
    "# arenas allocated current",
    "# bytes in allocated blocks",
    "# bytes in available blocks",
    "unused pools",
    "# bytes lost to pool headers",
    "# bytes lost to quantization",
    "# bytes lost to arena alignment",
    "Total",
)


def _dump_allocators(path: Path) -> None:
    """Diagnostics (``TBO_BENCH_MALLOCSTATS=1``): what each allocator holds after a cycle.

    Python's small-object allocator (``sys._debugmallocstats``: its arenas, the bytes in
    live blocks and in free ones) and glibc's (``mallinfo2``: the heap's size, what is in
    use and what is free inside it, and the ``mmap``ed blocks), with ``/proc/self/smaps_rollup``'s
    anonymous memory, so RSS can be told apart into live objects and free space."""
    with tempfile.TemporaryFile() as capture:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(capture.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        text = capture.read().decode(errors="replace")
    lines = [f"=== {time.strftime('%H:%M:%S')} rss {_status_kib().get('VmRSS', 0) / 1024:.1f} MiB"]
    lines.extend(
        f"  pymalloc {line.strip()}"
        for line in text.splitlines()
        if any(line.startswith(key) or key in line for key in _PYMALLOC_LINES)
    )
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        info = libc.mallinfo2()
        lines.append(
            "  glibc "
            + " ".join(
                f"{name}={getattr(info, name) / 2**20:.1f}MiB"
                for name in ("arena", "uordblks", "fordblks", "keepcost", "hblkhd")
            )
            + f" hblks={info.hblks} ordblks={info.ordblks}"
        )
    except (OSError, AttributeError) as exc:
        lines.append(f"  glibc: {exc}")
    rollup = Path("/proc/self/smaps_rollup")
    if rollup.exists():
        kib = {
            key: int(value.split()[0])
            for key, _, value in (line.partition(":") for line in rollup.read_text().splitlines())
            if key in ("Rss", "Anonymous", "Pss_File")
        }
        lines.append("  smaps " + " ".join(f"{k}={v / 1024:.1f}MiB" for k, v in kib.items()))
    with path.open("a") as handle:
        handle.write("\n".join(lines) + "\n")


def _sample_rss(path: Path, every: float = 2.0) -> None:
    """RSS over time, startup included (kopf's first pass over every object)."""
    started = time.monotonic()
    while True:
        kib = _status_kib()
        with path.open("a") as handle:
            handle.write(
                f"{time.monotonic() - started:.1f} {kib.get('VmRSS', 0) / 1024:.0f} "
                f"{_cpu_seconds():.2f}\n"
            )
        time.sleep(every)


def _dump_allocations(path: Path) -> None:
    """Diagnostics (``TBO_BENCH_TRACEMALLOC=<frames>``): where the live memory was allocated."""
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    stats = snapshot.statistics("traceback")
    total = sum(s.size for s in stats)
    lines = [f"=== {time.strftime('%H:%M:%S')} traced {total / 2**20:.1f} MiB"]
    lines.append("by file (where the block was allocated, innermost frame):")
    lines.extend(
        f"{stat.size / 2**20:8.1f} MiB {stat.count:8d} blocks {stat.traceback[0].filename}"
        for stat in snapshot.statistics("filename")[:20]
    )
    lines.append("by traceback:")
    for stat in stats[:25]:
        lines.append(f"{stat.size / 2**20:8.1f} MiB {stat.count:8d} blocks")
        lines.extend(f"    {frame}" for frame in stat.traceback.format()[-12:])
    with path.open("a") as handle:
        handle.write("\n".join(lines) + "\n")


def main() -> int:
    out = Path(os.environ["TBO_BENCH_PROBE_OUT"])
    frames = int(os.environ.get("TBO_BENCH_TRACEMALLOC", "0"))
    if frames:
        tracemalloc.start(frames)
    kube_port = int(os.environ["TBO_BENCH_KUBE_PORT"])
    prom_port = urlsplit(os.environ["TBO_PROMETHEUS_URL"]).port or 80
    threading.Thread(
        target=_sample_rss, args=(out.with_suffix(".rss.txt"),), daemon=True, name="rss"
    ).start()
    _install_counters(kube_port, prom_port)
    _install_phase_timers()
    logging.getLogger("timeout_budget.loop").addHandler(_CycleRecorder(out))
    from timeout_budget.__main__ import main as operator_main

    return operator_main(["run", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
