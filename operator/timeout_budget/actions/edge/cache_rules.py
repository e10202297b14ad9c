"""One zone's batched Cache Rules write: read the entry point, merge, PUT once if needed.

Cloudflare's entry-point PUT replaces the whole rule list, and Cloudflare warns against
concurrent updates of one ruleset. So all of a zone's rule changes of one cycle go out as
one PUT, under the zone's lock, built on a fresh read (never on a cached list that the
dashboard may have changed since): foreign rules are sent back as read, in their order.
No PUT when the merge changes nothing; a zone without an entry point gets one created by
the PUT. The caller holds the zone's lock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from timeout_budget.clients.cloudflare import CloudflareClient, Entrypoint
from timeout_budget.decide import rules


@dataclass(frozen=True)
class Outcome:
    entrypoint: Entrypoint | None
    """The entry point as it now is (``None``: the zone still has none)."""
    written: bool
    conflicts: dict[str, str] = field(default_factory=dict)
    """Refs left out because a foreign rule holds them, with the reason."""


async def write(
    client: CloudflareClient, zone_id: str, desired: Mapping[str, Mapping[str, Any] | None]
) -> Outcome:
    """Make the operator's rules in ``desired`` (by ref; ``None``: remove) true."""
    current = await client.get_cache_rules(zone_id)
    have = current.rules if current is not None else []
    conflicts = rules.conflicts(have, desired)
    wanted = {ref: rule for ref, rule in desired.items() if ref not in conflicts}
    new = rules.merge(have, wanted)
    if not rules.needs_write(have, new):
        return Outcome(current, written=False, conflicts=conflicts)
    return Outcome(await client.put_cache_rules(zone_id, new), written=True, conflicts=conflicts)
