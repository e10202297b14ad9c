"""The annotations the operator writes on objects it changes, to restore them exactly.

The original value lives on the changed object itself, so an undo, a finalizer or a
newly elected operator restores it even if the TimeoutBudget's status was lost.
"""

from __future__ import annotations

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
