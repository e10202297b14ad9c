"""Which replica evaluates which routes when the work is sharded, without any I/O.

With ``TBO_SHARDS=N`` (N > 1) the routes fall into N shards and each replica evaluates the
shards whose Lease it holds (``timeout_budget.shards``):

* **The shard key is the Cloudflare zone** (``edge.zoneRef``, in the route's namespace):
  a zone's Cache Rules and ``proxy_read_timeout`` must have exactly one writer, so all of
  a zone's routes, and the CloudflareZone itself, land in one shard. A route without a
  zone is keyed by its namespace. ``shard_of`` is a stable hash (CRC-32), the same in
  every replica and across restarts.
* **Who should hold which shard** (``assign``): every replica computes the same balanced
  plan from the same live members (each holds at most ``ceil(N / members)``), choosing by
  rendezvous hashing so a member joining or leaving moves few shards. The plan only says
  what to *want*: a shard changes hands through its Lease (``model.lease`` rules), so two
  replicas never hold one at once, whatever their views of the members.
* **Live members** are the replicas whose member Lease was seen renewed within the lease
  duration on this replica's own clock (``sight`` from ``model.lease``).
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Collection, Mapping
from typing import Any

from timeout_budget.model.lease import LeaseTiming, Sighting

SHARD_LABEL = "timeoutbudget.io/shards-of"
"""On every shard and member Lease: the loop's name, to list them in one call."""
ROLE_LABEL = "timeoutbudget.io/lease-role"
"""``shard`` or ``member``."""
ROUTE_SHARD_LABEL = "timeoutbudget.io/shard"
"""On every TimeoutBudget when sharded: its shard (``"0"`` to ``"N-1"``), so that each
replica watches only its shards' routes (a label selector, server-side)."""


def shard_of(key: str, shards: int) -> int:
    """The shard of a shard key (``zone_key`` or ``namespace_key``)."""
    return zlib.crc32(key.encode()) % shards


def zone_key(namespace: str, name: str) -> str:
    return f"zone:{namespace}/{name}"


def namespace_key(namespace: str) -> str:
    return f"namespace:{namespace}"


def route_key_for_shard(namespace: str, spec: Mapping[str, Any]) -> str:
    """A TimeoutBudget's shard key from its raw spec: its zone, else its namespace. Read
    without validation (an invalid spec is still reported by its shard's owner)."""
    edge = spec.get("edge")
    ref = edge.get("zoneRef") if isinstance(edge, Mapping) else None
    name = ref.get("name") if isinstance(ref, Mapping) else None
    if isinstance(name, str) and name:
        return zone_key(namespace, name)
    return namespace_key(namespace)


def route_shard_label(namespace: str, spec: Mapping[str, Any], shards: int) -> str:
    """The ``ROUTE_SHARD_LABEL`` value a TimeoutBudget should carry."""
    return str(shard_of(route_key_for_shard(namespace, spec), shards))


def _score(shard: int, member: str) -> int:
    digest = hashlib.blake2b(f"{shard}/{member}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def assign(shards: int, members: Collection[str]) -> dict[int, str]:
    """Every shard's planned holder: balanced (each member holds ``shards // members`` or
    one more), deterministic for a given member set, and mostly stable when it changes
    (each shard goes to its highest-scoring member that still has room)."""
    if not members:
        return {}
    ordered = sorted(set(members))
    base = shards // len(ordered)
    extra = shards - base * len(ordered)  # members that may hold one more than ``base``
    load = dict.fromkeys(ordered, 0)
    plan: dict[int, str] = {}
    for shard in range(shards):
        room = [m for m in ordered if load[m] < base or (load[m] == base and extra > 0)]
        chosen = max(room, key=lambda m: _score(shard, m))
        if load[chosen] == base:
            extra -= 1
        plan[shard] = chosen
        load[chosen] += 1
    return plan


def live(sightings: Mapping[str, Sighting], me: str, now: float, timing: LeaseTiming) -> set[str]:
    """The members whose record changed within ``timing.duration`` (on this replica's
    clock), and this replica itself."""
    alive = {m for m, seen in sightings.items() if now - seen.since < timing.duration}
    alive.add(me)
    return alive


def stale(sightings: Mapping[str, Sighting], now: float, timing: LeaseTiming) -> set[str]:
    """Members gone long enough (ten lease durations) for their Lease to be deleted."""
    return {m for m, seen in sightings.items() if now - seen.since >= 10 * timing.duration}
