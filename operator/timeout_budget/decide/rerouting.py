"""The second rung: reroute the route when scaling is not enough, and undo it after recovery.

Reroute at once when P95 reaches the budget; when at risk at max replicas, only after
``reroute.afterEvaluations`` such evaluations in a row (one slow scrape must not reroute).
Undo only after P95 has stayed below the recover line for ``reroute.recoverySeconds``, with
data all along. A target the spec no longer names is undone at once: the user removed it.

A reroute is a desired state, re-stated on every evaluation while it holds, so a Service
selector put back by someone else is switched again by the diff and apply steps.
"""

from __future__ import annotations

from dataclasses import replace

from timeout_budget.decide import timers
from timeout_budget.decide.bands import Band
from timeout_budget.decide.context import Context, Step, secs
from timeout_budget.model.actions import ActionKind, Refusal, Reroute, RerouteTarget, RerouteVia
from timeout_budget.model.memory import Memory
from timeout_budget.model.spec import TimeoutBudgetSpec


def targets(spec: TimeoutBudgetSpec) -> tuple[tuple[RerouteTarget, ...], tuple[Refusal, ...]]:
    """The targets the spec names that the operator can use, and refusals for the others."""
    reroute = spec.reroute
    if reroute is None:
        return (), ()
    usable: list[RerouteTarget] = []
    refusals: list[Refusal] = []
    if reroute.service_name and reroute.long_running_selector:
        usable.append(RerouteTarget(RerouteVia.SERVICE, reroute.service_name))
    if reroute.dns_only_hostname:
        if spec.edge is not None and spec.edge.sync:
            usable.append(RerouteTarget(RerouteVia.DNS_ONLY, reroute.dns_only_hostname))
        else:
            refusals.append(
                Refusal(
                    ActionKind.REROUTE,
                    f"switch {reroute.dns_only_hostname} to DNS-only",
                    "DNS records are changed only through edge.zoneRef with edge.sync on",
                )
            )
    return tuple(sorted(usable)), tuple(refusals)


def plan(ctx: Context, memory: Memory) -> Step:
    usable, unusable = targets(ctx.spec)
    stale = tuple(t for t in memory.rerouted_to if t not in usable)
    undo_stale = tuple(
        Reroute(t, apply=False, reason=f"{t.describe()} is no longer in spec.reroute: restoring")
        for t in stale
    )
    active = tuple(t for t in memory.rerouted_to if t in usable)
    memory = replace(memory, rerouted_to=active)
    step = _hold_or_undo(ctx, memory) if active else _maybe_reroute(ctx, memory, usable, unusable)
    return replace(step, actions=undo_stale + step.actions)


def _maybe_reroute(
    ctx: Context,
    memory: Memory,
    usable: tuple[RerouteTarget, ...],
    unusable: tuple[Refusal, ...],
) -> Step:
    exhausted = None if usable else "no reroute configured"
    trigger, note = _trigger(ctx, memory)
    if trigger is None:
        return Step(memory, notes=(note,) if note and usable else (), exhausted=exhausted)
    if not usable:
        return Step(memory, refusals=unusable, exhausted=exhausted)
    reason = f"{trigger}: rerouting {', '.join(t.describe() for t in usable)}"
    rerouted = replace(memory, rerouted_to=usable, rerouted_at=ctx.now, at_risk_streak=0)
    return Step(
        rerouted,
        actions=tuple(Reroute(t, apply=True, reason=reason) for t in usable),
        refusals=unusable,
        notes=(reason,),
    )


def _trigger(ctx: Context, memory: Memory) -> tuple[str | None, str | None]:
    """Why to reroute now, or else what is still missing."""
    if ctx.band is Band.BREACHING:
        return f"{ctx.describe_reading()} reached the budget ({secs(ctx.lines.budget)})", None
    if ctx.band is not Band.AT_RISK or not ctx.bounds.at_cap:
        return None, None
    needed = ctx.spec.reroute.after_evaluations if ctx.spec.reroute else 1
    if memory.at_risk_streak >= needed:
        return (
            f"at risk at max replicas ({ctx.bounds.cap}) for "
            f"{memory.at_risk_streak} evaluations in a row",
            None,
        )
    left = needed - memory.at_risk_streak
    return None, f"reroute after {left} more at-risk evaluation(s) at max replicas"


def _hold_or_undo(ctx: Context, memory: Memory) -> Step:
    recovery = timers.recovery(ctx, memory)
    active = memory.rerouted_to
    names = ", ".join(t.describe() for t in active)
    if recovery.complete:
        reason = (
            f"{ctx.describe_reading()} has stayed below the recover line "
            f"({secs(ctx.lines.recover)}) for {secs(round(recovery.held))}: "
            f"undoing the reroute of {names}"
        )
        undone = replace(memory, rerouted_to=(), released_at=ctx.now)
        return Step(
            undone,
            actions=tuple(Reroute(t, apply=False, reason=reason) for t in active),
            notes=(reason,),
        )
    window = secs(recovery.window)
    reason = f"rerouted; undone once P95 stays below {secs(ctx.lines.recover)} for {window}"
    return Step(
        memory,
        actions=tuple(Reroute(t, apply=True, reason=reason) for t in active),
        notes=(_waiting(ctx, recovery),),
        exhausted="already rerouted",
        counts_down=recovery.below,  # "reroute undone in 42s"
    )


def _waiting(ctx: Context, recovery: timers.Recovery) -> str:
    if ctx.band is None:
        return "reroute held: no data, the recovery window starts again with data"
    if recovery.below:
        return f"reroute undone in {secs(round(recovery.left))} if P95 stays below the recover line"
    return (
        f"reroute held until P95 stays below {secs(ctx.lines.recover)} for {secs(recovery.window)}"
    )
