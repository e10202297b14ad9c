"""The third rung: the route's read timeout at the Cloudflare edge.

Two reasons to give a route a read timeout of its own (a Cache Rule ``read_timeout``):

* it declares ``requiredSeconds`` (a 300 s export must not be cut at 120 s): always, as
  configuration, with or without latency data;
* it is at risk at max replicas: the timeout is raised to the budget (or the declared need,
  if larger) as a rung of the ladder, and lowered again by the very rule that undoes a
  reroute (``timers.recovery``): only once P95 has stayed below the recover line for the
  recovery window. Between the lines and without data the raise holds, so an at-risk
  episode sees one raise and one lowering, never a flap when P95 dips under the at-risk
  line for a cycle. Like a reroute found in force, a raise found in force (the route's rule
  at exactly the raise's value) counts as the operator's own even when its memory is not
  there (a status written over, or read before the operator's own write arrived): it is
  then lowered only after a recovery, never at once.

Cloudflare may answer 524 about one second after the configured value, so the target is
always one second more (121 for 120). A Cache Rule read timeout is 100..6000 s, and only as
much as the zone's plan allows: when the plan does not allow it (``editable: false``) or the
need exceeds the plan's maximum, the rung refuses with the reason, and Cloudflare's advice
applies. When the zone's own timeout is enough, the route needs no rule and a rule the
operator made earlier goes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from timeout_budget.decide import chain, coverage, timers
from timeout_budget.decide.context import Context, Step, secs
from timeout_budget.model.actions import (
    MIN_ROUTE_READ_TIMEOUT_SECONDS,
    ActionKind,
    EdgeTimeout,
    Refusal,
)
from timeout_budget.model.memory import Memory
from timeout_budget.model.spec import MAX_EDGE_TIMEOUT_SECONDS
from timeout_budget.model.world import EdgeObservation

RAISE = "raise the edge read timeout"
EDGE = ActionKind.EDGE_TIMEOUT


@dataclass(frozen=True)
class _Fit:
    seconds: int | None = None
    """The read timeout to set; ``None``: none needed, or refused."""
    refusal: str | None = None
    note: str | None = None


def plan(ctx: Context, memory: Memory) -> Step:
    edge, zone = ctx.spec.edge, ctx.observation.edge
    if edge is None:
        return Step(memory, exhausted="no edge.zoneRef to raise the read timeout at")
    if not edge.sync:
        return Step(memory, exhausted="edge.sync is off")
    if zone is None:
        return _zone_unknown(ctx, memory)
    declared = _declared(ctx, zone)
    escalation = _fit(_escalation_target(ctx), zone)
    memory, escalation_notes = _raise_or_release(ctx, memory, zone, declared, escalation)
    uncovered = _uncovered(ctx, zone)
    pending = coverage.zone_raise_pending(ctx.spec, zone)
    refusals = (Refusal(EDGE, RAISE, declared.refusal),) if declared.refusal else ()
    notes = (declared.note, *escalation_notes, _pending_note(uncovered, pending))
    return Step(
        memory,
        actions=_action(ctx, zone, declared, escalation if memory.edge_raised else _Fit()),
        refusals=refusals + (uncovered if pending is None else ()),
        notes=tuple(n for n in notes if n),
        exhausted=_exhausted(ctx, memory, zone, declared, escalation),
        needs_advice=declared.refusal is not None or (bool(uncovered) and pending is None),
    )


def _uncovered(ctx: Context, zone: EdgeObservation) -> tuple[Refusal, ...]:
    """Methods the route's Cache Rule cannot cover (Cloudflare caches only GET/HEAD, and
    a Cache Rule's read timeout applies only to cacheable requests), that the zone's
    timeout is too short for, that no zone-wide raise covers and that have no DNS-only
    hostname: said, with the advice."""
    found = []
    for c in coverage.coverage(ctx.spec, zone):
        if c.covered:
            continue
        methods = "/".join(c.methods)
        keeps = "keeps" if len(c.methods) == 1 else "keep"
        why = f"a Cache Rule's read timeout covers GET/HEAD only; {methods} {keeps} the zone's "
        why += f"{secs(c.timeout_seconds or zone.zone_timeout_seconds)}"
        ceiling = zone.zone_raise_ceiling_seconds
        if ceiling is not None:
            why += f" (the CloudflareZone's raise stops at {secs(ceiling)})"
        found.append(Refusal(EDGE, f"cover {methods} at the edge", why + _no_raise_or_dns(zone)))
    return tuple(found)


def _no_raise_or_dns(zone: EdgeObservation) -> str:
    if zone.zone_raise_ceiling_seconds is not None:
        return " and the route has no reroute.dnsOnlyHostname"
    return (
        ", the CloudflareZone does not allow raising it (spec.raiseProxyReadTimeout, "
        "Enterprise plans) and the route has no reroute.dnsOnlyHostname"
    )


def _pending_note(uncovered: tuple[Refusal, ...], pending: int | None) -> str | None:
    if pending is None or not uncovered:
        return None
    methods = uncovered[0].action.removeprefix("cover ").removesuffix(" at the edge")
    return (
        f"{methods}: the zone's proxy_read_timeout is being raised to {secs(pending)} "
        "(CloudflareZone spec.raiseProxyReadTimeout) at the zone's next sync"
    )


def _zone_unknown(ctx: Context, memory: Memory) -> Step:
    why = "the zone's Cloudflare state is not known yet"
    required = ctx.spec.budget.required_seconds
    if ctx.observation.edge_unread or not required:
        # Right after a start the zone's first read is seconds away: a wait, not a refusal
        # (no Warning Event on every rollout).
        return Step(memory, exhausted=why)
    refusals = (Refusal(EDGE, f"allow {secs(required)} at the edge", why),)
    return Step(memory, refusals=refusals, exhausted=why)


def _declared(ctx: Context, zone: EdgeObservation) -> _Fit:
    required = ctx.spec.budget.required_seconds
    if required is None:
        return _Fit()
    fit = _fit(required + 1, zone)
    if fit.refusal:
        return replace(
            fit, refusal=f"requiredSeconds {required} needs {required + 1}s: {fit.refusal}"
        )
    return fit


def _escalation_target(ctx: Context) -> int:
    return max(ctx.spec.budget.required_seconds or 0, ctx.lines.budget) + 1


def _fit(wanted: int, zone: EdgeObservation) -> _Fit:
    """Bound a wanted read timeout by Cloudflare's range and the zone's plan."""
    if wanted <= zone.zone_timeout_seconds:
        return _Fit()
    if not zone.editable:
        return _Fit(
            refusal=f"the zone's plan does not allow changing the read timeout "
            f"(editable: false), it stays at {secs(zone.zone_timeout_seconds)}"
        )
    limit = min(zone.max_timeout_seconds, MAX_EDGE_TIMEOUT_SECONDS)
    if wanted - 1 > limit:
        return _Fit(refusal=f"the zone's plan allows at most {secs(limit)}")
    seconds = max(MIN_ROUTE_READ_TIMEOUT_SECONDS, min(wanted, limit))
    note = None
    if seconds < wanted:
        note = f"edge read timeout capped at {secs(limit)}: no 1 s margin over {secs(wanted - 1)}"
    return _Fit(seconds=seconds, note=note)


def _raise_or_release(
    ctx: Context, memory: Memory, zone: EdgeObservation, declared: _Fit, escalation: _Fit
) -> tuple[Memory, tuple[str, ...]]:
    memory = _adopt(memory, zone, declared, escalation)
    if memory.edge_raised:
        return _hold_or_lower(ctx, memory, escalation)
    if ctx.at_risk and ctx.bounds.at_cap and _raise_helps(zone, declared, escalation):
        inner = _inner_fires_first(ctx)
        if inner is not None:
            return memory, (inner,)
        to = secs(escalation.seconds or 0)
        note = f"at risk at max replicas: raising the edge read timeout to {to}"
        return replace(memory, edge_raised=True), (note,)
    return memory, ()


def _inner_fires_first(ctx: Context) -> str | None:
    """Why raising the edge would not help: a hop behind it fires before the budget."""
    judged = chain.of(ctx)
    first = judged.first_to_fire if judged is not None else None
    if first is None or first.timeout_seconds is None:
        return None
    return (
        f"the edge read timeout is not raised: {first.hop} ({first.object}) cuts requests at "
        f"{secs(first.timeout_seconds)} first, so a longer edge would not help"
    )


def _adopt(memory: Memory, zone: EdgeObservation, declared: _Fit, escalation: _Fit) -> Memory:
    """A raise in force is remembered as one, as ``Memory.adopt`` does for a reroute: without
    it, an evaluation that read the memory before the raise was written (or after the status
    was lost) would state "no rule" and lower it at once, to raise it again when P95 climbs
    back. Only the raise's exact value counts: any other rule of the operator's (a declared
    need since changed) is configuration, and goes or changes as before."""
    if memory.edge_raised or zone.route_timeout_seconds is None:
        return memory
    if zone.route_timeout_seconds != escalation.seconds:
        return memory
    if not _raise_helps(zone, declared, escalation):
        return memory
    return replace(memory, edge_raised=True)


def _hold_or_lower(
    ctx: Context, memory: Memory, escalation: _Fit
) -> tuple[Memory, tuple[str, ...]]:
    """The reroute's rule (``timers.recovery``), so both go together after one recovery."""
    recovery = timers.recovery(ctx, memory)
    if recovery.complete:
        note = (
            f"P95 has stayed below {secs(ctx.lines.recover)} for {secs(round(recovery.held))}: "
            "lowering the edge read timeout again"
        )
        return replace(memory, edge_raised=False, released_at=ctx.now), (note,)
    if memory.rerouted or escalation.seconds is None:
        return memory, ()  # the reroute's note says when both go; nothing raised to show
    note = (
        f"edge read timeout held at {secs(escalation.seconds)} until P95 stays below "
        f"{secs(ctx.lines.recover)} for {secs(recovery.window)}"
    )
    return memory, (note,)


