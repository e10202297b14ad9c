"""Small helpers for tests that talk to the sandbox's real API server."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from sandbox.controlplane import ControlPlane

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "crds"
SAMPLES = CRDS / "samples"

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T | None],
    timeout: float,
    what: str,
    interval: float = 0.25,
    until: Callable[[T], bool] | None = None,
) -> T:
    """Poll ``probe`` until it returns something truthy (or, given ``until``, something
    ``until`` accepts) and return that; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if until(last) if until is not None else last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def hold(probe: Callable[[], bool], seconds: float, what: str, interval: float = 0.25) -> int:
    """Assert ``probe`` stays true for ``seconds``; returns how many times it was checked."""
    deadline = time.monotonic() + seconds
    checks = 0
    while time.monotonic() < deadline:
        assert probe(), f"{what} did not hold (after {checks} good checks)"
        checks += 1
        time.sleep(interval)
    return checks


def install_crds(cp: ControlPlane) -> None:
    cp.kubectl("apply", "--server-side", "-f", str(CRDS))
    for crd in ("timeoutbudgets.timeoutbudget.io", "cloudflarezones.timeoutbudget.io"):
        cp.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")


def kopf_peerings(cp: ControlPlane, namespace: str, *names: str) -> None:
    """kopf's peering CRDs, and a ``KopfPeering`` named each of ``names`` in ``namespace``."""
    cp.kubectl("apply", "--server-side", "-f", str(CRDS / "peering"))
    cp.kubectl("wait", "--for=condition=Established", "crd/kopfpeerings.kopf.dev")
    for name in names:
        peering = {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": name}}
        cp.kubectl("apply", "-n", namespace, "-f", "-", input_text=json.dumps(peering))


def new_namespace(cp: ControlPlane, prefix: str = "t") -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    cp.kubectl("create", "namespace", name)
    # The default ServiceAccount comes from kube-controller-manager.
    wait_for(
        lambda: cp.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0,
        30,
        f"default ServiceAccount in {name}",
    )
    return name


def scratch_namespace(cp: ControlPlane, prefix: str = "t") -> Iterator[str]:
    """A fixture's body: a fresh namespace for the tests, deleted (without waiting) after."""
    name = new_namespace(cp, prefix)
    yield name
    cp.kubectl("delete", "namespace", name, "--wait=false", check=False)


def get_json(cp: ControlPlane, *args: str) -> dict[str, Any]:
    out = cp.kubectl("get", *args, "-o", "json")
    data: dict[str, Any] = json.loads(out.stdout)
    return data
