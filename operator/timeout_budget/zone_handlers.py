"""kopf wiring for CloudflareZone: read the token, let the registry sync, patch the status.

* create / spec update / resume: sync at once;
* a timer every ``TICK_SECONDS`` asks the registry whether the zone is due (its
  ``syncIntervalSeconds`` passed, a failure's wait is over) and only then reads the
  Secret and Cloudflare, so drift is seen without spending requests on idle ticks;
* delete: held while TimeoutBudgets still sync through the zone (their finalizers need
  its token to remove their Cache Rules), with a message in status and an Event that
  name them and say what to do; released once they are gone.

The registry lives in ``memo.zones`` (made here on first use if the startup handler did
not). A missing Secret or key becomes a condition on the zone, never a crash. The token
goes from the Secret to the registry and nowhere else: not into status, events or logs.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Protocol

import kopf
import pydantic

from timeout_budget import app
from timeout_budget.clients.kube import load_api_client
from timeout_budget.clients.secrets import SecretProblem, SecretReader
from timeout_budget.cycle.snapshot import RouteSnapshot
from timeout_budget.edge import ZoneRegistry, routes
from timeout_budget.model import conditions
from timeout_budget.model.conditions import ConditionInput, ConditionStatus
from timeout_budget.model.shards import zone_key
from timeout_budget.model.spec import (
    CloudflareZoneSpec,
    RouteKey,
    parse_cloudflare_zone,
    parse_timeout_budget,
)
from timeout_budget.settings import OperatorSettings

GROUP, VERSION, PLURAL = "timeoutbudget.io", "v1alpha1", "cloudflarezones"
TICK_SECONDS = 30.0
"""The smallest ``syncIntervalSeconds`` the CRD allows."""
FIRST_RETRY_DELETE_SECONDS = 5.0
RETRY_DELETE_SECONDS = 60.0
DELETION_BLOCKED = "DeletionBlocked"


class BudgetIndex(Protocol):
    """The TimeoutBudgets as last seen (``route_watch.RouteWatch``, in ``memo.routes``):
    each route's (namespace, name) and its ``cycle.snapshot.snapshot_entry`` snapshots."""

    def items(self) -> Iterable[tuple[tuple[str, str], Collection[RouteSnapshot]]]: ...


Logger = logging.Logger | logging.LoggerAdapter[Any]


@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
@kopf.on.resume(GROUP, VERSION, PLURAL)
async def sync(
    body: kopf.Body,
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: Logger,
    **_: Any,
) -> None:
    await _sync(body, spec, status, meta, patch, memo, logger, force=True)


@kopf.timer(GROUP, VERSION, PLURAL, interval=TICK_SECONDS, initial_delay=TICK_SECONDS)
async def resync(
    body: kopf.Body,
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: Logger,
    **_: Any,
) -> None:
    await _sync(body, spec, status, meta, patch, memo, logger, force=False)


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def release(
    body: kopf.Body,
    status: kopf.Status,
    meta: kopf.Meta,
    patch: kopf.Patch,
    memo: kopf.Memo,
    retry: int = 0,
    budgets: BudgetIndex | None = None,
    **_: Any,
) -> None:
    """Let the zone go once no TimeoutBudget syncs through it. Until then its deletion is
    held: status and an Event name the TimeoutBudgets, and kopf retries (soon at first, as
    they are often deleted together with the zone, then once a minute)."""
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    app.hold_unless_owned(memo.get("shards"), zone_key(namespace, name))
    if budgets is None:
        app.hold_until_listed(memo.get("shards"), memo.get("routes"), zone_key(namespace, name))
        budgets = memo.get("routes")
    registry = registry_of(memo)
    users = sorted(
        set(registry.routes_using(namespace, name)) | _indexed_users(budgets, namespace, name)
    )
    if users:
        message = (
            f"CloudflareZone {namespace}/{name} is still used by TimeoutBudget "
            f"{', '.join(users)}: delete them or change their edge.zoneRef first (their "
            "Cache Rules are removed with this zone's token)"
        )
        _hold(body, status, meta, patch, message, registry.now())
        raise kopf.TemporaryError(message, delay=_retry_delay(retry))
    await registry.forget_zone(namespace, name)


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    await app.quiesce(memo)
    registry = memo.get("zones")
    if isinstance(registry, ZoneRegistry):
        await registry.aclose()


def registry_of(memo: kopf.Memo) -> ZoneRegistry:
    registry = memo.get("zones")
    if not isinstance(registry, ZoneRegistry):
        # The startup handler makes it; this is for a process that runs only these handlers.
        settings = memo.get("settings")
        if not isinstance(settings, OperatorSettings):
            settings = memo.settings = OperatorSettings.from_env()
        registry = memo.zones = app.build_zones(settings)
    return registry


def _secrets(memo: kopf.Memo) -> SecretReader:
    reader = memo.get("zone_secrets")
    if not isinstance(reader, SecretReader):
        reader = memo.zone_secrets = SecretReader(load_api_client())
    return reader


