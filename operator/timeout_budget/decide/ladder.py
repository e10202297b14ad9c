"""The policy ladder: one route's spec, what was observed, what was remembered and the time
in; the route's state and the actions that keep it inside its timeout budget out.

``decide`` is a purely computational function with no side effects: no I/O, no clock (the
time is an argument), no Kubernetes or Cloudflare client. Everything it needs from the past is
in ``Memory``; everything it needs from the world is in ``RouteObservation``. That is what
lets the ladder be tested by tables and replayed.

The ladder, climbed while P95 is at or above ``atRiskRatio x budget`` and released only below
``recoverRatio x budget`` (between the lines nothing moves):

1. scale the origin up, step by step within its bounds, with a cooldown (``scaling``);
2. at max replicas for ``afterEvaluations`` evaluations, or at once when P95 reaches the
   budget, reroute (``rerouting``);
3. at max replicas, raise the route's edge read timeout where the plan allows (``edge``);
4. when none of it is left, say so and give Cloudflare's advice.

Released in the opposite order after recovery has held: the reroute and edge raise first,
then one replica at a time. Without a usable reading everything holds; ``paused`` takes and
undoes nothing; ``dryRun`` decides the same but only plans.
"""

from __future__ import annotations

from timeout_budget.decide import (
    chain,
    chain_sync,
    conditions,
    coverage,
    edge,
    rerouting,
    scaling,
    timers,
)
from timeout_budget.decide.bands import Band, saturated
from timeout_budget.decide.context import Context, Step, secs
from timeout_budget.model.actions import Action, Refusal, ScaleTo
from timeout_budget.model.decision import CLOUDFLARE_ADVICE, Decision
from timeout_budget.model.memory import Memory
from timeout_budget.model.spec import TimeoutBudgetSpec
from timeout_budget.model.state import State
from timeout_budget.model.world import RouteObservation


def decide(
    spec: TimeoutBudgetSpec,
    observation: RouteObservation,
    previous: Memory,
    now: float,
    shown: float | None = None,
) -> Decision:
    """``shown``: the P95 the status shows now; a new reading close to it in the same band is
    reported as it (``bands.steady``), so noise alone changes no status."""
    ctx = Context.of(spec, observation, now, shown)
    judged = chain.of(ctx)
    remembered = previous.adopt(observation.rerouted)
    observed = timers.observe(
        remembered,
        ctx.band,
        now,
        at_cap=ctx.bounds.at_cap,
        streak_limit=spec.reroute.after_evaluations if spec.reroute else 0,
    )
    steps = () if spec.paused else _climb(ctx, observed)
    # Paused and dry run change nothing in the world, so they remember no action either.
    memory = observed if spec.paused or spec.dry_run or not steps else steps[-1].memory
    exhausted = _exhausted(ctx, memory, steps)
    state = _state(ctx, memory)
    desired = _desired_replicas(ctx, steps)
    synced, sync_refused = (
        ((), ()) if spec.paused else chain_sync.plan(spec, observation.chain, ctx.lines.budget)
    )
    return Decision(
        state=state,
        budget_seconds=ctx.lines.budget,
        p95_seconds=ctx.reading,
        actions=(*_actions(steps), *synced),
        refusals=(*(r for s in steps for r in s.refusals), *sync_refused),
        advice=CLOUDFLARE_ADVICE if exhausted or any(s.needs_advice for s in steps) else None,
        memory=memory,
        message=_message(ctx, steps, exhausted, judged, sync_refused),
        conditions=conditions.for_decision(
            ctx, state, memory, exhausted=bool(exhausted), desired_replicas=desired
        )
        + ((judged.condition,) if judged else ()),
        desired_replicas=desired,
        dry_run=spec.dry_run and not spec.paused,
        counts_down=any(s.counts_down for s in steps),
        edge_coverage=_edge_coverage(spec, observation),
        chain=judged.hops if judged else (),
    )


def _edge_coverage(
    spec: TimeoutBudgetSpec, observation: RouteObservation
) -> tuple[coverage.Coverage, ...]:
    if spec.edge is None or not spec.edge.sync or observation.edge is None:
        return ()
    return coverage.coverage(spec, observation.edge)


