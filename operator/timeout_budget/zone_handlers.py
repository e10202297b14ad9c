"""kopf wiring for CloudflareZone: read the token, let the registry sync, patch the status.

* create / spec update / resume: sync at once;
* a timer every ``TICK_SECONDS`` asks the registry whether the zone is due (its
  ``syncIntervalSeconds`` passed, a failure's wait is over) and only then reads the
  Secret and Cloudflare, so drift is seen without spending requests on idle ticks;
* delete: refused while TimeoutBudgets still sync through the zone (their finalizers need
  its token to remove their Cache Rules), with a message that says what to do.

The registry lives in ``memo.zones`` (made here on first use if the startup handler did
not). A missing Secret or key becomes a condition on the zone, never a crash. The token
goes from the Secret to the registry and nowhere else: not into status, events or logs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import kopf
import pydantic

from timeout_budget.actions.edge import ZoneRegistry
from timeout_budget.clients.kube import load_api_client
from timeout_budget.clients.secrets import SecretProblem, SecretReader
from timeout_budget.model.spec import CloudflareZoneSpec, parse_cloudflare_zone

GROUP, VERSION, PLURAL = "timeoutbudget.io", "v1alpha1", "cloudflarezones"
TICK_SECONDS = 30.0
"""The smallest ``syncIntervalSeconds`` the CRD allows."""
RETRY_DELETE_SECONDS = 60.0

Logger = logging.Logger | logging.LoggerAdapter[Any]


@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
@kopf.on.resume(GROUP, VERSION, PLURAL)
async def sync(
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: Logger,
    **_: Any,
) -> None:
    await _sync(spec, status, meta, patch, memo, logger, force=True)


@kopf.timer(GROUP, VERSION, PLURAL, interval=TICK_SECONDS, initial_delay=TICK_SECONDS)
async def resync(
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: Logger,
    **_: Any,
) -> None:
    await _sync(spec, status, meta, patch, memo, logger, force=False)


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def release(meta: kopf.Meta, memo: kopf.Memo, **kwargs: Any) -> None:
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    registry = registry_of(memo)
    users = sorted(
        set(registry.routes_using(namespace, name)) | _indexed_users(kwargs, namespace, name)
    )
    if users:
        raise kopf.TemporaryError(
            f"CloudflareZone {namespace}/{name} is still used by TimeoutBudget "
            f"{', '.join(users)}: delete them or change their edge.zoneRef first (their "
            "Cache Rules are removed with this zone's token)",
            delay=RETRY_DELETE_SECONDS,
        )
    await registry.forget_zone(namespace, name)


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    registry = memo.get("zones")
    if isinstance(registry, ZoneRegistry):
        await registry.aclose()


def registry_of(memo: kopf.Memo) -> ZoneRegistry:
    registry = memo.get("zones")
    if not isinstance(registry, ZoneRegistry):
        registry = memo.zones = ZoneRegistry.from_env()
    return registry


def _secrets(memo: kopf.Memo) -> SecretReader:
    reader = memo.get("zone_secrets")
    if not isinstance(reader, SecretReader):
        reader = memo.zone_secrets = SecretReader(load_api_client())
    return reader


async def _sync(
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
    generation = meta.get("generation")
    try:
        spec = parse_cloudflare_zone(dict(raw_spec))
    except pydantic.ValidationError as exc:
        raise kopf.PermanentError(f"invalid spec: {exc.errors()[0]['msg']}") from None
    registry = registry_of(memo)
    if not force and not registry.due(namespace, name, spec):
        return
    new = await _status(registry, memo, namespace, name, spec, status, generation)
    _report(new, status, logger)
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


def _report(new: Mapping[str, Any], previous: Mapping[str, Any], logger: Logger) -> None:
    """A warning (and so an Event) when the zone stops being synced, not on every tick."""
    now, before = _synced(new.get("conditions")), _synced(previous.get("conditions"))
    if now is not None and now.get("status") == "False" and now != before:
        logger.warning(f"{now.get('reason')}: {now.get('message')}")


def _synced(conditions: object) -> Mapping[str, Any] | None:
    for item in conditions if isinstance(conditions, list) else ():
        if isinstance(item, Mapping) and item.get("type") == "EdgeSynced":
            return {k: item.get(k) for k in ("status", "reason", "message")}
    return None


def _indexed_users(kwargs: Mapping[str, Any], namespace: str, name: str) -> set[str]:
    """TimeoutBudgets naming the zone, from the ``budgets`` index when it is registered."""
    index = kwargs.get("budgets")
    if index is None:
        return set()
    users: set[str] = set()
    for key in list(index):
        for snap in _values(index.get(key, [])):
            edge = (getattr(snap, "spec", {}) or {}).get("edge") or {}
            zone = (edge.get("zoneRef") or {}).get("name")
            if getattr(snap, "namespace", None) == namespace and zone == name:
                users.add(f"{namespace}/{snap.name}")
    return users


def _values(store: Iterable[Any]) -> list[Any]:
    return list(store)
