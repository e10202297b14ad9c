"""Shared fixtures: the sandbox's real control plane, started once for all tests that need
it, namespaces in it, and the synthetic origin with a Prometheus scraping it.

Tests that need servers ask for the fixtures below; unit tests never do. When the
control-plane binaries are missing they are built (progress on stderr); if that is not
possible the integration tests are skipped with the reason, unless
``TBO_REQUIRE_SANDBOX=1`` (set by ``make test``), which turns the skip into a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import binaries
from sandbox.controlplane import ControlPlane
from sandbox.origin_exporter import OriginExporter
from sandbox.prometheus import PrometheusServer
from tests.support import kube, servers

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    try:
        bins_ok = binaries.ensure(build=True)
    except binaries.BinariesUnavailable as exc:
        if os.environ.get("TBO_REQUIRE_SANDBOX") == "1":
            pytest.fail(f"sandbox binaries unavailable: {exc}")
        pytest.skip(f"sandbox binaries unavailable: {exc}")
    del bins_ok
    workdir = REPO / ".sandbox" / f"pytest-{os.getpid()}"
    cp = ControlPlane.start(workdir=workdir, nodes=3)
    try:
        kube.install_crds(cp)
        yield cp
    finally:
        cp.stop()


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    """A fresh namespace for one test."""
    yield from kube.scratch_namespace(control_plane)


@pytest.fixture(scope="module")
def ns(request: pytest.FixtureRequest, control_plane: ControlPlane) -> Iterator[str]:
    """A namespace shared by the tests of one module (and the operator it starts), named
    after the module's ``NS_PREFIX``."""
    yield from kube.scratch_namespace(control_plane, request.module.NS_PREFIX)


@pytest.fixture(scope="session")
def origin() -> Iterator[OriginExporter]:
    """The synthetic origin: each test sets the latency of the routes it uses."""
    with servers.synthetic_origin() as exporter:
        yield exporter


@pytest.fixture(scope="session")
def prometheus(origin: OriginExporter, control_plane: ControlPlane) -> Iterator[PrometheusServer]:
    """A Prometheus scraping ``origin`` every second."""
    with servers.prometheus_scraping(origin, control_plane.workdir / "prometheus-loop") as server:
        yield server
