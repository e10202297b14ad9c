"""The annotations the operator writes on objects it changes, to restore them exactly.

The original value lives on the changed object itself, so an undo, a finalizer or a
newly elected operator restores it even if the TimeoutBudget's status was lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PREFIX = "timeoutbudget.io"

OWNER = f"{PREFIX}/owner"
"""``namespace/name`` of the TimeoutBudget that changed this object."""
BASELINE_REPLICAS = f"{PREFIX}/baseline-replicas"
"""On a Deployment: its ``spec.replicas`` before the operator's first scale-up."""
BASELINE_MIN_REPLICAS = f"{PREFIX}/baseline-min-replicas"
"""On an HPA: its ``minReplicas`` before the operator raised it."""
ORIGINAL_SELECTOR = f"{PREFIX}/original-selector"
"""On a Service: its selector (JSON) before the operator rerouted it."""
ORIGINAL_READ_TIMEOUT = f"{PREFIX}/original-proxy-read-timeout"
"""On an Ingress: its ``nginx.ingress.kubernetes.io/proxy-read-timeout`` before the
operator raised it (``UNSET``: it had none)."""
ORIGINAL_RULE_TIMEOUTS = f"{PREFIX}/original-rule-timeouts"
"""On an HTTPRoute: JSON ``{"rule": name or index, "timeouts": {...}}``, the rule's
``timeouts`` before the operator raised them (``{}``: it had none)."""
UNSET = "unset"
FIELD_MANAGER = "timeout-budget-operator"
"""The server-side apply field manager of the operator's writes to objects people (and
GitOps tools) also manage: ``managedFields`` shows exactly which fields are the operator's."""
REROUTE_WEIGHTS = f"{PREFIX}/reroute-weights"
"""On an HTTPRoute the operator shifted (``reroute.httpRoute``): JSON of
``model.httproute.Record``, the rule's original ``backendRefs`` and ``timeouts`` and what
the operator last wrote there."""


def ours(obj: Mapping[str, Any]) -> dict[str, str | None]:
    """The operator's annotations on an object. A server-side apply under
    ``FIELD_MANAGER`` that left one of them out would remove it, and two kinds of change
    (``chain.sync`` and the weighted reroute) apply to the same HTTPRoute: each keeps them."""
    notes = obj.get("metadata", {}).get("annotations") or {}
    return {str(k): str(v) for k, v in notes.items() if str(k).startswith(PREFIX + "/")}
