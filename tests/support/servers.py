"""The synthetic origin and a Prometheus scraping it, as the tests start them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sandbox.origin_exporter import OriginExporter
from sandbox.prometheus import PrometheusServer


@contextmanager
def synthetic_origin() -> Iterator[OriginExporter]:
    """The synthetic origin, its series moving every 0.25 s; each test sets its routes."""
    with OriginExporter(tick_seconds=0.25) as exporter:
        yield exporter


@contextmanager
def prometheus_scraping(origin: OriginExporter, workdir: Path) -> Iterator[PrometheusServer]:
    """A Prometheus in ``workdir`` scraping ``origin`` every second; stopped after."""
    with PrometheusServer(workdir=workdir, quiet=True) as server:
        server.start(scrape_targets=[origin.target], scrape_interval="1s")
        yield server
