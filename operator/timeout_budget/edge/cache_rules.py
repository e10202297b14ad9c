"""One zone's Cache Rules changes: read the entry point, then write rule by rule.

Why per-rule endpoints and not the entry point's PUT: a PUT replaces the whole list and
has no precondition (the SDK's ``PhaseUpdateParams`` carries no version), so a PUT built
on a read always reverts whatever someone changed between the read and the write, and
resurrects what they deleted. The ruleset version would show it only afterwards (moved by
more than one), when the foreign change is already lost and can only be reconstructed from
old versions. A create (POST with a position), an edit (PATCH) or a delete (DELETE) names
one rule, found through its ``ref`` on a fresh read, and leaves every other rule as it is
at that moment, whoever wrote it last. A rule someone deleted meanwhile answers 404 on an
edit: it is not re-created by this write (the next read shows it missing, and the route's
next cycle asks for it again, openly). The price is one request per changed rule instead
of one per zone; changes are rare (a route's timeout changes when it is raised or
released), so the request budget barely notices.

Each write stands alone: one refused rule (quota, plan entitlement, validation) is that
route's failure, and the zone's other routes are still written. A rate limit, an outage
or a rejected token stops the batch: the rest is reported failed and retried next cycle.
The operator's rules are created in front of every foreign rule, so users' own rules
(coming later) still win. The caller holds the zone's lock.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from timeout_budget.clients.cloudflare import CloudflareClient
from timeout_budget.clients.cloudflare_errors import CloudflareError, CloudflareRefused, NotFound
from timeout_budget.clients.cloudflare_values import Entrypoint
from timeout_budget.decide import rules

log = logging.getLogger("timeout_budget.edge")


@dataclass
class Outcome:
    entrypoint: Entrypoint | None
    """The entry point as Cloudflare last answered (``None``: the zone still has none)."""
    written: int = 0
    """Requests that changed a rule."""
    failures: dict[str, str] = field(default_factory=dict)
    """Refs not made true, with the reason (conflicts and refusals)."""
    stopped_by: CloudflareError | None = None
    """The error that stopped the batch (rate limit, outage, token), if any."""


async def write(
    client: CloudflareClient, zone_id: str, desired: Mapping[str, Mapping[str, Any] | None]
) -> Outcome:
    """Make the operator's rules in ``desired`` (by ref; ``None``: remove) true."""
    outcome = Outcome(await client.get_cache_rules(zone_id))
    have = outcome.entrypoint.rules if outcome.entrypoint is not None else []
    plan = rules.plan(have, desired)
    outcome.failures.update(plan.conflicts)
    for i, step in enumerate(plan.writes):
        try:
            await _one(client, zone_id, step, outcome)
        except CloudflareRefused as exc:
            outcome.failures[step.ref] = str(exc)
        except CloudflareError as exc:
            outcome.stopped_by = exc
            for rest in plan.writes[i:]:
                outcome.failures[rest.ref] = str(exc)
            break
    return outcome


async def _one(client: CloudflareClient, zone_id: str, step: rules.Write, out: Outcome) -> None:
    entry = out.entrypoint
    if isinstance(step, rules.Create):
        if entry is None:
            out.entrypoint = await _create_entrypoint(client, zone_id, step)
        else:
            out.entrypoint = await client.create_cache_rule(
                zone_id, entry.id, step.body, rules.FIRST if entry.rules else None
            )
        out.written += 1
        return
    assert entry is not None  # edits and deletes name a rule that was read
    try:
        if isinstance(step, rules.Delete):
            out.entrypoint = await client.delete_cache_rule(zone_id, entry.id, step.rule_id)
        else:
            position = rules.FIRST if step.move else None
            out.entrypoint = await client.edit_cache_rule(
                zone_id, entry.id, step.rule_id, step.body, position
            )
    except NotFound:
        # Deleted by someone since the read (or the whole entry point went): a delete
        # is done, an edit is not turned into a re-creation.
        out.entrypoint = await client.get_cache_rules(zone_id)
        if isinstance(step, rules.Edit):
            out.failures[step.ref] = (
                f"Cache Rule {step.ref} was deleted by someone between the operator's read "
                "and its write: not re-created in that write"
            )
        return
    out.written += 1


async def _create_entrypoint(
    client: CloudflareClient, zone_id: str, step: rules.Create
) -> Entrypoint:
    """Create the entry point holding the rule; if someone created it since the read
    (the create is refused), add the rule to theirs instead."""
    try:
        return await client.create_cache_ruleset(zone_id, [step.body])
    except CloudflareRefused:
        entry = await client.get_cache_rules(zone_id)
        if entry is None:
            raise
    log.info("zone %s: the Cache Rules entry point appeared meanwhile: adding to it", zone_id)
    return await client.create_cache_rule(
        zone_id, entry.id, step.body, rules.FIRST if entry.rules else None
    )
