"""Shared servers for the integration tier: the synthetic origin and a Prometheus scraping it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.controlplane import ControlPlane
from sandbox.origin_exporter import OriginExporter
from sandbox.prometheus import PrometheusServer


@pytest.fixture(scope="session")
def origin() -> Iterator[OriginExporter]:
    exporter = OriginExporter(tick_seconds=0.25)
    exporter.start()
    yield exporter
    exporter.stop()


@pytest.fixture(scope="session")
def prometheus(origin: OriginExporter, control_plane: ControlPlane) -> Iterator[PrometheusServer]:
    server = PrometheusServer(workdir=control_plane.workdir / "prometheus-loop", quiet=True)
    server.start(scrape_targets=[origin.target], scrape_interval="1s")
    yield server
    server.stop()
    server.cleanup()
