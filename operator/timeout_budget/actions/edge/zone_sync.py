"""Reading a zone's real state from Cloudflare, and enforcing its zone-wide timeout.

The zone's ``proxy_read_timeout`` is read first (value and ``editable``): it is the default
budget of the zone's routes, and it says whether the plan lets it be changed at all. When
the CloudflareZone asks for a value, it is PATCHed only if the zone is editable and the
value differs: never blind. Then the Cache Rules entry point and the records of the
DNS-only hostnames in use are read, so the routes' next cycle sees drift (a rule edited or
deleted by hand, a record turned orange again). The caller holds the zone's lock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from timeout_budget.actions.edge.zone import Problem, ZoneState
from timeout_budget.clients.cloudflare import CloudflareRefused

log = logging.getLogger("timeout_budget.edge")

NOT_EDITABLE = "the zone's plan does not allow changing proxy_read_timeout (Enterprise only)"


async def refresh(zone: ZoneState, hostnames: Iterable[str]) -> None:
    """Re-read everything; raises ``CloudflareError`` (what was read so far is kept)."""
    zone_id = zone.spec.zone_id
    zone.timeout = await zone.client.get_proxy_read_timeout(zone_id)
    await _enforce(zone)
    zone.entrypoint = await zone.client.get_cache_rules(zone_id)
    zone.rules_read = True
    for hostname in sorted(set(hostnames)):
        zone.dns[hostname] = await zone.client.list_dns_records(zone_id, hostname)


async def _enforce(zone: ZoneState) -> None:
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
    log.info(
        "%s: proxy_read_timeout %ss -> %ss (spec.proxyReadTimeoutSeconds)",
        zone.label,
        current.seconds,
        zone.timeout.seconds,
    )
