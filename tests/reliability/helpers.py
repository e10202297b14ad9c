"""Shared steps of the reliability scenarios (the objects they apply: ``tests.support.objects``)."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sandbox.cloudflare_emulator import CloudflareEmulator
from sandbox.controlplane import ControlPlane
from sandbox.origin_exporter import OriginExporter
from tests.support import kube
from tests.support import objects as kube_objects
from tests.support.foreign import Foreign
from tests.support.operator import OperatorProcess
from tests.support.reliability import REPORT, Row


@dataclass
class Scene:
    """What one scenario of a module works with (the ``scene`` fixture): the sandbox, the
    module's namespace and operator, the synthetic origin, the module's report area
    (``AREA``), and its Cloudflare emulator and foreign objects where it has them."""

    cp: ControlPlane
    ns: str
    origin: OriginExporter
    operator: Any
    """The module's ``operator`` fixture (a process, or test_crash_restart's restartable one)."""
    area: str
    emu: CloudflareEmulator | None = None
    foreign: Foreign | None = None

    def apply(self, *objects: dict[str, Any]) -> None:
        """``kubectl apply`` each object in the module's namespace."""
        kube_objects.apply(self.cp, self.ns, *objects)

    def status(self, name: str) -> dict[str, Any]:
        """The status of TimeoutBudget ``name`` (``{}`` before the first)."""
        return kube_objects.status_of(self.cp, self.ns, name)

    def replicas(self, name: str) -> int:
        """Deployment ``name``'s ``spec.replicas``."""
        return kube_objects.spec_replicas(self.cp, self.ns, name)

    def selector(self, name: str) -> dict[str, str]:
        """Service ``name``'s selector."""
        return kube_objects.selector_of(self.cp, self.ns, name)

    def annotations(self, kind: str, name: str) -> dict[str, str]:
        """The annotations of ``kind`` ``name`` (``{}`` when it has none)."""
        found = kube.get_json(self.cp, kind, name, "-n", self.ns)["metadata"].get("annotations")
        return dict(found or {})

    @contextmanager
    def case(self, case: str, checked: str, *, alive: bool = False) -> Iterator[Row]:
        """``REPORT.case(...)`` in the module's area, and once its block is through: the
        foreign objects as they were and, with ``alive=True``, the operator still running."""
        with REPORT.case(self.area, case, checked) as row:
            yield row
            if alive:
                assert self.operator.alive()
            if self.foreign is not None:
                self.foreign.assert_unchanged()


def apply_all(cp: ControlPlane, ns: str, *objects: dict[str, Any]) -> None:
    """Apply many objects with one kubectl call (a v1 List)."""
    body = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    cp.kubectl("apply", "-n", ns, "-f", "-", input_text=json.dumps(body))


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    for item in status.get("conditions") or []:
        if item.get("type") == type_:
            found: dict[str, Any] = item
            return found
    return {}


def kill(proc: OperatorProcess) -> None:
    """SIGKILL the operator's whole process group: no finalizers, no goodbye."""
    os.killpg(proc.proc.pid, signal.SIGKILL)
    proc.proc.wait(timeout=10)


def events_text(cp: ControlPlane, ns: str) -> str:
    items = json.loads(cp.kubectl("get", "events", "-n", ns, "-o", "json").stdout)["items"]
    return "\n".join(f"{e.get('type')} {e.get('reason')}: {e.get('message')}" for e in items)


def short(text: str, limit: int = 220) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
