"""When a route's evaluation can be skipped: the same inputs give the same decision.

At thousands of routes most of them are quiet: healthy, at their baseline, their status
already saying so. Deciding them again every cycle costs the operator's CPU (about half a
millisecond per route) and changes nothing. The ladder is a pure function of the spec, the
observation, the memory, the P95 shown and the time, so a route may keep its last decision
when all but the time are the same, *and* the time cannot change the answer before the next
evaluation:

* the ladder reads the time only as ``Context.held_for(moment)`` of a moment in the
  memory (``recovery_started_at``, ``last_scale_up_at``, ``last_scale_down_at``,
  ``rerouted_at``, ``released_at``, ``shift_step_at``) compared with a duration of the
  spec (scale-up cooldown, scale-down stabilization, reroute recovery, the weighted
  reroute's hold; the edge release window is one of them), or shown as the time left on
  such a window (a countdown in the message);
* a comparison ``now - moment >= duration`` can flip only at ``moment + duration``, so
  until the first such instant after ``now`` (``stable_until``) every comparison keeps its
  answer; once every remembered moment is older than the longest duration (``durations``)
  none can flip any more;
* a decision that shows a countdown (``Decision.counts_down``), acts, or changes the memory
  is never reused (``reusable``).

A route that recovered or scaled a few minutes ago is then skipped too: its decision ("at
its floor, nothing to do") holds until its next window ends, not only after the longest.

``inputs`` is the key: everything but the time that the ladder and the status read, with
the raw P95 replaced by the reading the ladder decides on (``bands.steady``: noise within
the shown band gives the same reading). Any new use of the time in a rung must add its
duration to ``durations`` (or flag its countdown); tests/unit/test_quiet.py checks the claim
on random inputs.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

from timeout_budget.decide import bands
from timeout_budget.decide.bands import Lines
from timeout_budget.decide.context import Context
from timeout_budget.model.decision import Decision
from timeout_budget.model.memory import Memory
from timeout_budget.model.observation import LatencyObservation
from timeout_budget.model.spec import TimeoutBudgetSpec


def durations(spec: TimeoutBudgetSpec) -> tuple[float, ...]:
    """Every duration a rung compares a remembered moment with."""
    origin = spec.origin
    found = [origin.scale_up_cooldown_seconds, origin.scale_down_stabilization_seconds]
    if spec.reroute is not None:
        found.append(spec.reroute.recovery_seconds)
        if spec.reroute.http_route is not None:
            found.append(spec.reroute.http_route.hold_seconds)
    return tuple(float(d) for d in found)


def _moments(memory: Memory) -> tuple[float | None, ...]:
    return (
        memory.recovery_started_at,
        memory.last_scale_up_at,
        memory.last_scale_down_at,
        memory.rerouted_at,
        memory.released_at,
        memory.shift_step_at,
    )


def stable_until(spec: TimeoutBudgetSpec, memory: Memory, now: float) -> float:
    """The first instant after ``now`` at which a comparison of a remembered moment with a
    duration may flip (``math.inf`` when none can): before it, the time alone changes no
    decision that shows no countdown."""
    spans = durations(spec)
    flips = [m + d for m in _moments(memory) if m is not None for d in spans if m + d > now]
    return min(flips, default=math.inf)


def latency_inputs(
    latency: LatencyObservation, shown: float | None, lines: Lines
) -> tuple[Hashable, ...]:
    """The latency's part of ``inputs`` (outcome, message, top bucket, the reading decided
    on), computed without a ``Context``: the first thing a quiet route is checked against."""
    top = latency.top_bucket_seconds
    return (latency.outcome, latency.message, top, bands.reading(latency, shown, lines))


def inputs(
    ctx: Context,
    memory: Memory,
    shown: float | None,
    extra: Sequence[Hashable] = (),
) -> tuple[Hashable, ...]:
    """What the decision and the status are made of, except the time."""
    obs = ctx.observation
    latency = obs.latency
    return (
        *latency_inputs(latency, shown, ctx.lines),
        obs.scale,
        obs.rerouted,
        obs.shift_percent,
        obs.shift_changed,
        obs.edge,
        obs.chain,
        memory,
        shown,
        tuple(extra),
    )


def reusable(decision: Decision, memory: Memory) -> bool:
    """Only a decision that neither acts (nor plans to), nor changes the memory, nor shows a
    countdown is reused: acting, or a memory that moves (a recovery starting now, a streak
    counting), changes the next evaluation's inputs anyway, and a countdown its message."""
    return not decision.actions and decision.memory == memory and not decision.counts_down
