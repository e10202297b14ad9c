"""What each of a route's conditions says after an evaluation.

The conditions answer the questions a platform engineer asks first, each in one place:
is the route inside its budget (``Ready``), can the operator see its latency
(``MetricsAvailable``), can it see far enough (``BucketsCoverBudget``), has it added capacity
(``Scaled``), is the route rerouted (``Rerouted``). ``EdgeSynced`` belongs to the edge sync;
the ladder only gives a placeholder that the sync's own input replaces. Transition times are
``model.conditions.merge``'s business.
"""

from __future__ import annotations

from timeout_budget.decide.bands import Band, saturated
from timeout_budget.decide.context import Context, secs
from timeout_budget.model.conditions import ConditionInput, ConditionType
from timeout_budget.model.conditions import ConditionStatus as S
from timeout_budget.model.memory import Memory
from timeout_budget.model.observation import LatencyObservation, Outcome
from timeout_budget.model.state import State

BUCKETS_TOO_COARSE = "BucketsTooCoarse"
"""The reason for buckets that stop below the at-risk line (``buckets_cover_budget``)."""


def for_decision(
    ctx: Context,
    state: State,
    memory: Memory,
    *,
    exhausted: bool,
    desired_replicas: int,
) -> tuple[ConditionInput, ...]:
    return (
        ready(ctx, state, exhausted=exhausted),
        metrics_available(ctx.observation.latency),
        buckets_cover_budget(ctx),
        scaled(ctx, desired_replicas),
        rerouted(ctx, memory),
        edge_synced_placeholder(ctx),
    )


def ready(ctx: Context, state: State, *, exhausted: bool) -> ConditionInput:
    t = ConditionType.READY
    if ctx.band is None:
        latency = ctx.observation.latency
        return ConditionInput(t, S.UNKNOWN, latency.outcome.value, _no_data(latency))
    within = f"{ctx.describe_reading()} against a {secs(ctx.lines.budget)} budget"
    if ctx.band is Band.BREACHING:
        return ConditionInput(t, S.FALSE, "Breaching", f"{within}: over budget")
    if exhausted:
        return ConditionInput(t, S.FALSE, "NothingMoreToDo", f"{within}: at risk, ladder exhausted")
    top = ctx.observation.latency.top_bucket_seconds
    if not ctx.at_risk and ctx.reading is not None and saturated(ctx.reading, top):
        return ConditionInput(
            t, S.UNKNOWN, BUCKETS_TOO_COARSE, f"{within}: the true P95 may be above {top:g}s"
        )
    reason = {State.AT_RISK: "AtRisk", State.REROUTED: "Rerouted"}.get(state, "WithinBudget")
    return ConditionInput(t, S.TRUE, reason, within)


def metrics_available(latency: LatencyObservation) -> ConditionInput:
    t = ConditionType.METRICS_AVAILABLE
    if latency.outcome is Outcome.VALUE and latency.has_value:
        return ConditionInput(t, S.TRUE, "Value", "latency read from Prometheus")
    reason = latency.outcome.value if latency.outcome is not Outcome.VALUE else "NoData"
    return ConditionInput(t, S.FALSE, reason, _no_data(latency))


def buckets_cover_budget(ctx: Context) -> ConditionInput:
    t = ConditionType.BUCKETS_COVER_BUDGET
    top = ctx.observation.latency.top_bucket_seconds
    lines = ctx.lines
    if top is None:
        return ConditionInput(
            t, S.UNKNOWN, "BucketsUnknown", "bucket bounds unknown (no series yet, or a query)"
        )
    le = f"the histogram's largest finite bucket is le={top:g}"
    if top < lines.at_risk:
        return ConditionInput(
            t,
            S.FALSE,
            BUCKETS_TOO_COARSE,
            f"{le}, below the at-risk line ({secs(lines.at_risk)}): any latency above it reads "
            f"as {top:g}s and is not trusted to scale down. Add buckets up to at least "
            f"{secs(lines.at_risk)}, ideally past the {secs(lines.budget)} budget.",
        )
    if top < lines.budget:
        return ConditionInput(
            t,
            S.TRUE,
            "CoversAtRiskLine",
            f"{le}: it reaches the at-risk line ({secs(lines.at_risk)}) but not the "
            f"{secs(lines.budget)} budget, so a breach reads as {top:g}s (at risk)",
        )
    return ConditionInput(t, S.TRUE, "Covered", f"{le}, reaching the {secs(lines.budget)} budget")


def scaled(ctx: Context, desired_replicas: int) -> ConditionInput:
    t = ConditionType.SCALED
    b = ctx.bounds
    baseline = b.floor if b.floor is not None else b.current
    knob = "HPA minReplicas" if b.via_hpa else "replicas"
    if desired_replicas <= baseline:
        return ConditionInput(t, S.FALSE, "NotScaled", f"the operator holds no extra {knob}")
    reason = "AtMaxReplicas" if desired_replicas >= b.cap else "ScaledUp"
    return ConditionInput(
        t, S.TRUE, reason, f"{knob} {desired_replicas}, {baseline} before the operator scaled"
    )


def rerouted(ctx: Context, memory: Memory) -> ConditionInput:
    t = ConditionType.REROUTED
    if memory.rerouted:
        names = ", ".join(target.describe() for target in memory.rerouted_to)
        return ConditionInput(t, S.TRUE, "Rerouted", f"rerouted: {names}")
    if ctx.spec.reroute is None:
        return ConditionInput(t, S.FALSE, "NotConfigured", "no spec.reroute")
    return ConditionInput(t, S.FALSE, "NotRerouted", "the route takes its usual path")


def edge_synced_placeholder(ctx: Context) -> ConditionInput:
    t = ConditionType.EDGE_SYNCED
    edge = ctx.spec.edge
    if edge is None or not edge.sync:
        why = "no edge.zoneRef" if edge is None else "edge.sync is off"
        return ConditionInput(t, S.TRUE, "NotManaged", f"{why}: nothing to sync")
    return ConditionInput(t, S.UNKNOWN, "Pending", "the edge sync has not reported yet")


def _no_data(latency: LatencyObservation) -> str:
    what = {
        Outcome.NO_DATA: "no latency data (no requests in the window)",
        Outcome.UNAVAILABLE: "Prometheus is unavailable",
        Outcome.REJECTED: "Prometheus rejected the query",
        Outcome.INVALID: "the latency selector is invalid",
        Outcome.PARTIAL: "the metrics backend's answer may miss data",
    }.get(latency.outcome, "no usable latency value")
    detail = f": {latency.message}" if latency.message else ""
    return f"{what}{detail}; everything is held as it is"
