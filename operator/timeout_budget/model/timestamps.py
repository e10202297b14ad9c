"""Time as the pure core sees it: seconds since the epoch, always passed in.

The policy ladder never reads a clock, so tests can move time by hand and a decision can be
replayed. Kubernetes status, on the other hand, wants RFC 3339 strings. These functions
are the only crossing between the two, and the parser is lenient because a status can be
edited by hand or written by an older operator.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache

Clock = Callable[[], float]
"""Seconds now, as the operator's parts are given it: ``time.time`` (Unix seconds) for what
is written to status, Cloudflare or logs; ``time.monotonic`` for durations only (the
leader Lease's renew deadline). Tests pass a manual clock. Only the composition's defaults
name ``time.time``; nothing reads the time any other way."""


@lru_cache(maxsize=16384)  # every route of a cycle formats the same ``now``
def rfc3339(epoch_seconds: float, *, whole_seconds: bool = False) -> str:
    """``2026-01-02T03:04:05Z``; fractions are kept unless ``whole_seconds`` (as conditions use)."""
    moment = datetime.fromtimestamp(epoch_seconds, tz=UTC)
    if whole_seconds or not moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc3339_micro(epoch_seconds: float) -> str:
    """``2026-01-02T03:04:05.000000Z``: Kubernetes ``MicroTime`` wants all six digits."""
    return datetime.fromtimestamp(epoch_seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_rfc3339(value: object) -> float | None:
    """Seconds since the epoch, or ``None`` for anything that is not an RFC 3339 string."""
    if not isinstance(value, str):
        return None
    return _parse(value)


@lru_cache(maxsize=16384)  # each route's status carries the same times cycle after cycle
def _parse(value: str) -> float | None:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
