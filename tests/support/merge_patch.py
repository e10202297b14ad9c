"""A status merge patch as the API server applies it to a custom resource: RFC 7386 (a null
removes its key, at any depth; a list is replaced whole), then the CRD's pruning of the
nulls left inside a list's objects. The unit doubles store statuses this way, so a status
the operator builds with a null inside it differs from what it reads back, as it would."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def apply(old: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    stored = _pruned(_merged(old, patch))
    assert isinstance(stored, dict)
    return stored


def _merged(target: Any, change: Any) -> Any:
    if not isinstance(change, Mapping):
        return change
    out = dict(target) if isinstance(target, Mapping) else {}
    for key, value in change.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merged(out.get(key), value)
    return out


def _pruned(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _pruned(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value
