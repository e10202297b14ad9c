"""The weighted reroute's steps (``reroute.httpRoute``): how far along the shift is, and the
next step forward or back.

The shift starts at the first step when the ladder reroutes (``decide.rerouting``: the
same trigger as every reroute kind). Each step then holds ``holdSeconds`` while P95 is
read; the next one is taken only while the route is still at risk, so the shift stops at
the step that brought P95 back under the at-risk line, and only once the step before is in
force on the HTTPRoute (a step refused, say for a rule someone else changed, is not
walked past). After recovery (P95 below the
recover line for ``reroute.recoverySeconds``) it walks back the same way, one step per
``holdSeconds``, and the last step back is the undo, which restores the rule exactly. A
route at risk again during the walk back climbs again. Pure: the spec, the memory and the
time in; the step to be in force out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from timeout_budget.decide.context import Context, secs
from timeout_budget.model.memory import Memory
from timeout_budget.model.spec import TimeoutBudgetSpec


def steps_of(spec: TimeoutBudgetSpec) -> tuple[int, ...]:
    shift = spec.reroute.http_route if spec.reroute is not None else None
    return tuple(shift.steps) if shift is not None else ()


def hold_of(spec: TimeoutBudgetSpec) -> int:
    shift = spec.reroute.http_route if spec.reroute is not None else None
    return shift.hold_seconds if shift is not None else 0


def adopted(spec: TimeoutBudgetSpec, memory: Memory, observed_percent: int | None) -> Memory:
    """A shift found in force that memory does not count (status lost, or written by a
    replica that died before its status): the highest step not above the share in force."""
    if memory.shift_step or observed_percent is None:
        return memory
    steps = steps_of(spec)
    reached = sum(1 for s in steps if s <= observed_percent)
    return replace(memory, shift_step=max(1, reached))


def percent(spec: TimeoutBudgetSpec, step: int) -> int:
    """The long-running backend's share at ``step`` (1-based; clamped to the spec's steps,
    which may have been shortened since)."""
    steps = steps_of(spec)
    return steps[max(1, min(step, len(steps))) - 1]


def started(ctx: Context, memory: Memory) -> Memory:
    return replace(memory, shift_step=1, shift_step_at=ctx.now)


@dataclass(frozen=True, slots=True)
class Move:
    """The shift's next step, if the time has come."""

    memory: Memory
    note: str
    forward: bool = False
    back: bool = False
    waits: bool = False
    """A step is due but its hold is not over: the message counts down."""

    @property
    def done(self) -> bool:
        """The walk back has reached zero: the reroute is undone."""
        return self.back and self.memory.shift_step == 0


def forward(ctx: Context, memory: Memory) -> Move:
    """While rerouted and not yet recovered: one step further while at risk, else hold."""
    steps = steps_of(ctx.spec)
    step = min(memory.shift_step, len(steps))
    at = f"{percent(ctx.spec, step)}%"
    if step >= len(steps):
        return Move(memory, f"weighted reroute at its last step ({at})")
    if ctx.observation.shift_percent != percent(ctx.spec, step):
        return Move(memory, f"weighted reroute: waiting for {at} to be in force")
    if not ctx.at_risk:
        return Move(memory, f"weighted reroute holding at {at}: P95 is under the at-risk line")
    left = _left(ctx, memory)
    if left > 0:
        return Move(
            memory, f"weighted reroute at {at}; next step in {secs(round(left))}", waits=True
        )
    moved = replace(memory, shift_step=step + 1, shift_step_at=ctx.now)
    nxt = f"{percent(ctx.spec, step + 1)}%"
    return Move(
        moved, f"still at risk after {at}: shifting {nxt} to the long-running backend", True
    )


def back(ctx: Context, memory: Memory) -> Move:
    """After recovery: one step back per hold; from the first step, the undo."""
    step = min(memory.shift_step, len(steps_of(ctx.spec)))
    left = _left(ctx, memory)
    at = f"{percent(ctx.spec, step)}%"
    if ctx.observation.shift_percent != percent(ctx.spec, step):
        return Move(
            memory, f"weighted reroute: waiting for {at} to be in force before walking back"
        )
    if left > 0:
        return Move(
            memory,
            f"walking the weighted reroute back from {at}; next step in {secs(round(left))}",
            waits=True,
        )
    moved = replace(memory, shift_step=step - 1, shift_step_at=ctx.now if step > 1 else None)
    if step <= 1:
        return Move(moved, f"recovered: the weighted reroute is walked back from {at}", back=True)
    nxt = f"{percent(ctx.spec, step - 1)}%"
    return Move(moved, f"recovered: walking the weighted reroute back to {nxt}", back=True)


def _left(ctx: Context, memory: Memory) -> float:
    return max(0.0, hold_of(ctx.spec) - ctx.held_for(memory.shift_step_at))
