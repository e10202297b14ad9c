"""A TimeoutBudget as the watch last saw it: the cycle's input, one per route.

The route watch keeps these (``route_watch``, ``snapshot_entry``), so a cycle reads every
route without an API call. The spec is kept as compact JSON text (parsed only when its
generation changes) and the status with its keys and short strings shared: at 10,000
routes that is about half the memory of the watched bodies.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from timeout_budget.model.spec import RouteKey, route_key

INTERN_UP_TO = 64
"""Strings up to this length are shared between snapshots (``sys.intern``)."""


@dataclass(frozen=True, slots=True)
class RouteSnapshot:
    namespace: str
    name: str
    uid: str
    generation: int | None
    spec: Mapping[str, Any] | str
    """The spec, or (as watched) its compact JSON text: parsed only when the generation
    changes, and a fifth of the memory of the nested dicts (~0.4 instead of ~2 kB)."""
    status: Mapping[str, Any]

    @property
    def key(self) -> RouteKey:
        return route_key(self.namespace, self.name)

    def spec_dict(self) -> dict[str, Any]:
        if isinstance(self.spec, str):
            loaded: dict[str, Any] = json.loads(self.spec)
            return loaded
        return dict(self.spec)

    def ref(self) -> dict[str, Any]:
        return {
            "apiVersion": "timeoutbudget.io/v1alpha1",
            "kind": "TimeoutBudget",
            "metadata": {"namespace": self.namespace, "name": self.name, "uid": self.uid},
        }


def snapshot_entry(body: Mapping[str, Any]) -> dict[tuple[str, str], RouteSnapshot]:
    """The snapshot of one TimeoutBudget, by (namespace, name) (none while it is being deleted:
    the finalizer restores what the route changed, and a cycle must not re-apply it
    behind the finalizer's back)."""
    meta = body.get("metadata", {})
    if meta.get("deletionTimestamp"):
        return {}
    snap = RouteSnapshot(
        namespace=str(meta.get("namespace")),
        name=str(meta.get("name")),
        uid=str(meta.get("uid", "")),
        generation=meta.get("generation"),
        spec=json.dumps(body.get("spec", {}), separators=(",", ":")),
        status=_plain(body.get("status", {})),
    )
    return {(snap.namespace, snap.name): snap}


def _plain(value: Any) -> Any:
    """A plain copy of a watched body's part for the snapshot, its keys and short strings
    shared: every route's status repeats the same keys, condition types, reasons and (in
    one cycle) timestamps. At 10,000 routes that is ~43 MB less (4.4 instead of 8.7 kB a
    route, measured on a healthy route's spec and status)."""
    if isinstance(value, Mapping):
        return {sys.intern(str(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if type(value) is str and len(value) <= INTERN_UP_TO:
        return sys.intern(value)
    return value
