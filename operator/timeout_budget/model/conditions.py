"""Kubernetes-style conditions, merged so that ``lastTransitionTime`` means what it says.

A condition's ``lastTransitionTime`` must move only when its ``status`` changes: a reason
or message that changes under the same status is news, not a transition. Evaluating every
15 s and stamping fresh times would also make status differ on every evaluation, and status
is patched only when it differs. So conditions are built in two steps: the ladder (and the
edge sync) state *what* each condition is (``ConditionInput``), and ``merge`` turns those
into status entries against the previous ones, keeping transition times where the status
held. Conditions written by someone else (another writer's types) are kept as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from timeout_budget.model.timestamps import rfc3339


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class ConditionType(StrEnum):
    READY = "Ready"
    METRICS_AVAILABLE = "MetricsAvailable"
    BUCKETS_COVER_BUDGET = "BucketsCoverBudget"
    SCALED = "Scaled"
    REROUTED = "Rerouted"
    EDGE_SYNCED = "EdgeSynced"
    EDGE_ERRORS = "EdgeErrors"
    EDGE_AGREES = "EdgeAgrees"


@dataclass(frozen=True)
class ConditionInput:
    type: str
    status: ConditionStatus
    reason: str
    """CamelCase, as Kubernetes expects (``^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$``)."""
    message: str = ""


def merge(
    previous: Sequence[Mapping[str, Any]] | None,
    inputs: Sequence[ConditionInput],
    *,
    now: float,
    generation: int | None,
) -> list[dict[str, Any]]:
    """The new ``status.conditions``: one entry per input type (a later input of the same
    type wins, so the edge sync can replace a placeholder), then the previous entries of
    other types untouched."""
    before = {str(c.get("type")): c for c in previous or () if isinstance(c, Mapping)}
    latest = {i.type: i for i in inputs}
    merged = [_entry(i, before.get(i.type), now, generation) for i in latest.values()]
    merged.extend(dict(c) for t, c in before.items() if t not in latest)
    return merged


def _entry(
    condition: ConditionInput,
    before: Mapping[str, Any] | None,
    now: float,
    generation: int | None,
) -> dict[str, Any]:
    held = before is not None and before.get("status") == condition.status.value
    since = before.get("lastTransitionTime") if held and before is not None else None
    entry: dict[str, Any] = {
        "type": condition.type,
        "status": condition.status.value,
        "reason": condition.reason,
        "message": condition.message,
        "lastTransitionTime": since if isinstance(since, str) else rfc3339(now, whole_seconds=True),
    }
    if generation is not None:
        entry["observedGeneration"] = generation
    return entry
