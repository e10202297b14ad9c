"""The synthetic origin's queueing model: how much longer requests take under load.

The shape of an M/M/c queue's response time, ``1 + Wq/S``, with Sakasegawa's approximation
of the mean wait; past ``RHO_MAX`` (an overload) it continues along the curve's tangent,
capped at ``MAX_STRETCH``. Used by ``sandbox.origin_exporter`` (see its docstring).
"""

from __future__ import annotations

import math

RHO_MAX = 0.97
"""Utilisation past which the queueing model is extended linearly (an overload)."""
MAX_STRETCH = 60.0
"""The most the queueing model stretches the base P95 (clients give up long before)."""


def _sakasegawa(rho: float, servers: int) -> float:
    """Mean wait in the queue over the mean service time, M/M/c (Sakasegawa 1977)."""
    return float(rho ** (math.sqrt(2 * (servers + 1)) - 1) / (servers * (1 - rho)))


def queueing_stretch(rho: float, servers: int) -> float:
    """How much longer requests take at utilisation ``rho`` on ``servers`` parallel slots.

    ``1 + Wq/S`` from Sakasegawa's approximation below ``RHO_MAX``; above it, the tangent
    at ``RHO_MAX`` (continuous, increasing), capped at ``MAX_STRETCH``.
    """
    servers = max(1, servers)
    rho = max(0.0, rho)
    if rho < RHO_MAX:
        return min(MAX_STRETCH, 1 + _sakasegawa(rho, servers))
    at_max = _sakasegawa(RHO_MAX, servers)
    step = 1e-4
    slope = (at_max - _sakasegawa(RHO_MAX - step, servers)) / step
    return min(MAX_STRETCH, 1 + at_max + slope * (rho - RHO_MAX))
