"""Shared steps of the reliability scenarios (the objects they apply: ``tests.support.objects``)."""

from __future__ import annotations

import json
import os
import signal
from typing import Any

from sandbox.controlplane import ControlPlane
from tests.support.operator import OperatorProcess


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
