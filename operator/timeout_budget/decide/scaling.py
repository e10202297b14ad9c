"""The first rung: scale the origin up while at risk, and back down, slowly, after recovery.

Up: by ``scaleUpStep``, within ``[minReplicas, maxReplicas]``, at most once per
``scaleUpCooldownSeconds`` so new pods get the time to show in the latency. Down: one replica
at a time, each only after P95 has stayed below the recover line for
``scaleDownStabilizationSeconds`` since the recovery began, the last scale-down, and the
undo of any reroute or edge raise (those go first: the last resort is released before the
capacity that made it unnecessary). Between the lines, and without data, nothing moves.
"""

from __future__ import annotations

from dataclasses import replace

from timeout_budget.decide.bands import Band
from timeout_budget.decide.context import Context, Step, latest, secs
from timeout_budget.model.actions import ScaleTo
from timeout_budget.model.memory import Memory


def plan(ctx: Context, memory: Memory) -> Step:
    if ctx.band is not None and ctx.band.at_risk:
        return _up(ctx, memory)
    exhausted = f"at max replicas ({ctx.bounds.cap})" if ctx.bounds.at_cap else None
    if ctx.band is Band.RECOVERED:
        return replace(_down(ctx, memory), exhausted=exhausted)
    return Step(memory, exhausted=exhausted)


def _up(ctx: Context, memory: Memory) -> Step:
    b = ctx.bounds
    if b.at_cap:
        return Step(memory, exhausted=f"at max replicas ({b.cap})")
    wait = ctx.spec.origin.scale_up_cooldown_seconds - ctx.held_for(memory.last_scale_up_at)
    if memory.last_scale_up_at is not None and wait > 0:
        note = f"next scale-up in {secs(round(wait))} (cooldown)"
        return Step(memory, notes=(note,), counts_down=True)
    target = min(b.cap, max(b.running + ctx.spec.origin.scale_up_step, b.least))
    line = "budget" if ctx.band is Band.BREACHING else "at-risk line"
    threshold = ctx.lines.budget if ctx.band is Band.BREACHING else ctx.lines.at_risk
    reason = (
        f"{ctx.describe_reading()} is at or above the {line} ({secs(threshold)}): "
        f"scaling up {b.running} → {target}"
    )
    action = ScaleTo(ctx.spec.origin.deployment_name, target, b.via_hpa, reason)
    return Step(replace(memory, last_scale_up_at=ctx.now), actions=(action,), notes=(reason,))


def _down(ctx: Context, memory: Memory) -> Step:
    b = ctx.bounds
    if b.floor is None or b.current <= b.floor:
        return Step(memory)
    if memory.rerouted or memory.edge_raised:
        last = "the reroute is undone" if memory.rerouted else "the edge read timeout is lowered"
        return Step(memory, notes=(f"scale-down waits until {last}",))
    since = latest(memory.recovery_started_at, memory.last_scale_down_at, memory.released_at)
    held = ctx.held_for(since)
    window = ctx.spec.origin.scale_down_stabilization_seconds
    if held < window:
        return Step(
            memory,
            notes=(
                f"next scale-down in {secs(round(window - held))} "
                f"if P95 stays below {secs(ctx.lines.recover)}",
            ),
            counts_down=True,
        )
    target = b.current - 1
    reason = (
        f"{ctx.describe_reading()} has stayed below the recover line "
        f"({secs(ctx.lines.recover)}) for {secs(round(held))}: "
        f"scaling down one step {b.current} → {target}"
    )
    action = ScaleTo(ctx.spec.origin.deployment_name, target, b.via_hpa, reason, target == b.floor)
    return Step(replace(memory, last_scale_down_at=ctx.now), actions=(action,), notes=(reason,))
