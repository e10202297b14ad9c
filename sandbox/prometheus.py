"""A real Prometheus (Debian's 2.42 package) for tests, benchmarks and the demo.

Tests need Prometheus' own PromQL engine, not a mock: ``histogram_quantile``'s NaN for no
traffic, its interpolation, its error messages. ``PrometheusServer`` runs ``/usr/bin/prometheus``
on a free loopback port with a generated config, a data directory and a log in a work
directory, and waits for ``/-/ready``. Two ways to get data in:

* exact histories: OpenMetrics text (``render_openmetrics``) turned into TSDB blocks with
  ``promtool tsdb create-blocks-from openmetrics`` *before* the server starts (backfilling a
  running server's recent hours is unsafe); query them with an explicit ``time=``;
* live data: ``scrape_targets`` (e.g. the synthetic origin exporter) scraped every second.

``stop()`` then ``start()`` again reuses the data directory and the port, so a test can take
Prometheus away and bring it back ("MetricsUnavailable, and back when it returns").

Usage::

    with PrometheusServer() as prom:
        prom.start(scrape_targets=["127.0.0.1:9101"])
        print(prom.url, prom.version())
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TextIO

from sandbox import procutil
from sandbox.procutil import free_port

PROMETHEUS_BIN = os.environ.get("TBO_PROMETHEUS_BIN", "/usr/bin/prometheus")
PROMTOOL_BIN = os.environ.get("TBO_PROMTOOL_BIN", "/usr/bin/promtool")


class PrometheusFailed(RuntimeError):
    """Prometheus (or promtool) exited or never became ready; the message names the log."""


def _progress(message: str) -> None:
    procutil.progress("prometheus", message)


@dataclass
class PrometheusServer:
    """One Prometheus process, its config, data and log under ``workdir``."""

    workdir: Path | None = None
    """Config, data and log live here; ``None``: a temporary directory, removed by cleanup()."""
    port: int = field(default_factory=free_port)
    binary: str = PROMETHEUS_BIN
    promtool: str = PROMTOOL_BIN
    quiet: bool = False
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _argv: list[str] = field(default_factory=list, init=False, repr=False)
    _owns_workdir: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="tbo-prometheus-"))
            self._owns_workdir = True
        self.workdir = Path(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)

    @property
    def dir(self) -> Path:
        assert self.workdir is not None  # set in __post_init__
        return self.workdir

    # ------------------------------------------------------------------ paths

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def config_path(self) -> Path:
        return self.dir / "prometheus.yml"

    @property
    def log_path(self) -> Path:
        return self.dir / "prometheus.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # ------------------------------------------------------------------ lifecycle

    def start(
        self,
        scrape_targets: Sequence[str] = (),
        scrape_interval: str = "1s",
        backfill_openmetrics: str | Path | None = None,
        retention: str = "100y",
        extra_flags: Sequence[str] = (),
        ready_timeout: float = 60.0,
    ) -> PrometheusServer:
        """Write the config, backfill (``str`` = OpenMetrics text, ``Path`` = a file), start,
        and wait for ``/-/ready``. Called again after ``stop()`` with no arguments it
        restarts with the same config, data directory and port."""
        if self.running:
            raise PrometheusFailed("Prometheus is already running; stop() it first")
        fresh = not self._argv or scrape_targets or backfill_openmetrics is not None
        if fresh:
            self.write_config(scrape_targets, scrape_interval)
            self._argv = [
                self.binary,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.data_dir}",
                f"--storage.tsdb.retention.time={retention}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                "--web.enable-remote-write-receiver",
                "--log.level=info",
                *extra_flags,
            ]
        if backfill_openmetrics is not None:
            self.backfill(backfill_openmetrics)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        log = self.log_path.open("ab")
        try:
            self._proc = subprocess.Popen(
                self._argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            log.close()
        self._wait_ready(ready_timeout)
        if not self.quiet:
            _progress(f"ready on {self.url} in {time.monotonic() - t0:.1f}s (log {self.log_path})")
        return self

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (a clean shutdown keeps the head's data for a restart); SIGKILL if stuck."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def restart(self, ready_timeout: float = 60.0) -> PrometheusServer:
        self.stop()
        return self.start(ready_timeout=ready_timeout)

    def cleanup(self) -> None:
        """Stop, and remove the work directory if this object created it."""
        self.stop()
        if self._owns_workdir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PrometheusServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    # ------------------------------------------------------------------ config and data

    def write_config(self, scrape_targets: Sequence[str], scrape_interval: str = "1s") -> None:
        # JSON is valid YAML: no YAML writer needed, and target strings are quoted safely.
        config: dict[str, object] = {
            "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
            "scrape_configs": [
                {
                    "job_name": "origin",
                    "scrape_interval": scrape_interval,
                    "scrape_timeout": scrape_interval,
                    "static_configs": [{"targets": list(scrape_targets)}],
                }
            ]
            if scrape_targets
            else [],
        }
        self.config_path.write_text(json.dumps(config, indent=2) + "\n")

    def set_scrape_targets(
        self, scrape_targets: Sequence[str], scrape_interval: str = "1s"
    ) -> None:
        """Rewrite the config and hot-reload it (``/-/reload``, lifecycle API)."""
        self.write_config(scrape_targets, scrape_interval)
        if self.running:
            req = urllib.request.Request(f"{self.url}/-/reload", method="POST")
            with urllib.request.urlopen(req, timeout=10) as resp:
                resp.read()

    def backfill(self, openmetrics: str | Path) -> None:
        """Turn an OpenMetrics history into blocks in the data directory (server stopped)."""
        if self.running:
            raise PrometheusFailed("backfill before start: never into a running server's head")
        if isinstance(openmetrics, Path):
            source = openmetrics
        else:
            source = self.dir / f"backfill-{time.time_ns()}.om.txt"
            source.write_text(openmetrics)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        result = subprocess.run(
            [
                self.promtool,
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                str(source),
                str(self.data_dir),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        with (self.dir / "promtool.log").open("a") as log:
            log.write(result.stdout + result.stderr)
        if result.returncode != 0:
            raise PrometheusFailed(
                f"promtool create-blocks-from openmetrics failed ({result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-2000:]}"
            )
        if not self.quiet:
            _progress(f"backfilled {source.name} in {time.monotonic() - t0:.1f}s")

    # ------------------------------------------------------------------ HTTP helpers

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                raise PrometheusFailed(f"prometheus exited with code {code}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise PrometheusFailed(f"prometheus not ready after {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return f"log {self.log_path}:\n" + "\n".join(text)

    def api_get(self, path: str, params: Mapping[str, str] | None = None) -> object:
        """GET ``/api/v1/<path>`` and return ``data`` (raises on an error status)."""
        query = "?" + urllib.parse.urlencode(params) if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=30) as resp:
            return json.loads(resp.read())["data"]

    def build_info(self) -> dict[str, str]:
        data = self.api_get("status/buildinfo")
        assert isinstance(data, dict)
        return {str(k): str(v) for k, v in data.items()}

    def version(self) -> str:
        return self.build_info().get("version", "unknown")

    def targets_up(self) -> int:
        data = self.api_get("targets", {"state": "active"})
        assert isinstance(data, dict)
        return sum(1 for t in data.get("activeTargets", []) if t.get("health") == "up")

    def wait_targets_up(self, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.targets_up() >= count:
                return
            time.sleep(0.2)
        raise PrometheusFailed(f"{count} scrape target(s) not up after {timeout}s")


# ---------------------------------------------------------------------- OpenMetrics


@dataclass(frozen=True)
class HistogramSample:
    """One histogram series at one instant: cumulative counts per finite bound, and total.

    ``counts[i]`` is the cumulative count for ``le=bounds[i]``; ``total`` is the ``+Inf``
    bucket (and ``_count``).
    """

    labels: Mapping[str, str]
    bounds: Sequence[float]
    counts: Sequence[float]
    total: float
    timestamp: float
    sum: float = 0.0


def openmetrics_label_value(value: str) -> str:
    """OpenMetrics label value escaping: backslash, double quote and newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_bound(bound: float) -> str:
    if math.isinf(bound):
        return "+Inf"
    return repr(float(bound))


