"""Scaling that cooperates with whoever owns the replicas.

When an HPA (or KEDA's HPA) targets the Deployment it owns ``spec.replicas``: patching
them would start a tug of war the HPA wins within 15 s. So the operator raises the
HPA's ``minReplicas`` instead, and restores the original later. Without an HPA it uses
the Deployment's ``scale`` subresource. Before the first scale-up the original value is
written to an annotation on the object itself (the *baseline*), so a scale-down only
ever gives back what the operator added; the annotation goes when the baseline is
restored. Every call is idempotent: it sets a value, never adds to one.
"""

from __future__ import annotations

from timeout_budget.clients.kube import Kube
from timeout_budget.model import ownership
from timeout_budget.model.actions import ScaleTo
from timeout_budget.model.spec import RouteKey
from timeout_budget.model.world import ScaleObservation


async def apply(
    kube: Kube, namespace: str, owner: RouteKey, action: ScaleTo, observed: ScaleObservation
) -> None:
    if action.via_hpa:
        await _through_hpa(kube, namespace, owner, action, observed)
    else:
        await _through_scale_subresource(kube, namespace, owner, action, observed)


async def _through_hpa(
    kube: Kube, namespace: str, owner: RouteKey, action: ScaleTo, observed: ScaleObservation
) -> None:
    hpa = observed.hpa
    if hpa is None:  # the HPA vanished since the decision; next cycle decides again
        raise LookupError(f"no HPA targets Deployment {action.deployment} any more")
    notes: dict[str, str | None] = {}
    if action.restores_baseline:
        notes = {ownership.BASELINE_MIN_REPLICAS: None, ownership.OWNER: None}
    elif observed.baseline_replicas is None:
        notes = {ownership.BASELINE_MIN_REPLICAS: str(hpa.min_replicas), ownership.OWNER: owner}
    await kube.patch_hpa(namespace, hpa.name, action.replicas, notes)


async def _through_scale_subresource(
    kube: Kube, namespace: str, owner: RouteKey, action: ScaleTo, observed: ScaleObservation
) -> None:
    if observed.baseline_replicas is None and not action.restores_baseline:
        # Remember the original first: a crash between the two writes must not lose it.
        await kube.patch_deployment_metadata(
            namespace,
            action.deployment,
            {ownership.BASELINE_REPLICAS: str(observed.spec_replicas), ownership.OWNER: owner},
        )
    await kube.scale_deployment(namespace, action.deployment, action.replicas)
    if action.restores_baseline:
        await kube.patch_deployment_metadata(
            namespace,
            action.deployment,
            {ownership.BASELINE_REPLICAS: None, ownership.OWNER: None},
        )
