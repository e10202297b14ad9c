"""Fixtures of the integration tier (the servers it shares with the reliability suite are in
``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.controlplane import ControlPlane
from sandbox.origin_exporter import OriginExporter
from sandbox.prometheus import PrometheusServer
from tests.integration.edge_fixtures import CREDENTIAL_ENV, EdgeWorld, edge_world
from tests.support import operator as operator_process
from tests.support.emulator import EdgeCluster, enterprise_zone
from tests.support.operator import OperatorProcess


@pytest.fixture
def no_ambient_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Cloudflare credentials from the environment: with ``CLOUDFLARE_EMAIL`` or
    ``CLOUDFLARE_API_KEY`` set the SDK sends those, not the token. A module that talks to
    the emulator through the SDK in its own process asks for it (``edge`` below does)."""
    for name in CREDENTIAL_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def edge(no_ambient_credentials: None) -> Iterator[EdgeWorld]:
    """The Cloudflare emulator running, with clocks and a ZoneRegistry on it
    (``edge_fixtures.EdgeWorld``), and no credentials from the environment; a test needing
    other emulator settings uses ``edge_world(...)`` itself."""
    with edge_world() as world:
        yield world


@pytest.fixture
def edge_cluster(
    request: pytest.FixtureRequest,
    control_plane: ControlPlane,
    origin: OriginExporter,
    prometheus: PrometheusServer,
    namespace: str,
) -> Iterator[EdgeCluster]:
    """An operator-process test's sandbox with the emulator running the module's Enterprise
    zone ``ZONE_ID``, knowing its ``TOKEN`` (``tests.support.emulator.EdgeCluster``)."""
    token, zone_id = request.module.TOKEN, request.module.ZONE_ID
    with enterprise_zone(token, zone_id) as emu:
        yield EdgeCluster(control_plane, namespace, origin, prometheus, emu, token, zone_id)


@pytest.fixture(scope="module")
def operator(
    request: pytest.FixtureRequest,
    control_plane: ControlPlane,
    prometheus: PrometheusServer,
    ns: str,
) -> Iterator[OperatorProcess]:
    """The operator serving the module's namespace (``ns``), named after its
    ``NS_PREFIX``, for the module's tests."""
    name = request.module.NS_PREFIX
    yield from operator_process.running(
        operator_process.start(control_plane, prometheus.url, ns, name)
    )
