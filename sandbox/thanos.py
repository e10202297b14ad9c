"""A real distributed metrics backend for tests: Thanos Query over Prometheus + sidecars.

Thanos (``THANOS_VERSION`` in ``versions.env``) is built from its Go module by
``build-binaries.sh thanos`` and cached like the control plane. ``ThanosSandbox`` starts on
loopback:

* ``stores``: one Prometheus (Debian's 2.42, ``sandbox.prometheus``) per store, each with
  its own external labels (``store=<name>`` and ``tenant_id=<tenant>``: a sidecar refuses a
  Prometheus without external labels), and a ``thanos sidecar`` serving it as a StoreAPI
  on gRPC;
* ``queries``: one or more ``thanos query`` processes answering the Prometheus HTTP API
  (``/api/v1/query`` GET and form POST), each with ``--endpoint`` (or
  ``--endpoint-strict``) to every sidecar and its own extra flags (tenancy, ...). Partial
  responses are on, Thanos' default.

Everything (configs, data, one log per process) lives under ``workdir``. ``kill_sidecar``
SIGKILLs one store's sidecar to produce a real partial answer; ``restart_sidecar`` brings
it back on the same ports.

What Thanos Query (v0.42.4) answers, read in its source and seen in
``tests/integration/test_thanos_backend.py``:

* A dead store given with ``--endpoint-strict``: always asked, so every query whose
  selectors its external labels allow is HTTP 200 with the live stores' data and
  ``"warnings": ["fetch series for {store=\"b\", tenant_id=\"team-b\"} Addr: 127.0.0.1:P
  MinTime: ... MaxTime: ...: rpc error: code = Unavailable desc = connection error: desc =
  \"transport: Error while dialing: dial tcp 127.0.0.1:P: connect: connection refused\""]``;
  with ``partial_response=false`` HTTP 422, ``errorType`` ``execution``, ``error``
  ``expanding series: proxy Series(): fetch series for {store="b", ...} ...`` (the same
  text). A query sent just after the SIGKILL, while Query's gRPC client still holds the dead
  connection, gets the other wording of its proxy instead: ``"receive series from Addr:
  127.0.0.1:P MinTime: ... MaxTime: ...: rpc error: code = Unavailable desc = error reading
  from server: EOF"``, without the store's labels (``dead_store_wording`` tells them
  apart). A query naming only store a's external label (``store="a"``) is not sent to b.
* A dead store given with ``--endpoint`` (not strict): Query re-checks every endpoint each
  ``--endpoint.info-timeout`` (default 5 s; 1 s here) and leaves out one whose last check
  failed. Until that check, as above; after it the dead store is simply not asked: HTTP 200,
  the live stores' data, **no warning**, and ``partial_response=false`` changes nothing.
* Tenancy: ``--query.enforce-tenancy`` adds ``<--query.tenant-label-name>="<tenant>"``
  (default label ``tenant_id``) to every selector, the tenant read from
  ``--query.tenant-header`` (default ``THANOS-TENANT``; ``THANOS-TENANT`` is also read when
  the configured header is absent). Without a header the tenant is
  ``--query.default-tenant-id`` (default ``default-tenant``): HTTP 200 and, here, an empty
  result. With ``--query.default-tenant-id=`` (empty) a request without the header is HTTP
  400 ``{"status":"error","errorType":"bad_data","error":"tenant name not valid"}``. A
  selector naming another tenant is overridden by the header's, not refused.
* Thanos evaluates PromQL with Prometheus 3's engine (range selectors left-open): a sample
  exactly on a window's start counts in Prometheus 2.42 and not through Thanos.

Usage::

    with ThanosSandbox(workdir) as thanos:
        thanos.add_store("a", tenant="team-a", backfill_openmetrics=text)
        thanos.add_store("b", tenant="team-b")
        thanos.add_query("main")
        requests.post(f"{thanos.url}/api/v1/query", data={"query": "up"})
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from sandbox import binaries, procutil
from sandbox.procutil import free_port
from sandbox.prometheus import PrometheusServer


class ThanosFailed(RuntimeError):
    """A Thanos process exited or never became ready; the message names its log."""


def _progress(message: str) -> None:
    procutil.progress("thanos", message)


def thanos_binary(build: bool = True) -> Path:
    """``$TBO_THANOS_BIN``, or the cached build (built first when missing and ``build``)."""
    env = os.environ.get("TBO_THANOS_BIN")
    if env:
        return Path(env)
    return binaries.ensure_thanos(build=build)


@dataclass
class ThanosProcess:
    """One ``thanos <component>`` process on loopback: HTTP and gRPC ports, a log file."""

    name: str
    component: str
    """``query`` or ``sidecar``."""
    args: Sequence[str]
    workdir: Path
    binary: Path
    http_port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"thanos-{self.component}-{self.name}.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def argv(self) -> list[str]:
        return [
            str(self.binary),
            self.component,
            f"--http-address=127.0.0.1:{self.http_port}",
            f"--grpc-address=127.0.0.1:{self.grpc_port}",
            # Defaults are 2 min: a SIGTERM would wait that long for in-flight requests.
            "--http-grace-period=0s",
            "--grpc-grace-period=0s",
            "--log.level=info",
            *self.args,
        ]

    def start(self, ready_timeout: float = 60.0) -> ThanosProcess:
        if self.running:
            raise ThanosFailed(f"thanos {self.component} {self.name} is already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            log.write(f"# {' '.join(self.argv)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            log.close()
        self._wait_ready(ready_timeout)
        return self

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, SIGKILL if it is still running after ``timeout``."""
        self._signal(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL at once: the store vanishes as in a crash (no goodbye to its clients)."""
        self._signal(signal.SIGKILL, 5.0)

    def _signal(self, sig: signal.Signals, timeout: float) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                raise ThanosFailed(
                    f"thanos {self.component} {self.name} exited with code {code}:\n"
                    + self.log_tail()
                )
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise ThanosFailed(
            f"thanos {self.component} {self.name} not ready after {timeout}s:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return f"log {self.log_path}:\n" + "\n".join(text)


@dataclass
class _LabelledPrometheus(PrometheusServer):
    """``PrometheusServer`` whose config carries ``global.external_labels`` (for a sidecar)."""

    external_labels: dict[str, str] = field(default_factory=dict)

    def write_config(self, scrape_targets: Sequence[str], scrape_interval: str = "1s") -> None:
        super().write_config(scrape_targets, scrape_interval)
        config = json.loads(self.config_path.read_text())
        config["global"]["external_labels"] = dict(self.external_labels)
        self.config_path.write_text(json.dumps(config, indent=2) + "\n")


@dataclass
class ThanosStore:
    """One store: a Prometheus with external labels and its Thanos sidecar."""

    name: str
    tenant: str
    prometheus: PrometheusServer
    sidecar: ThanosProcess

    @property
    def external_labels(self) -> dict[str, str]:
        return {"store": self.name, "tenant_id": self.tenant}


@dataclass
class ThanosQuery:
    """One Thanos Query process and the stores it was pointed at."""

    name: str
    process: ThanosProcess
    stores: tuple[str, ...]
    strict: bool

    @property
    def url(self) -> str:
        return self.process.url


@dataclass
class ThanosSandbox:
    """Stores (Prometheus + sidecar) and Thanos Query processes in front of them."""

    workdir: Path | None = None
    """Configs, data and logs; ``None``: a temporary directory, removed by cleanup()."""
    binary: Path | None = None
    quiet: bool = False
    endpoint_info_timeout: str = "1s"
    """How often Query re-checks its endpoints (Thanos' hidden ``--endpoint.info-timeout``,
    default 5s): 1s so a store that comes back is used again quickly."""
    stores: dict[str, ThanosStore] = field(default_factory=dict, init=False)
    queries: dict[str, ThanosQuery] = field(default_factory=dict, init=False)
    _owns_workdir: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="tbo-thanos-"))
            self._owns_workdir = True
        self.workdir = Path(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.binary is None:
            self.binary = thanos_binary()

    @property
    def dir(self) -> Path:
        assert self.workdir is not None  # set in __post_init__
        return self.workdir

    @property
    def thanos(self) -> Path:
        assert self.binary is not None  # set in __post_init__
        return self.binary

    @property
    def url(self) -> str:
        """The first Query's URL (what the operator is pointed at)."""
        if not self.queries:
            raise ThanosFailed("no Thanos Query started")
        return next(iter(self.queries.values())).url

    # ------------------------------------------------------------------ stores

    def add_store(
        self,
        name: str,
        tenant: str = "default-tenant",
        scrape_targets: Sequence[str] = (),
        backfill_openmetrics: str | Path | None = None,
        scrape_interval: str = "1s",
        ready_timeout: float = 60.0,
    ) -> ThanosStore:
        """Start a Prometheus with external labels ``store=name, tenant_id=tenant`` and a
        sidecar in front of it."""
        if name in self.stores:
            raise ThanosFailed(f"store {name} exists")
        t0 = time.monotonic()
        prom = _LabelledPrometheus(
            workdir=self.dir / f"prometheus-{name}",
            quiet=True,
            external_labels={"store": name, "tenant_id": tenant},
        )
        prom.start(
            scrape_targets=scrape_targets,
            scrape_interval=scrape_interval,
            backfill_openmetrics=backfill_openmetrics,
            ready_timeout=ready_timeout,
        )
        sidecar = ThanosProcess(
            name=name,
            component="sidecar",
            args=[f"--prometheus.url={prom.url}", f"--tsdb.path={prom.data_dir}"],
            workdir=self.dir,
            binary=self.thanos,
        )
        store = ThanosStore(name, tenant, prom, sidecar)
        self.stores[name] = store
        sidecar.start()
        if not self.quiet:
            _progress(
                f"store {name} (tenant {tenant}): prometheus {prom.url}, sidecar "
                f"{sidecar.grpc_address}, ready in {time.monotonic() - t0:.1f}s"
            )
        return store

    def kill_sidecar(self, name: str) -> None:
        """SIGKILL one store's sidecar: Query's next fan-out to it fails."""
        self.stores[name].sidecar.kill()
        if not self.quiet:
            _progress(f"store {name}: sidecar killed")

    def restart_sidecar(self, name: str, wait: bool = True) -> None:
        """Start the sidecar again (same ports) and wait until every Query using it sees it."""
        store = self.stores[name]
        store.sidecar.start()
        if wait:
            for query in self.queries.values():
                if name in query.stores:
                    self.wait_endpoints(query.name)
        if not self.quiet:
            _progress(f"store {name}: sidecar back on {store.sidecar.grpc_address}")

    # ------------------------------------------------------------------ queries

    def add_query(
        self,
        name: str,
        stores: Sequence[str] | None = None,
        strict: bool = False,
        extra_flags: Sequence[str] = (),
        ready_timeout: float = 60.0,
    ) -> ThanosQuery:
        """Start a Thanos Query with ``--endpoint`` (``--endpoint-strict`` if ``strict``) to
        the sidecars of ``stores`` (default: all), and wait until it uses all of them."""
        if name in self.queries:
            raise ThanosFailed(f"query {name} exists")
        names = tuple(stores if stores is not None else self.stores)
        flag = "--endpoint-strict" if strict else "--endpoint"
        process = ThanosProcess(
            name=name,
            component="query",
            args=[
                *(f"{flag}={self.stores[s].sidecar.grpc_address}" for s in names),
                f"--endpoint.info-timeout={self.endpoint_info_timeout}",
                *extra_flags,
            ],
            workdir=self.dir,
            binary=self.thanos,
        )
        t0 = time.monotonic()
        process.start(ready_timeout)
        query = ThanosQuery(name, process, names, strict)
        self.queries[name] = query
        self.wait_endpoints(name, timeout=ready_timeout)
        if not self.quiet:
            _progress(
                f"query {name} on {process.url} ({flag} x{len(names)}), ready in "
                f"{time.monotonic() - t0:.1f}s (log {process.log_path})"
            )
        return query

    def endpoints(self, query: str) -> list[dict[str, object]]:
        """Query's ``/api/v1/stores`` view: its StoreAPI endpoints with their last error."""
        url = f"{self.queries[query].url}/api/v1/stores"
        with urllib.request.urlopen(url, timeout=10) as resp:
            data = json.loads(resp.read())["data"] or {}
        out: list[dict[str, object]] = []
        for group in data.values():
            out.extend(group or [])
        return out

    def healthy_endpoints(self, query: str) -> set[str]:
        return {str(e["name"]) for e in self.endpoints(query) if not e.get("lastError")}

    def wait_endpoints(self, query: str, timeout: float = 60.0) -> None:
        """Until Query has checked every sidecar of its stores that is running and found it
        healthy."""
        q = self.queries[query]
        want = {
            self.stores[s].sidecar.grpc_address for s in q.stores if self.stores[s].sidecar.running
        }
        deadline = time.monotonic() + timeout
        seen: set[str] = set()
        while time.monotonic() < deadline:
            seen = self.healthy_endpoints(query)
            if want <= seen:
                return
            time.sleep(0.1)
        raise ThanosFailed(
            f"query {query} sees {sorted(seen)}, not {sorted(want)} after {timeout}s:\n"
            + q.process.log_tail()
        )

    def wait_endpoint_unhealthy(self, query: str, store: str, timeout: float = 30.0) -> None:
        """Until Query's last check of ``store``'s sidecar failed (non-strict: from then on
        it is left out of queries)."""
        address = self.stores[store].sidecar.grpc_address
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if address not in self.healthy_endpoints(query):
                return
            time.sleep(0.1)
        raise ThanosFailed(f"query {query} still finds {address} healthy after {timeout}s")

    def dead_store_wording(self, text: str, store: str) -> str | None:
        """Which of Thanos' two wordings ``text`` (a warning, or a 422's error) uses for
        ``store``'s dead sidecar, or None if it is not about that sidecar.

        Thanos' proxy (``pkg/store/proxy_merge.go``) says ``"fetch series for {<external
        labels>} Addr: <address> ..."`` when the Series stream cannot be opened (Query dials,
        ``connection refused``) and ``"receive series from Addr: <address> ..."`` when it
        was opened on a connection that died under it (``code = Unavailable desc = error
        reading from server: EOF``). Which one the first query after a SIGKILL gets depends
        on whether Query's gRPC client has seen the connection close yet."""
        address = self.stores[store].sidecar.grpc_address
        external = sorted(self.stores[store].external_labels.items())
        labels = ", ".join(f'{k}="{v}"' for k, v in external)
        refused = f"dial tcp {address}: connect: connection refused"
        if f"fetch series for {{{labels}}} Addr: {address} " in text and refused in text:
            return "fetch"
        if f"receive series from Addr: {address} " in text and "code = Unavailable" in text:
            return "receive"
        return None

    # ------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        for query in self.queries.values():
            query.process.stop()
        for store in self.stores.values():
            store.sidecar.stop()
            store.prometheus.stop()

    def cleanup(self) -> None:
        """Stop everything; remove the work directory if this object created it."""
        self.stop()
        if self._owns_workdir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> ThanosSandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    def logs(self) -> Mapping[str, Path]:
        """Every log file, by process."""
        out: dict[str, Path] = {}
        for name, store in self.stores.items():
            out[f"prometheus-{name}"] = store.prometheus.log_path
            out[f"sidecar-{name}"] = store.sidecar.log_path
        for name, query in self.queries.items():
            out[f"query-{name}"] = query.process.log_path
        return out
