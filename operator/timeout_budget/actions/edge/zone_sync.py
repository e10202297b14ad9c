"""Reading a zone's real state from Cloudflare, and enforcing its zone-wide timeout.

The zone's ``proxy_read_timeout`` is read first (value and ``editable``): it is the default
budget of the zone's routes, and it says whether the plan lets it be changed at all. When
the CloudflareZone asks for a value, it is PATCHed only if the zone is editable and the
value differs: never blind. Then the Cache Rules entry point and the records of the
DNS-only hostnames in use are read, so the routes' next cycle sees drift (a rule edited or
deleted by hand, a record turned orange again, a CNAME target made proxied). The caller
holds the zone's lock.

A permission the token lacks (403) stops only what needs it: the other parts are still
read, and the zone remembers the refusal (``ZoneState.failed``). Without Zone Settings
Read nothing about the zone is known, so that one is raised after the rest is read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from timeout_budget.actions.edge import dns_switch
from timeout_budget.actions.edge.zone import Problem, ZoneState
from timeout_budget.clients.cloudflare import CloudflareRefused, PermissionMissing

log = logging.getLogger("timeout_budget.edge")

NOT_EDITABLE = "the zone's plan does not allow changing proxy_read_timeout (Enterprise only)"


async def refresh(zone: ZoneState, hostnames: Iterable[str], now: float) -> None:
    """Re-read everything; raises ``CloudflareError`` (what was read so far is kept)."""
    zone_id = zone.spec.zone_id
    unreadable: PermissionMissing | None = None
    try:
        zone.timeout = await zone.client.get_proxy_read_timeout(zone_id)
        await _enforce(zone, now)
    except PermissionMissing as exc:
        zone.failed(exc, now)
        unreadable = exc
    try:
        zone.entrypoint = await zone.client.get_cache_rules(zone_id)
        zone.rules_read = True
    except PermissionMissing as exc:
        zone.failed(exc, now)
    try:
        for hostname in sorted(set(hostnames)):
            zone.dns[hostname] = await zone.client.list_dns_records(zone_id, hostname)
            zone.chains[hostname] = await dns_switch.chain(zone.client, zone_id, zone.dns[hostname])
    except PermissionMissing as exc:
        zone.failed(exc, now)
    if unreadable is not None:
        raise unreadable


async def _enforce(zone: ZoneState, now: float) -> None:
    wanted = zone.spec.proxy_read_timeout_seconds
    current = zone.timeout
    zone.enforce_note = None
    if wanted is None or current is None or current.seconds == wanted:
        return
    if not current.editable:
        zone.enforce_note = Problem(
            "NotEditable",
            f"{NOT_EDITABLE}: it stays at {current.seconds}s, not the {wanted}s asked for",
        )
        return
    try:
        zone.timeout = await zone.client.set_proxy_read_timeout(zone.spec.zone_id, wanted)
    except CloudflareRefused as exc:  # the zone stays readable; say why it was not set
        zone.enforce_note = Problem("Refused", str(exc))
        return
    except PermissionMissing as exc:  # only the enforcing stops
        zone.failed(exc, now)
        zone.enforce_note = Problem(
            "PermissionMissing",
            f"the API token lacks {exc.permission}: proxy_read_timeout stays at "
            f"{current.seconds}s, not the {wanted}s asked for",
        )
        return
    log.info(
        "%s: proxy_read_timeout %ss -> %ss (spec.proxyReadTimeoutSeconds)",
        zone.label,
        current.seconds,
        zone.timeout.seconds,
    )