def _climb(ctx: Context, memory: Memory) -> tuple[Step, ...]:
    """Rerouting and the edge before scaling: a scale-down waits for their release."""
    reroute = rerouting.plan(ctx, memory)
    edge_step = edge.plan(ctx, reroute.memory)
    scale = scaling.plan(ctx, edge_step.memory)
    return reroute, edge_step, scale


def _in_ladder_order(steps: tuple[Step, ...]) -> tuple[Step, ...]:
    """Computed in release order, reported in climbing order: scale, reroute, edge."""
    return steps[-1:] + steps[:-1]


def _actions(steps: tuple[Step, ...]) -> tuple[Action, ...]:
    return tuple(a for s in _in_ladder_order(steps) for a in s.actions)


def _exhausted(ctx: Context, memory: Memory, steps: tuple[Step, ...]) -> tuple[str, ...]:
    """Why nothing more can be done, when at risk and every rung is spent; else empty.

    At risk as the state says it: a reading between the lines keeps a route that was at
    risk there (``_state``), so a P95 wobbling about the at-risk line does not flip
    ``Ready`` between NothingMoreToDo and AtRisk from one cycle to the next."""
    held = ctx.band is Band.HOLD and memory.at_risk
    if not (ctx.at_risk or held) or not steps or any(s.exhausted is None for s in steps):
        return ()
    return tuple(s.exhausted for s in _in_ladder_order(steps) if s.exhausted)


def _state(ctx: Context, memory: Memory) -> State:
    if ctx.spec.paused:
        return State.PAUSED
    if ctx.band is None:
        return State.NO_DATA
    if ctx.band is Band.BREACHING:
        return State.BREACHING
    if memory.rerouted:
        return State.REROUTED
    if ctx.band.at_risk or (ctx.band is Band.HOLD and memory.at_risk):
        return State.AT_RISK
    return State.HEALTHY


def _desired_replicas(ctx: Context, steps: tuple[Step, ...]) -> int:
    for step in steps:
        for action in step.actions:
            if isinstance(action, ScaleTo):
                return action.replicas
    return ctx.bounds.current


def _message(
    ctx: Context,
    steps: tuple[Step, ...],
    exhausted: tuple[str, ...],
    judged: chain.Chain | None,
    also_refused: tuple[Refusal, ...] = (),
) -> str:
    sentences = [_reading(ctx)]
    if judged is not None and judged.first_to_fire is not None:
        sentences.append(judged.condition.message)
    if ctx.spec.paused:
        sentences.append("paused: nothing is taken or undone")
    elif ctx.spec.dry_run:
        sentences.append("dry run: actions are planned, not applied")
    sentences.extend(n for s in _in_ladder_order(steps) for n in s.notes)
    sentences.extend(r.describe() for s in steps for r in s.refusals)
    sentences.extend(r.describe() for r in also_refused)
    if exhausted:
        sentences.append("nothing more can be done: " + "; ".join(exhausted))
    if exhausted or any(s.needs_advice for s in steps):
        sentences.append(CLOUDFLARE_ADVICE)
    return " ".join(_sentence(s) for s in sentences)


def _reading(ctx: Context) -> str:
    lines = ctx.lines
    if ctx.reading is None:
        latency = ctx.observation.latency
        detail = f" ({latency.message})" if latency.message else ""
        return f"no usable latency: {latency.outcome.value}{detail}; holding everything as it is"
    text = (
        f"P95 {secs(ctx.reading)} is {ctx.reading / lines.budget:.0%} of the "
        f"{secs(lines.budget)} budget (act at {secs(lines.at_risk)}, "
        f"release below {secs(lines.recover)})"
    )
    top = ctx.observation.latency.top_bucket_seconds
    if top is not None and saturated(ctx.reading, top):
        text += f"; it is the largest finite bucket ({top:g}s), the true value may be higher"
    return text


def _sentence(text: str) -> str:
    text = text[:1].upper() + text[1:]
    return text if text.endswith(".") else text + "."
