"""Kubernetes Events about a TimeoutBudget: one per action taken, failed or refused.

Events are what ``kubectl describe tb`` shows under *Events*; they are posted through the
operator's own API seam (not kopf's logger bridge, which only works inside handlers).
A failure to post an Event is logged and never stops the loop.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from timeout_budget.clients.kube import Kube, KubeError

COMPONENT = "timeout-budget-operator"
log = logging.getLogger("timeout_budget.events")


def body(ref: Mapping[str, Any], type_: str, reason: str, message: str) -> dict[str, Any]:
    meta = ref["metadata"]
    now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{meta['name']}.{uuid.uuid4().hex[:16]}",
            "namespace": meta["namespace"],
        },
        "involvedObject": {
            "apiVersion": ref["apiVersion"],
            "kind": ref["kind"],
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid", ""),
        },
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


class EventPoster:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    async def __call__(self, ref: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        try:
            await self.kube.create_event(
                ref["metadata"]["namespace"], body(ref, type_, reason, message)
            )
        except KubeError as exc:
            log.warning("could not post Event %s for %s: %s", reason, ref["metadata"]["name"], exc)
