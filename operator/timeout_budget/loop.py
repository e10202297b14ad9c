"""The operator's single evaluation loop, and the finalizer's undo, behind the kopf handlers.

One loop per operator process evaluates every route each interval (default 15 s) from
the kopf index of TimeoutBudgets; a create or spec change wakes it early. A cycle that
fails as a whole (Prometheus and the API server both gone, say) is logged and retried
next interval: it never kills the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from timeout_budget.actions import reroute
from timeout_budget.clients.kube import Kube, KubeError, NotFound, load_api_client
from timeout_budget.engine import Engine, RouteSnapshot
from timeout_budget.model import ownership
from timeout_budget.model.spec import parse_timeout_budget, route_key
from timeout_budget.observe.latency import LatencyObserver
from timeout_budget.report import events
from timeout_budget.settings import OperatorSettings

log = logging.getLogger("timeout_budget.loop")

__all__ = ["RouteSnapshot", "configure_kopf", "finalize", "run_forever", "snapshot_entry", "stop"]


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    # Handler progress in annotations: the status schema is ours, kopf's would be pruned.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix="kopf.timeoutbudget.io"
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="kopf.timeoutbudget.io", key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING  # only our own Events, not kopf's chatter
    settings.watching.server_timeout = 300


def snapshot_entry(body: kopf.Body) -> dict[tuple[str, str], RouteSnapshot]:
    meta = body.get("metadata", {})
    snap = RouteSnapshot(
        namespace=str(meta.get("namespace")),
        name=str(meta.get("name")),
        uid=str(meta.get("uid", "")),
        generation=meta.get("generation"),
        spec=_plain(body.get("spec", {})),
        status=_plain(body.get("status", {})),
    )
    return {(snap.namespace, snap.name): snap}


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def build_engine(settings: OperatorSettings) -> Engine:
    kube = Kube(load_api_client())
    return Engine(
        kube=kube,
        latency=LatencyObserver(settings.prometheus),
        post_event=events.EventPoster(kube),
    )


async def run_forever(index: kopf.Index[Any, Any], wake: asyncio.Event) -> None:
    settings = OperatorSettings.from_env()
    engine = build_engine(settings)
    log.info("evaluation loop started: every %.0fs", settings.interval_seconds)
    while True:
        snapshots = [snap for key in list(index) for snap in index.get(key, [])]
        try:
            report = await engine.evaluate(snapshots)
            log.info(
                "cycle: %d routes, %d actions, %d failed, %d status patches in %.3fs %s",
                report.routes,
                report.actions_applied,
                report.actions_failed,
                report.status_patches,
                report.duration_seconds,
                report.states,
            )
        except Exception:  # one bad cycle must not end the loop
            log.exception("evaluation cycle failed; retrying next interval")
        wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=settings.interval_seconds)


async def stop(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def finalize(body: kopf.Body, logger: logging.Logger | logging.LoggerAdapter[Any]) -> None:
    """Restore what this route changed: Service selector, HPA minReplicas, annotations."""
    meta = body.get("metadata", {})
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    key = route_key(namespace, name)
    try:
        spec = parse_timeout_budget(dict(body.get("spec", {})))
    except ValueError:
        logger.info("finalizer: spec unreadable, nothing of ours to restore")
        return
    kube = Kube(load_api_client())
    try:
        if spec.reroute and spec.reroute.service_name:
            services = {s["metadata"]["name"]: s for s in await kube.list_services(namespace)}
            svc = services.get(spec.reroute.service_name)
            if svc is not None and await reroute.restore(kube, namespace, key, svc):
                logger.info("finalizer: restored Service %s selector", spec.reroute.service_name)
        await _restore_scaling(kube, namespace, key, spec.origin.deployment_name, logger)
    except NotFound:
        return
    except KubeError as exc:
        raise kopf.TemporaryError(f"finalizer could not restore: {exc}", delay=10) from exc


async def _restore_scaling(
    kube: Kube,
    namespace: str,
    key: str,
    deployment: str,
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> None:
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
            logger.info("finalizer: restored HPA minReplicas to %s", baseline)
    for dep in await kube.list_deployments(namespace):
        notes = dep.get("metadata", {}).get("annotations") or {}
        if dep["metadata"]["name"] == deployment and notes.get(ownership.OWNER) == key:
            # Replicas are left as they are (no sudden scale-down on delete); only our
            # bookkeeping goes.
            await kube.patch_deployment_metadata(
                namespace,
                deployment,
                {ownership.BASELINE_REPLICAS: None, ownership.OWNER: None},
            )
