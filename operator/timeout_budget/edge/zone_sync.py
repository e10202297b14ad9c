"""Reading a zone's real state from Cloudflare, and enforcing its zone-wide timeout.

The zone's ``proxy_read_timeout`` is read first (value and ``editable``): it is the default
budget of the zone's routes, and it says whether the plan lets it be changed at all. Then
the Cache Rules entry point and the records of the DNS-only hostnames in use are read, so
the routes' next cycle sees drift (a rule edited or deleted by hand, a record turned orange
again, a CNAME target made proxied). Last, the zone-wide timeout: the CloudflareZone's
``proxyReadTimeoutSeconds``, or a raise for what the zone's routes need
(``raiseProxyReadTimeout``, ``decide.zone_raise``), PATCHed only if the zone is editable
and the value differs: never blind. The caller holds the zone's lock.

A permission the token lacks (403) stops only what needs it: the other parts are still
read, and the zone remembers the refusal (``ZoneState.failed``). Without Zone Settings
Read nothing about the zone is known, so that one is raised after the rest is read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from timeout_budget.clients.cloudflare_errors import CloudflareRefused, PermissionMissing
from timeout_budget.decide import zone_raise
from timeout_budget.decide.zone_raise import Need, ZoneRaise
from timeout_budget.edge import dns_switch
from timeout_budget.edge.zone import Problem, ZoneState

log = logging.getLogger("timeout_budget.edge")

NOT_EDITABLE = "the zone's plan does not allow changing proxy_read_timeout (Enterprise only)"


async def refresh(
    zone: ZoneState,
    hostnames: Iterable[str],
    now: float,
    need: Callable[[ZoneState], Need | None] = lambda _: None,
) -> None:
    """Re-read everything, then set the zone-wide timeout to what ``zone_raise.plan`` says
    (``need``: what the zone's routes need, from the rules just read); raises
    ``CloudflareError`` (what was read so far is kept)."""
    zone_id = zone.spec.zone_id
    unreadable: PermissionMissing | None = None
    try:
        zone.timeout = await zone.client.get_proxy_read_timeout(zone_id)
    except PermissionMissing as exc:
        zone.failed(exc, now)
        unreadable = exc
    rules_now = False
    try:
        zone.entrypoint = await zone.client.get_cache_rules(zone_id)
        zone.rules_read = rules_now = True
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
    if rules_now or zone.raised is None:
        # The routes' need is read from their rules: without them, a raise is kept.
        await enforce(zone, need(zone), now)


def planned(zone: ZoneState, need: Need | None) -> zone_raise.ZoneTimeoutPlan | None:
    """What ``enforce`` would do now, from the cache (``None``: the zone is not read)."""
    if zone.timeout is None:
        return None
    current = zone.timeout
    return zone_raise.plan(zone.spec, current.seconds, current.editable, need, zone.raised)


async def enforce(zone: ZoneState, need: Need | None, now: float) -> None:
    """Set ``proxy_read_timeout`` to the spec's value, or raise it for the routes' need and
    give it back (``decide.zone_raise``). Only a value that differs is sent, only to an
    editable zone; a refusal or a missing permission is remembered, never raised."""
    found = planned(zone, need)
    zone.enforce_note = None
    if found is None:
        return
    current = zone.timeout
    assert current is not None
    zone.raise_note = found.note
    if not current.editable and zone.spec.proxy_read_timeout_seconds not in (None, current.seconds):
        zone.enforce_note = Problem(
            "NotEditable",
            f"{NOT_EDITABLE}: it stays at {current.seconds}s, not the "
            f"{zone.spec.proxy_read_timeout_seconds}s asked for",
        )
        zone.raise_note = None
    if found.send is None:
        _remember(zone, found.memory, need)
        return
    try:
        zone.timeout = await zone.client.set_proxy_read_timeout(zone.spec.zone_id, found.send)
    except CloudflareRefused as exc:  # the zone stays readable; say why it was not set
        zone.enforce_note = Problem("Refused", str(exc))
        return
    except PermissionMissing as exc:  # only the enforcing stops
        zone.failed(exc, now)
        zone.enforce_note = Problem(
            "PermissionMissing",
            f"the API token lacks {exc.permission}: proxy_read_timeout stays at "
            f"{current.seconds}s, not the {found.send}s wanted",
        )
        return
    _remember(zone, found.memory, need)
    log.info(
        "%s: proxy_read_timeout %ss -> %ss (%s)",
        zone.label,
        current.seconds,
        zone.timeout.seconds,
        _why(zone, found.memory, need),
    )


def _remember(zone: ZoneState, memory: ZoneRaise | None, need: Need | None) -> None:
    zone.raised = memory
    zone.raised_for = need.routes if memory is not None and need is not None else ()


def _why(zone: ZoneState, memory: ZoneRaise | None, need: Need | None) -> str:
    if memory is not None and need is not None:
        return f"raised for {', '.join(need.routes)}: spec.raiseProxyReadTimeout"
    if zone.spec.proxy_read_timeout_seconds is not None:
        return "spec.proxyReadTimeoutSeconds"
    return "given back: no route needs the raise any more"
