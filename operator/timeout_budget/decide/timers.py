"""The part of memory that follows the readings alone, whatever the operator then does.

The hysteresis latch, the at-risk streak and the start of a recovery depend only on what was
observed, so they advance even when the operator is paused or in a dry run (and a dry run's
plan is then the same each evaluation, instead of appearing once per cooldown). The rest of
memory — when it scaled, what it rerouted — changes only when it acts.

Missing data never completes a recovery: without a reading the recovery window starts again,
and it is only the latch and the streak that hold.

``recovery`` is the one rule by which a last resort (a reroute, an edge raise) is released:
P95 below the recover line for ``release_window`` seconds, with data all along. Both rungs
read it, so the two can never disagree on when a route has recovered.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from timeout_budget.decide.bands import Band
from timeout_budget.decide.context import Context
from timeout_budget.model.memory import Memory
from timeout_budget.model.spec import TimeoutBudgetSpec


def observe(
    previous: Memory, band: Band | None, now: float, *, at_cap: bool, streak_limit: int
) -> Memory:
    """``streak_limit``: the count that triggers a reroute (0 without one); counting further
    would only change status on every evaluation."""
    if band is None:
        return replace(previous, recovery_started_at=None)
    return replace(
        previous,
        at_risk=_latch(previous.at_risk, band),
        at_risk_streak=min(_streak(previous, band, at_cap), streak_limit),
        recovery_started_at=_recovery(previous.recovery_started_at, band, now),
    )


def _latch(was_at_risk: bool, band: Band) -> bool:
    if band.at_risk:
        return True
    if band is Band.RECOVERED:
        return False
    return was_at_risk


def _streak(previous: Memory, band: Band, at_cap: bool) -> int:
    if band is Band.HOLD:
        return previous.at_risk_streak
    if band.at_risk and at_cap and not previous.rerouted:
        return previous.at_risk_streak + 1
    return 0


def _recovery(started_at: float | None, band: Band, now: float) -> float | None:
    if band is not Band.RECOVERED:
        return None
    return now if started_at is None else started_at


@dataclass(frozen=True, slots=True)
class Recovery:
    """How far a route is through the recovery that releases its last resorts."""

    below: bool
    """P95 is below the recover line now (with a usable reading)."""
    held: float
    """Seconds it has stayed there, with data all along (0 when it is not there)."""
    window: int
    """Seconds it must stay there (``release_window``)."""

    @property
    def complete(self) -> bool:
        """The band is checked too: with a window of 0, a reading between the lines or no
        reading at all must still release nothing."""
        return self.below and self.held >= self.window

    @property
    def left(self) -> float:
        return max(0.0, self.window - self.held)


def release_window(spec: TimeoutBudgetSpec) -> int:
    """How long P95 must stay below the recover line before a reroute or an edge raise is
    undone: ``reroute.recoverySeconds``; without a reroute section (an edge raise alone), the
    route's only other recovery window, ``origin.scaleDownStabilizationSeconds``."""
    if spec.reroute is not None:
        return spec.reroute.recovery_seconds
    return spec.origin.scale_down_stabilization_seconds


def recovery(ctx: Context, memory: Memory) -> Recovery:
    """The recovery as of this evaluation (``memory`` as ``observe`` left it)."""
    return Recovery(
        below=ctx.band is Band.RECOVERED,
        held=ctx.held_for(memory.recovery_started_at),
        window=release_window(ctx.spec),
    )
