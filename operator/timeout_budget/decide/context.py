"""Everything one evaluation decides on, computed once, and the shape each rung returns.

The rungs of the ladder (scaling, rerouting, the edge) are separate functions. They all read
the same facts — the spec, the observation, the lines, the reading and its band, the scale
bounds, the time — so those are gathered once into a ``Context``. Each rung returns a
``Step``: its desired actions, what it refused, notes for the message, the memory it leaves,
and, when it has nothing left to try, why.
"""

from __future__ import annotations

from dataclasses import dataclass

from timeout_budget.decide import bands, bounds
from timeout_budget.decide.bands import Band, Lines
from timeout_budget.model.actions import Action, Refusal
from timeout_budget.model.memory import Memory
from timeout_budget.model.spec import TimeoutBudgetSpec
from timeout_budget.model.world import RouteObservation


@dataclass(frozen=True)
class Context:
    spec: TimeoutBudgetSpec
    observation: RouteObservation
    now: float
    lines: Lines
    bounds: bounds.Bounds
    reading: float | None
    band: Band | None
    """``None`` without a usable reading: every rung then holds."""

    @classmethod
    def of(
        cls,
        spec: TimeoutBudgetSpec,
        observation: RouteObservation,
        now: float,
        shown: float | None = None,
    ) -> Context:
        """``shown``: the P95 the route's status shows (see ``bands.steady``)."""
        zone_timeout = observation.edge.zone_timeout_seconds if observation.edge else None
        lines = Lines.of(spec.budget_seconds(zone_timeout), spec.budget)
        reading = bands.reading(observation.latency, shown, lines)
        top = observation.latency.top_bucket_seconds
        return cls(
            spec=spec,
            observation=observation,
            now=now,
            lines=lines,
            bounds=bounds.of(spec.origin, observation.scale),
            reading=reading,
            band=None if reading is None else bands.classify(reading, lines, top),
        )

    @property
    def at_risk(self) -> bool:
        return self.band is not None and self.band.at_risk

    def held_for(self, since: float | None) -> float:
        """Seconds since ``since`` (0 when it never started)."""
        return 0.0 if since is None else max(0.0, self.now - since)

    def describe_reading(self) -> str:
        if self.reading is None:
            return "no data"
        return f"P95 {secs(self.reading)}"


@dataclass(frozen=True)
class Step:
    memory: Memory
    actions: tuple[Action, ...] = ()
    refusals: tuple[Refusal, ...] = ()
    notes: tuple[str, ...] = ()
    exhausted: str | None = None
    """Why this rung has nothing more to offer (``None``: it could still act)."""
    needs_advice: bool = False
    """A need the route declared cannot be met: Cloudflare's advice applies."""
    counts_down: bool = False
    """A note shows the time left on a window ("next scale-down in 42s"): the message then
    changes with the time alone (``decide.quiet``)."""


def secs(seconds: float) -> str:
    """``120s``, ``96s``, ``97.3s``: whole seconds without decimals."""
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{seconds:.1f}s"


def latest(*moments: float | None) -> float | None:
    known = [m for m in moments if m is not None]
    return max(known) if known else None
