"""The second rung: reroute the route when scaling is not enough, and undo it after recovery.

Reroute at once when P95 reaches the budget; when at risk at max replicas, only after
``reroute.afterEvaluations`` such evaluations in a row (one slow scrape must not reroute).
Undo only after P95 has stayed below the recover line for ``reroute.recoverySeconds``, with
data all along. A target the spec no longer names is undone at once: the user removed it.
The weighted reroute on an HTTPRoute (``reroute.httpRoute``) is one more target, with the
same trigger and the same recovery; it moves by steps (``decide.shifting``): forward while
at risk, back after recovery, its last step back being the undo of every target.

A reroute is a desired state, re-stated on every evaluation while it holds, so a Service
selector put back by someone else is switched again by the diff and apply steps.
"""

from __future__ import annotations

from dataclasses import replace

from timeout_budget.decide import shifting, timers
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
    if reroute.http_route is not None:
        usable.append(RerouteTarget(RerouteVia.HTTPROUTE, reroute.http_route.name))
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
    if not any(t.via is RerouteVia.HTTPROUTE for t in active):
        memory = replace(memory, shift_step=0, shift_step_at=None)
    else:
        memory = shifting.adopted(ctx.spec, memory, ctx.observation.shift_percent)
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
    if any(t.via is RerouteVia.HTTPROUTE for t in usable):
        rerouted = shifting.started(ctx, rerouted)
    return Step(
        rerouted,
        actions=_in_force(ctx, rerouted, reason),
        refusals=unusable,
        notes=(reason,),
    )


def _in_force(ctx: Context, memory: Memory, reason: str) -> tuple[Reroute, ...]:
    """Every rerouted target as it must be now (the weighted one at its step)."""
    shift = ctx.spec.reroute.http_route if ctx.spec.reroute is not None else None
    timeout = ctx.lines.budget + 1 if shift is not None and shift.set_timeouts else None
    return tuple(
        Reroute(
            t,
            apply=True,
            reason=reason,
            percent=shifting.percent(ctx.spec, memory.shift_step),
            rule_timeout_seconds=timeout,
        )
        if t.via is RerouteVia.HTTPROUTE
        else Reroute(t, apply=True, reason=reason)
        for t in memory.rerouted_to
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
    shifted = any(t.via is RerouteVia.HTTPROUTE for t in memory.rerouted_to)
    if recovery.complete and shifted:
        back = shifting.back(ctx, memory)
        if not back.done:
            return _held(ctx, back.memory, recovery, back, counts_down=True)
    if recovery.complete:
        return _undo(ctx, memory, recovery)
    move = shifting.forward(ctx, memory) if shifted else None
    return _held(ctx, move.memory if move else memory, recovery, move, recovery.below)


def _undo(ctx: Context, memory: Memory, recovery: timers.Recovery) -> Step:
    active = memory.rerouted_to
    names = ", ".join(t.describe() for t in active)
    reason = (
        f"{ctx.describe_reading()} has stayed below the recover line "
        f"({secs(ctx.lines.recover)}) for {secs(round(recovery.held))}: "
        f"undoing the reroute of {names}"
    )
    undone = replace(memory, rerouted_to=(), released_at=ctx.now, shift_step=0, shift_step_at=None)
    return Step(
        undone,
        actions=tuple(Reroute(t, apply=False, reason=reason) for t in active),
        notes=(reason,),
    )


def _held(
    ctx: Context,
    memory: Memory,
    recovery: timers.Recovery,
    move: shifting.Move | None,
    counts_down: bool,
) -> Step:
    """The reroute stays in force (the weighted one at the step ``move`` leaves it)."""
    window = secs(recovery.window)
    reason = f"rerouted; undone once P95 stays below {secs(ctx.lines.recover)} for {window}"
    if move is not None and (move.forward or move.back):
        reason = move.note
    last = move is None or shifting.percent(ctx.spec, memory.shift_step) == 100
    notes: tuple[str, ...] = (move.note,) if move is not None else ()
    if not recovery.complete:  # else the weighted reroute is walking back
        notes += (_waiting(ctx, recovery),)
    return Step(
        memory,
        actions=_in_force(ctx, memory, reason),
        notes=notes,
        exhausted="already rerouted" if last else None,
        counts_down=counts_down or (move is not None and move.waits),  # "reroute undone in 42s"
    )


def _waiting(ctx: Context, recovery: timers.Recovery) -> str:
    if ctx.band is None:
        return "reroute held: no data, the recovery window starts again with data"
    if recovery.below:
        return f"reroute undone in {secs(round(recovery.left))} if P95 stays below the recover line"
    return (
        f"reroute held until P95 stays below {secs(ctx.lines.recover)} for {secs(recovery.window)}"
    )
