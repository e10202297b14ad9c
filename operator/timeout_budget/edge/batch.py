"""A zone's edge changes queued during one cycle, and sending them at its end.

The engine applies route by route, but Cloudflare should see one read of a zone's Cache
Rules per cycle, not one per route: so ``apply`` only queues, and ``send`` (from the
registry's ``flush``) takes the zone's lock and makes the zone's Cache Rules changes (one
read, then one request per changed rule, see ``cache_rules``) plus the DNS switches. A
failure is reported for exactly the routes it concerns; nothing is kept for later, since
the engine states its desired edge again next cycle from the (unchanged) cache.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from timeout_budget.clients.cloudflare_errors import CloudflareError, CloudflareRefused
from timeout_budget.decide.dns_only import DnsOnlyRefused
from timeout_budget.edge import cache_rules, dns_switch
from timeout_budget.edge.zone import ZoneState
from timeout_budget.model.spec import RouteKey

log = logging.getLogger("timeout_budget.edge")


@dataclass
class Batch:
    rules: dict[str, tuple[RouteKey, Mapping[str, Any] | None]] = field(default_factory=dict)
    """Desired rule by ref (``None``: remove), with the route that wants it."""
    dns: dict[str, tuple[RouteKey, bool]] = field(default_factory=dict)
    """DNS-only wanted on (True) or off, by hostname, with the route that wants it."""

    def drop(self, key: RouteKey) -> None:
        self.rules = {ref: item for ref, item in self.rules.items() if item[0] != key}
        self.dns = {host: item for host, item in self.dns.items() if item[0] != key}

    def __bool__(self) -> bool:
        return bool(self.rules or self.dns)


async def send(zone: ZoneState, batch: Batch, now: float) -> dict[RouteKey, str]:
    """Make the batch true at Cloudflare; returns the failure reason per route."""
    failures: dict[RouteKey, str] = {}
    if batch.rules:
        failures.update(await _send_rules(zone, batch, now))
    for hostname, (key, on) in sorted(batch.dns.items()):
        try:
            zone.dns[hostname] = await dns_switch.switch(
                zone.client, zone.spec.zone_id, hostname, key, dns_only_on=on
            )
        except (CloudflareError, DnsOnlyRefused) as exc:
            _note(zone, exc, now)
            failures[key] = "; ".join(filter(None, (failures.get(key), str(exc))))
        else:
            zone.succeeded()
    return failures


async def _send_rules(zone: ZoneState, batch: Batch, now: float) -> dict[RouteKey, str]:
    desired = {ref: rule for ref, (_, rule) in batch.rules.items()}
    try:
        outcome = await cache_rules.write(zone.client, zone.spec.zone_id, desired)
    except CloudflareError as exc:  # the read failed: nothing was written
        _note(zone, exc, now)
        return {key: str(exc) for key, _ in batch.rules.values()}
    zone.entrypoint, zone.rules_read = outcome.entrypoint, True
    if outcome.stopped_by is not None:
        _note(zone, outcome.stopped_by, now)
    else:
        zone.succeeded()
    if outcome.written:
        log.info(
            "%s: %d Cache Rule write(s) for %d route(s), %d not made",
            zone.label,
            outcome.written,
            len({key for key, _ in batch.rules.values()}),
            len(outcome.failures),
        )
    return {batch.rules[ref][0]: reason for ref, reason in outcome.failures.items()}


def _note(zone: ZoneState, exc: Exception, now: float) -> None:
    # A refusal concerns the request (a rule, a record), not the zone's health.
    if isinstance(exc, CloudflareError) and not isinstance(exc, CloudflareRefused):
        zone.failed(exc, now)