async def _sync(
    body: kopf.Body,
    raw_spec: Mapping[str, Any],
    status: Mapping[str, Any],
    meta: Mapping[str, Any],
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: Logger,
    *,
    force: bool,
) -> None:
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    if not app.owns(memo.get("shards"), zone_key(namespace, name)):
        return  # sharded: the replica holding the zone's shard reads and writes it
    generation = meta.get("generation")
    try:
        spec = parse_cloudflare_zone(dict(raw_spec))
    except pydantic.ValidationError as exc:
        raise kopf.PermanentError(f"invalid spec: {exc.errors()[0]['msg']}") from None
    registry = registry_of(memo)
    if not force and not registry.due(namespace, name, spec):
        return
    new = await _status(registry, memo, namespace, name, spec, status, generation)
    _report(body, new, status, logger)
    for key, value in new.items():
        if status.get(key) != value:
            patch.status[key] = value


async def _status(
    registry: ZoneRegistry,
    memo: kopf.Memo,
    namespace: str,
    name: str,
    spec: CloudflareZoneSpec,
    previous: Mapping[str, Any],
    generation: Any,
) -> dict[str, Any]:
    ref = spec.api_token_secret_ref
    generation = generation if isinstance(generation, int) else None
    try:
        token = await _secrets(memo).read(namespace, ref.name, ref.key)
    except SecretProblem as exc:
        return registry.problem_status(
            namespace,
            name,
            spec,
            exc.reason,
            str(exc),
            previous_status=previous,
            generation=generation,
        )
    return await registry.reconcile_zone(
        namespace, name, spec, token, previous_status=previous, generation=generation
    )


def _report(
    body: kopf.Body, new: Mapping[str, Any], previous: Mapping[str, Any], logger: Logger
) -> None:
    """A warning (and so an Event) when the zone stops being synced, and for each slow path
    no TimeoutBudget covers when it first appears; not on every tick."""
    now, before = _synced(new.get("conditions")), _synced(previous.get("conditions"))
    if now is not None and now.get("status") == "False" and now != before:
        logger.warning(f"{now.get('reason')}: {now.get('message')}")
    known = {(p.get("host"), p.get("path")) for p in _unbudgeted(previous)}
    for path in _unbudgeted(new):
        if (path.get("host"), path.get("path")) not in known:
            message = (
                f"{path.get('host')}{path.get('path')} has no TimeoutBudget: edge P95 "
                f"{path.get('originP95Seconds')}s, {path.get('errors524')} 524s of "
                f"{path.get('requests')} requests in the last window read; "
                "`timeout-budget explain --zone` prints one to apply"
            )
            logger.info(f"UnbudgetedPath: {message}")
            kopf.warn(body, reason="UnbudgetedPath", message=message)


def _unbudgeted(status: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    view = status.get("edgeView")
    found = view.get("unbudgetedPaths") if isinstance(view, Mapping) else None
    return [p for p in found if isinstance(p, Mapping)] if isinstance(found, list) else []


def _synced(conditions: object) -> Mapping[str, Any] | None:
    for item in conditions if isinstance(conditions, list) else ():
        if isinstance(item, Mapping) and item.get("type") == "EdgeSynced":
            return {k: item.get(k) for k in ("status", "reason", "message")}
    return None


def _hold(
    body: kopf.Body,
    status: Mapping[str, Any],
    meta: Mapping[str, Any],
    patch: kopf.Patch,
    message: str,
    now: float,
) -> None:
    """Say why the deletion waits. In status: the message and a ``DeletionBlocked``
    condition (for ``kubectl describe``; what was last read from Cloudflare stays),
    patched only when they change. As a Warning Event on the zone: once per change, not
    on every retry. (kopf posts no Event for a log line, nor for its own retry line.)"""
    generation = meta.get("generation")
    held = ConditionInput(DELETION_BLOCKED, ConditionStatus.TRUE, "InUse", message)
    new = {
        "message": message,
        "conditions": conditions.merge(
            status.get("conditions"),
            [held],
            now=now,
            generation=generation if isinstance(generation, int) else None,
        ),
    }
    if status.get("message") != message:
        kopf.warn(body, reason="InUse", message=message)
    for key, value in new.items():
        if status.get(key) != value:
            patch.status[key] = value


def _retry_delay(retry: int) -> float:
    """Doubling from ``FIRST_RETRY_DELETE_SECONDS`` up to ``RETRY_DELETE_SECONDS``."""
    return min(RETRY_DELETE_SECONDS, FIRST_RETRY_DELETE_SECONDS * 2.0 ** min(retry, 16))


def _indexed_users(index: BudgetIndex | None, namespace: str, name: str) -> set[RouteKey]:
    """TimeoutBudgets of the zone's namespace whose edge syncs through it, from the
    watched routes (``handlers`` keeps them; absent when only these handlers run). The
    zone's holder watches every route of the zone (one shard), while the registry knows
    only the routes this replica's cycles saw. A snapshot keeps its spec as JSON text:
    ``spec_dict`` reads it."""
    if index is None:
        return set()
    return {
        snap.key
        for key, store in list(index.items())
        if key[0] == namespace
        for snap in store
        if _zone_of(snap) == (namespace, name)
    }


def _zone_of(snap: RouteSnapshot) -> tuple[str, str] | None:
    """The zone the entry's route syncs through, by the registry's own rule. A spec that
    does not parse syncs nothing, and its finalizer has nothing to remove."""
    try:
        spec = parse_timeout_budget(snap.spec_dict())
    except ValueError:
        return None
    return routes.zone_of(snap.namespace, spec)
