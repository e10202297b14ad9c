"""Who may run the evaluation loop: the rules of the leader Lease, without any I/O.

With several replicas (kopf peering on), kopf pauses the standby replicas, but peering is
eventually consistent: a standby that misses keep-alives (a slow watch, a loaded node)
resumes while the active replica is still alive. The loop therefore also holds a
``coordination.k8s.io/v1`` Lease, written with optimistic concurrency (resourceVersion),
the way client-go's leader election does:

* the holder renews it every ``retry`` seconds and stops acting when its last successful
  renewal is older than ``renew_deadline``;
* another replica takes it only when the lease is free, or when it has watched the same
  holder's record stay unchanged for a whole ``duration`` on its *own* clock (so clocks that
  disagree between nodes cannot make two holders);
* ``renew_deadline < duration``: the old holder has stopped acting before anyone else may
  start.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LeaseTiming:
    duration: float = 15.0
    """Seconds a holder's record must stay unchanged before another replica takes it."""
    renew_deadline: float = 10.0
    """The holder acts only this long after its last successful renewal."""
    retry: float = 2.0
    """Seconds between two reads (and the holder's renewals)."""

    def __post_init__(self) -> None:
        if not 0 < self.retry < self.renew_deadline < self.duration:
            raise ValueError(
                "lease timing needs 0 < retry < renew_deadline < duration, got "
                f"retry={self.retry}, renew_deadline={self.renew_deadline}, "
                f"duration={self.duration}"
            )

    @classmethod
    def for_duration(cls, duration: float) -> LeaseTiming:
        """client-go's proportions (15 s / 10 s / 2 s) for another duration."""
        return cls(duration=duration, renew_deadline=duration * 2 / 3, retry=duration * 2 / 15)


@dataclass(frozen=True)
class LeaseRecord:
    """The Lease as read: who holds it, and the version the next write must match."""

    holder: str
    renew_time: str
    transitions: int
    resource_version: str

    @property
    def free(self) -> bool:
        return not self.holder


@dataclass(frozen=True)
class Sighting:
    """A record first seen unchanged at ``since`` (this replica's monotonic clock)."""

    holder: str
    resource_version: str
    since: float


def sight(previous: Sighting | None, record: LeaseRecord, now: float) -> Sighting:
    """The sighting after reading ``record`` at ``now``: its age restarts with any write
    (every write, a renewal included, gives the Lease a new resourceVersion)."""
    if previous is not None and (previous.holder, previous.resource_version) == (
        record.holder,
        record.resource_version,
    ):
        return previous
    return Sighting(record.holder, record.resource_version, now)


def may_take(
    record: LeaseRecord | None, seen: Sighting | None, me: str, now: float, timing: LeaseTiming
) -> bool:
    """May replica ``me`` write itself as the holder now?"""
    if record is None or record.free or record.holder == me:
        return True
    return seen is not None and now - seen.since >= timing.duration
