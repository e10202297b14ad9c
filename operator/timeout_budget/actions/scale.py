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

from timeout_budget.actions.target import ClusterTarget, RestoreTarget
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


async def execute(target: ClusterTarget, action: ScaleTo) -> None:
    """The ``actions.kinds`` executor: scale as the route's origin was observed."""
    await apply(target.kube, target.namespace, target.key, action, target.scale)


async def restore(target: RestoreTarget) -> list[str]:
    """The finalizer's undo: the HPA's ``minReplicas`` back to its baseline, and the
    operator's bookkeeping off the Deployment. Replicas are left as they are (no sudden
    scale-down on delete). Returns what was done, for the log."""
    kube, namespace, key = target.kube, target.namespace, target.key
    deployment = target.spec.origin.deployment_name
    done: list[str] = []
    for hpa in await kube.list_hpas(namespace):
        ref = hpa.get("spec", {}).get("scaleTargetRef", {})
        notes = hpa.get("metadata", {}).get("annotations") or {}
        baseline = notes.get(ownership.BASELINE_MIN_REPLICAS)
        if ref.get("name") == deployment and baseline and notes.get(ownership.OWNER) == key:
            clear: dict[str, str | None] = {
                ownership.BASELINE_MIN_REPLICAS: None,
                ownership.OWNER: None,
            }
            await kube.patch_hpa(namespace, hpa["metadata"]["name"], int(baseline), clear)
            done.append(f"restored HPA minReplicas to {baseline}")
    for dep in await kube.list_deployments(namespace):
        notes = dep.get("metadata", {}).get("annotations") or {}
        if dep["metadata"]["name"] == deployment and notes.get(ownership.OWNER) == key:
            await kube.patch_deployment_metadata(
                namespace,
                deployment,
                {ownership.BASELINE_REPLICAS: None, ownership.OWNER: None},
            )
    return done
