"""From a decision to the TimeoutBudget's status, and whether that status needs a patch.

Every evaluation ends in a status, but most evaluations change nothing a person would see.
Patching anyway would write to the API server every 15 s for every route (10,000 routes:
hundreds of writes a second) and wake every watcher. So the status is rebuilt in full, and
compared with the previous one ignoring ``lastEvaluationTime``; only a difference is patched.
For the comparison to mean something the build is stable: readings are rounded, condition
transition times are kept (``model.conditions.merge``), and a dry run's unchanged plan keeps
its time.

Fields that no longer apply are ``None`` rather than missing, so a JSON merge patch removes
them (``p95Seconds`` once data is gone). Below the top level there is no ``None``: the API
server drops a null it is sent (the merge patch removes the key; the CRD's schema prunes a
null in a list's object), so a nested ``None`` would never match the status the watch
brings back, and the route would be written again every evaluation.

A change of the reading alone (``reading_only``: the same status but for the P95, the ratio
and the messages that quote them) is written at most once per refresh period
(``refresh_due``), as the kubelet reports an unchanged node's status less often than a
changed one. A route whose noisy P95 crosses a line it is already held on (at risk at its
ladder's end, say) would otherwise be written every cycle with nothing a decision takes
from it changed; the metric ``timeout_budget_route_p95_seconds`` carries every reading.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from timeout_budget.model import conditions
from timeout_budget.model.actions import Action, EdgeTimeout
from timeout_budget.model.conditions import ConditionInput, ConditionStatus, ConditionType
from timeout_budget.model.decision import Decision
from timeout_budget.model.edge_view import RouteEdge
from timeout_budget.model.timestamps import parse_rfc3339, rfc3339
from timeout_budget.model.world import RouteObservation

READY, FALSE = ConditionType.READY, ConditionStatus.FALSE

VOLATILE = frozenset({"lastEvaluationTime"})
"""Fields that change on every evaluation and alone never justify a patch."""


def build(
    decision: Decision,
    observation: RouteObservation,
    *,
    previous: Mapping[str, Any] | None,
    now: float,
    generation: int | None,
    acted: Sequence[Action] = (),
    failures: Sequence[str] = (),
    extra_conditions: Sequence[ConditionInput] = (),
    edge_view: RouteEdge | None = None,
    kept_edge: KeptEdge | None = None,
) -> dict[str, Any]:
    """The full status after one evaluation.

    ``acted``: the actions applied this evaluation (after the diff), or in a dry run the
    planned ones; ``failures``: the changes that failed, in words (``Ready`` then says
    ``ActionFailed``, and the message names them). ``extra_conditions``: inputs from other
    writers (the edge sync's ``EdgeSynced``, ``outcome``), which replace the ladder's
    placeholders of the same type. ``edge_view``: the route's share of Cloudflare's view.
    ``kept_edge``: the edge fields as the status shows them, kept while the route's zone is
    not read yet (its conditions come in ``extra_conditions``).
    """
    before = previous or {}
    ratio = decision.ratio
    message = decision.message
    if failures:
        message = f"{message} Failed: {'; '.join(failures)}".strip()
    built = {
        "observedGeneration": generation,
        "state": decision.state.value,
        "p95Seconds": None if decision.p95_seconds is None else round(decision.p95_seconds, 2),
        "budgetSeconds": decision.budget_seconds,
        "ratio": None if ratio is None else round(ratio, 3),
        "replicas": observation.scale.ready_replicas,
        "desiredReplicas": decision.desired_replicas,
        "edgeTimeoutSeconds": _edge_timeout(observation, () if decision.dry_run else acted),
        "edgeCoverage": [c.to_status() for c in decision.edge_coverage] or None,
        "chain": [h.to_status() for h in decision.chain] or None,
        "edge": edge_status(edge_view),
        "rerouted": decision.memory.rerouted,
        **_last_action(decision, before, acted, now),
        "lastEvaluationTime": rfc3339(now, whole_seconds=True),
        "message": message,
        "plannedActions": [a.describe() for a in acted] if decision.dry_run else None,
        "memory": decision.memory.to_status(),
        "conditions": conditions.merge(
            before.get("conditions"),
            (*decision.conditions, *extra_conditions),
            now=now,
            generation=generation,
        ),
    }
    if kept_edge is not None:
        built.update(kept_edge.fields)
    return {k: _pruned(v) for k, v in built.items()}


def _pruned(value: Any) -> Any:
    """``value`` without ``None`` anywhere inside it, as the API server stores it."""
    if isinstance(value, Mapping):
        return {k: _pruned(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def edge_status(edge: RouteEdge | None) -> dict[str, Any] | None:
    """``status.edge``: Cloudflare's view of the route's last window read."""
    if edge is None:
        return None
    return {
        "windowStart": rfc3339(edge.window.start, whole_seconds=True),
        "windowEnd": rfc3339(edge.window.end, whole_seconds=True),
        "requests": edge.requests,
        "errors5xx": edge.errors_5xx,
        "errors524": edge.errors_524,
        "originP95Seconds": None if edge.p95_seconds is None else round(edge.p95_seconds, 2),
        "prometheusP95Seconds": (
            None if edge.prometheus_p95_seconds is None else round(edge.prometheus_p95_seconds, 2)
        ),
        "paths": edge.paths,
    }


EDGE_CONDITIONS = frozenset(
    {ConditionType.EDGE_SYNCED, ConditionType.EDGE_ERRORS, ConditionType.EDGE_AGREES}
)
EDGE_FIELDS = ("edge", "edgeTimeoutSeconds", "edgeCoverage")
"""What the status takes from the zone's cache (``observation.edge``, the edge view)."""
NOT_FROM_A_READ_ZONE = frozenset({"Pending", "NotManaged", "ZoneNotReady"})
"""``EdgeSynced`` reasons written without the zone read: nothing to keep."""


@dataclass(frozen=True)
class KeptEdge:
    """The edge as the route's status shows it: its edge conditions and ``EDGE_FIELDS``."""

    conditions: tuple[ConditionInput, ...]
    fields: Mapping[str, Any]


def kept_edge(previous: Mapping[str, Any] | None, generation: int | None) -> KeptEdge | None:
    """The edge the status shows (its edge conditions, ``status.edge``, the read timeout in
    force and the coverage by method), to stand while this process has not read the route's
    zone yet (``cycle.ports.EdgeSync.unread``: a restart, a shard taken over). Without it
    every route through a zone would go to ``ZoneNotReady`` on each rollout and back once
    the zone is read: two writes per route and a condition that flaps for nothing.

    ``None`` when there is nothing to keep: no ``EdgeSynced`` written from a read zone for
    this generation of the spec (a changed ``edge.zoneRef`` may name another zone)."""
    before = previous or {}
    found = {
        str(c.get("type")): c for c in before.get("conditions") or () if isinstance(c, Mapping)
    }
    synced = found.get(ConditionType.EDGE_SYNCED)
    if (
        synced is None
        or synced.get("reason") in NOT_FROM_A_READ_ZONE
        or synced.get("observedGeneration") != generation
    ):
        return None
    kept: list[ConditionInput] = []
    for kind, entry in found.items():
        if kind not in EDGE_CONDITIONS:
            continue
        try:
            state = ConditionStatus(str(entry.get("status")))
        except ValueError:
            return None  # not a status this operator wrote: build it afresh
        kept.append(
            ConditionInput(kind, state, str(entry.get("reason")), str(entry.get("message", "")))
        )
    return KeptEdge(tuple(kept), {k: before.get(k) for k in EDGE_FIELDS})


def outcome(problems: Sequence[str], failures: Sequence[str]) -> list[ConditionInput]:
    """``Ready`` False for what the apply step met: references that do not resolve (a
    Service named in the spec, say), and changes that failed (retried next cycle)."""
    found: list[ConditionInput] = []
    if problems:
        found.append(ConditionInput(READY, FALSE, "ReferenceNotFound", "; ".join(problems)))
    if failures:
        text = "; ".join(failures) + " (retried next cycle)"
        found.append(ConditionInput(READY, FALSE, "ActionFailed", text))
    return found


def held(
    previous: Mapping[str, Any],
    reason: str,
    message: str,
    *,
    now: float,
    generation: int | None,
) -> dict[str, Any]:
    """The status of a route that cannot be evaluated (its spec is invalid, its origin or
    namespace cannot be read): everything else stays as it was, ``Ready`` says why."""
    text = f"{message}; holding everything as it is"
    new = dict(previous)
    new["message"] = text
    new["observedGeneration"] = generation
    new["lastEvaluationTime"] = rfc3339(now, whole_seconds=True)
    new["conditions"] = conditions.merge(
        previous.get("conditions"),
        [ConditionInput(READY, FALSE, reason, text)],
        now=now,
        generation=generation,
    )
    return new


def changed(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether ``new`` differs from ``old`` in anything but the volatile fields."""
    return _comparable(old) != _comparable(new)


def patch(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch for ``status``: the top-level fields that differ (``None`` removes one),
    the volatile ones only alongside a real change; empty when nothing changed."""
    if not changed(old, new):
        return {}
    before = old or {}
    keys = (set(new) | set(before)) - VOLATILE
    diff = {
        k: _merge(before.get(k), new.get(k)) for k in sorted(keys) if before.get(k) != new.get(k)
    }
    diff.update({k: new[k] for k in VOLATILE if k in new})
    return diff


def reading_only(
    previous: Mapping[str, Any] | None, new: Mapping[str, Any], unmoved: Mapping[str, Any]
) -> bool:
    """Whether ``new`` differs from ``previous`` only because the reading moved.

    ``unmoved``: the status the same evaluation gives with the P95 the status shows
    (everything else alike: spec, memory, origin, edge, time). When that equals
    ``previous``, the reading is the only cause of any difference; still, ``new`` must keep
    the state, the memory and every condition's status and reason, so a reading that
    changes a decision (a line crossed that matters) is never held back."""
    if previous is None or changed(previous, unmoved):
        return False
    return words_only(previous, new)


def words_only(previous: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether ``new`` keeps ``previous``'s state, memory and every condition's status and
    reason: only the reading and the messages differ. While a route's zone is not read yet
    after a start, such a change waits (the messages then say less about the edge than the
    status does: "the zone's Cloudflare state is not known yet")."""
    return previous is not None and _skeleton(previous) == _skeleton(new)


def refresh_due(previous: Mapping[str, Any] | None, now: float, period: float) -> bool:
    """Whether a reading-only change is written now: the status was last written (its
    ``lastEvaluationTime``) ``period`` seconds ago or more, or never."""
    written = parse_rfc3339((previous or {}).get("lastEvaluationTime"))
    return written is None or now - written >= period


READINGS = frozenset({"p95Seconds", "ratio", "message"})
"""What a reading-only change may touch (besides the conditions' messages)."""


def _skeleton(status: Mapping[str, Any]) -> dict[str, Any]:
    """The status without its readings: what a decision takes from it."""
    kept = {k: v for k, v in _comparable(status).items() if k not in READINGS}
    kept["conditions"] = [
        {k: v for k, v in c.items() if k != "message"}
        for c in status.get("conditions") or ()
        if isinstance(c, Mapping)
    ]
    return kept


def _merge(old: Any, new: Any) -> Any:
    """A JSON merge patch value turning ``old`` into ``new``: an object is merged key by key
    by the API server, so a key that ``new`` no longer has must be sent as ``null`` (e.g.
    ``memory.recoveryStartedAt`` once a recovery is interrupted), or it would stay."""
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return new
    merged = {k: _merge(old.get(k), v) for k, v in new.items()}
    merged.update({k: None for k in old if k not in new})
    return merged


def _comparable(status: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (status or {}).items() if k not in VOLATILE and v is not None}


def _edge_timeout(observation: RouteObservation, applied: Sequence[Action]) -> int | None:
    edge = observation.edge
    if edge is None:
        return None
    seconds = edge.in_force_seconds
    for action in applied:
        if isinstance(action, EdgeTimeout):
            seconds = action.seconds if action.seconds is not None else edge.zone_timeout_seconds
    return seconds


def _last_action(
    decision: Decision, before: Mapping[str, Any], acted: Sequence[Action], now: float
) -> dict[str, Any]:
    keys = ("lastAction", "lastActionReason", "lastActionTime")
    if not acted:
        return {k: before.get(k) for k in keys}
    prefix = "planned: " if decision.dry_run else ""
    what = prefix + "; ".join(a.describe() for a in acted)
    why = "; ".join(dict.fromkeys(a.reason for a in acted))
    when = rfc3339(now, whole_seconds=True)
    if decision.dry_run and before.get("lastAction") == what:
        when = before.get("lastActionTime") or when  # the same plan again: not news
    return dict(zip(keys, (what, why, when), strict=True))