def _raise_helps(zone: EdgeObservation, declared: _Fit, escalation: _Fit) -> bool:
    if escalation.seconds is None:
        return False
    return escalation.seconds > max(declared.seconds or 0, zone.zone_timeout_seconds)


def _action(
    ctx: Context, zone: EdgeObservation, declared: _Fit, escalation: _Fit
) -> tuple[EdgeTimeout, ...]:
    if declared.refusal:
        return ()  # leave whatever is there; the refusal says why
    route = ctx.spec.route
    required = ctx.spec.budget.required_seconds
    if escalation.seconds is not None and escalation.seconds > (declared.seconds or 0):
        reason = (
            f"at risk at max replicas: read timeout {secs(escalation.seconds)} "
            f"(budget {secs(ctx.lines.budget)} + 1 s) until P95 recovers"
        )
        return (EdgeTimeout(route.host, route.path_prefix, escalation.seconds, reason),)
    if declared.seconds is not None:
        reason = (
            f"the route declares requiredSeconds {required}; Cloudflare may answer 524 about "
            f"1 s after the read timeout, so {secs(declared.seconds)}"
        )
        return (EdgeTimeout(route.host, route.path_prefix, declared.seconds, reason),)
    reason = f"the zone's read timeout ({secs(zone.zone_timeout_seconds)}) is enough for this route"
    return (EdgeTimeout(route.host, route.path_prefix, None, reason),)


def _exhausted(
    ctx: Context, memory: Memory, zone: EdgeObservation, declared: _Fit, escalation: _Fit
) -> str | None:
    if memory.edge_raised:
        return f"edge read timeout already raised to {secs(escalation.seconds or 0)}"
    if escalation.refusal:
        return escalation.refusal
    inner = _inner_fires_first(ctx)
    if inner is not None and _raise_helps(zone, declared, escalation):
        return inner
    if not _raise_helps(zone, declared, escalation):
        return f"the edge already allows {secs(max(declared.seconds or 0, zone.in_force_seconds))}"
    return None
