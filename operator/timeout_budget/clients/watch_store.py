"""One kind's copy of the origins' objects, slimmed to the fields the loop reads.

The watch cache keeps a ``Store`` per kind and scope, filled by a list and kept current by
the watch's events; the objects are indexed by (namespace, name) and by namespace.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Mapping
from typing import Any

from timeout_budget.clients.kube import Fields, slim

Key = tuple[str, str]
"""(namespace, name)"""


class Store:
    """One kind's objects by (namespace, name), slimmed as they arrive. Not thread-safe by
    itself: the watcher swaps and updates it under its lock."""

    def __init__(
        self, fields: Fields, annotation_prefix: str | tuple[str, ...] | None = None
    ) -> None:
        self.fields = fields
        self.annotation_prefix = annotation_prefix
        self.objects: dict[Key, dict[str, Any]] = {}
        self.by_namespace: dict[str, dict[str, dict[str, Any]]] = {}

    def slim(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """The fields the loop reads; of the annotations only the operator's own (others,
        such as kubectl's last-applied-configuration, can be larger than all the rest)."""
        out = slim(obj, self.fields)
        meta = out.get("metadata")
        if meta is not None:
            for key in ("name", "namespace"):
                if isinstance(meta.get(key), str):
                    meta[key] = sys.intern(meta[key])
            annotations = meta.get("annotations")
            if self.annotation_prefix is not None and isinstance(annotations, Mapping):
                meta["annotations"] = {
                    k: v for k, v in annotations.items() if k.startswith(self.annotation_prefix)
                }
        return out

    def put(self, obj: Mapping[str, Any]) -> None:
        item = self.slim(obj)
        ns, name = _key(item)
        self.objects[(ns, name)] = item
        self.by_namespace.setdefault(ns, {})[name] = item

    def delete(self, obj: Mapping[str, Any]) -> None:
        ns, name = _key(obj)
        self.objects.pop((ns, name), None)
        names = self.by_namespace.get(ns)
        if names is not None:
            names.pop(name, None)
            if not names:
                del self.by_namespace[ns]

    def apply(self, event_type: str, obj: Mapping[str, Any]) -> None:
        """A watch event: ADDED and MODIFIED replace the object, DELETED removes it."""
        if event_type in ("ADDED", "MODIFIED"):
            self.put(obj)
        elif event_type == "DELETED":
            self.delete(obj)

    def in_namespace(self, namespace: str) -> list[dict[str, Any]]:
        return list(self.by_namespace.get(namespace, {}).values())

    def retain(self, namespaces: Collection[str]) -> None:
        """Drop the objects of every other namespace."""
        for ns in [ns for ns in self.by_namespace if ns not in namespaces]:
            for name in self.by_namespace.pop(ns):
                self.objects.pop((ns, name), None)

    def __len__(self) -> int:
        return len(self.objects)


def _key(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")
