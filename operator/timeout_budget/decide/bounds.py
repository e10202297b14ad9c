"""How far the operator may move an origin's scale, and which knob it moves.

Another controller may own ``spec.replicas``: when an HPA targets the Deployment the operator
acts through the HPA's ``minReplicas`` and never patches replicas (the two would fight).
Either way the operator only gives back what it added: it scales down towards the baseline
it found before its first scale-up (remembered in an annotation by the apply step), never
below ``origin.minReplicas`` for a Deployment, and not at all if it never scaled.
"""

from __future__ import annotations

from dataclasses import dataclass

from timeout_budget.model.spec import Origin
from timeout_budget.model.world import ScaleObservation


@dataclass(frozen=True)
class Bounds:
    current: int
    """The knob's value now: the HPA's minReplicas, else the Deployment's replicas."""
    running: int
    """What runs now, the base of a scale-up (with an HPA, it may be above its minimum)."""
    cap: int
    """The most the operator may ask for (with an HPA, also within its maxReplicas)."""
    least: int
    """The least the operator asks for on a scale-up (``origin.minReplicas``)."""
    floor: int | None
    """Where scale-down stops; ``None`` when the operator added nothing."""
    via_hpa: bool

    @property
    def at_cap(self) -> bool:
        return self.running >= self.cap


def of(origin: Origin, scale: ScaleObservation) -> Bounds:
    baseline = scale.baseline_replicas
    if scale.hpa is None:
        return Bounds(
            current=scale.spec_replicas,
            running=scale.spec_replicas,
            cap=origin.max_replicas,
            least=origin.min_replicas,
            floor=None if baseline is None else max(baseline, origin.min_replicas),
            via_hpa=False,
        )
    # The HPA's own minReplicas is restored exactly, even below origin.minReplicas:
    # below that the HPA, not the operator, decides the replicas.
    return Bounds(
        current=scale.hpa.min_replicas,
        running=max(scale.spec_replicas, scale.hpa.min_replicas),
        cap=min(origin.max_replicas, scale.hpa.max_replicas),
        least=origin.min_replicas,
        floor=baseline,
        via_hpa=True,
    )