def _labels(labels: Mapping[str, str], extra: Iterable[tuple[str, str]] = ()) -> str:
    pairs = [*labels.items(), *extra]
    if not pairs:
        return ""
    inner = ",".join(f'{k}="{openmetrics_label_value(v)}"' for k, v in pairs)
    return "{" + inner + "}"


def render_openmetrics(metric: str, samples: Iterable[HistogramSample]) -> str:
    """An OpenMetrics document for ``promtool tsdb create-blocks-from openmetrics``.

    Samples must be given in time order per series (promtool appends them in file order).
    """
    out = io.StringIO()
    _write_openmetrics(out, metric, samples)
    return out.getvalue()


def write_openmetrics(path: Path, metric: str, samples: Iterable[HistogramSample]) -> Path:
    """Like ``render_openmetrics`` but streamed to a file (large benchmark histories)."""
    with path.open("w") as f:
        _write_openmetrics(f, metric, samples)
    return path


def _write_openmetrics(out: TextIO, metric: str, samples: Iterable[HistogramSample]) -> None:
    out.write(f"# TYPE {metric} histogram\n")
    for s in samples:
        if len(s.bounds) != len(s.counts):
            raise ValueError("bounds and counts must have the same length")
        ts = f"{s.timestamp:.3f}"
        for bound, count in zip(s.bounds, s.counts, strict=True):
            le = format_bound(bound)
            out.write(f"{metric}_bucket{_labels(s.labels, [('le', le)])} {count!r} {ts}\n")
        out.write(f"{metric}_bucket{_labels(s.labels, [('le', '+Inf')])} {s.total!r} {ts}\n")
        out.write(f"{metric}_count{_labels(s.labels)} {s.total!r} {ts}\n")
        out.write(f"{metric}_sum{_labels(s.labels)} {s.sum!r} {ts}\n")
    out.write("# EOF\n")
