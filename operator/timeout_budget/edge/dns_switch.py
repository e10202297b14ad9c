"""Switching a dedicated hostname to DNS-only and back, all records or none.

The records of the name are read fresh (never from the cache), and before a switch to
DNS-only, those of the names its CNAME chain leads to in the zone (a proxied one there
keeps the name proxied: the switch is refused). Then the records are PATCHed one by one:
to DNS-only with the ownership marker in their comment, or back to proxied with the
comment as it was, only where the route's marker is. Should a PATCH fail half way, the
records already switched are put back as they were read, so a failure leaves the name as
it was; if even that fails, the marker on them lets the next cycle finish the job. The
caller holds the zone's lock.

The ownership marker must fit the record's comment: 100 characters on Free, 500 on paid
plans. The plan is read (one request, Zone Read) only when a comment does not fit 100.
"""

from __future__ import annotations

import logging
from typing import Any

from timeout_budget.clients.cloudflare import CloudflareClient
from timeout_budget.clients.cloudflare_errors import CloudflareError, PermissionMissing
from timeout_budget.decide import dns_only

log = logging.getLogger("timeout_budget.edge")


async def switch(
    client: CloudflareClient, zone_id: str, hostname: str, key: str, *, dns_only_on: bool
) -> list[dict[str, Any]]:
    """Make ``hostname`` DNS-only for route ``key`` (or undo that); returns its records as
    they now are. Raises ``DnsOnlyRefused`` or ``CloudflareError``."""
    records = await client.list_dns_records(zone_id, hostname)
    if dns_only_on:
        edits = await _switch_off(client, zone_id, records, hostname, key)
    else:
        edits = dns_only.switch_back(records, key)
    by_id = {str(r.get("id")): r for r in records}
    done: list[dict[str, Any]] = []
    failure: CloudflareError | None = None
    for edit in edits:
        try:
            updated = await _send(client, zone_id, edit)
        except CloudflareError as exc:
            failure = exc
            break
        done.append(by_id[edit.record_id])
        by_id[edit.record_id] = updated
    if failure is not None:
        if done:  # same class, so the caller still knows to back off or wait
            failure.args = (f"{failure}{await _put_back(client, zone_id, done)}",)
        raise failure
    if edits:
        verb = "DNS-only" if dns_only_on else "proxied again"
        log.info("route %s: %s is %s (%d record(s))", key, hostname, verb, len(edits))
    return list(by_id.values())


async def chain(
    client: CloudflareClient, zone_id: str, records: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The records of the names the CNAME in ``records`` leads to, step by step, as far as
    the zone holds them (one request per step; a name outside the zone has none)."""
    found: list[dict[str, Any]] = []
    seen = {str(r.get("name", "")).lower() for r in records}
    target = dns_only.cname_target(records)
    while target is not None and target not in seen and len(seen) <= dns_only.MAX_CHAIN:
        seen.add(target)
        step = await client.list_dns_records(zone_id, target)
        found.extend(step)
        target = dns_only.cname_target(step)
    return found


async def _switch_off(
    client: CloudflareClient, zone_id: str, records: list[dict[str, Any]], hostname: str, key: str
) -> list[dns_only.Edit]:
    links = await chain(client, zone_id, records)
    try:
        return dns_only.switch_off(records, hostname, key, chain=links)
    except dns_only.CommentTooLong as exc:
        try:
            plan = await client.get_zone_plan(zone_id)
        except PermissionMissing as denied:
            raise dns_only.DnsOnlyRefused(
                f"{exc} (the zone's plan could not be read, so the Free plan's limit holds: "
                f"{denied.permission} would tell; paid plans allow 500)"
            ) from None
        limit = dns_only.comment_limit(plan)
        if limit <= exc.limit:
            raise
        return dns_only.switch_off(records, hostname, key, chain=links, comment_limit=limit)


async def _send(client: CloudflareClient, zone_id: str, edit: dns_only.Edit) -> dict[str, Any]:
    return await client.edit_dns_record(
        zone_id,
        edit.record_id,
        name=edit.name,
        record_type=edit.type,
        ttl=edit.ttl,
        proxied=edit.proxied,
        comment=edit.comment,
    )


async def _put_back(client: CloudflareClient, zone_id: str, originals: list[dict[str, Any]]) -> str:
    """Restore records as they were read; a note for the failure message."""
    for original in reversed(originals):
        comment = original.get("comment")
        edit = dns_only.Edit(
            str(original["id"]),
            str(original["name"]),
            str(original["type"]),
            float(original.get("ttl") or 1),
            proxied=original.get("proxied") is True,
            comment=comment if isinstance(comment, str) else "",
        )
        try:
            await _send(client, zone_id, edit)
        except CloudflareError:
            return (
                f"; {len(originals)} record(s) already switched could not be put back now "
                "(they carry the operator's marker: the next cycle finishes or undoes it)"
            )
    return f"; the {len(originals)} record(s) already switched were put back"
