"""Session fixtures: the sandbox's real control plane, started once for all tests that need it.

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
from tests.support import kube

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
    yield from kube.scratch_namespace(control_plane)
