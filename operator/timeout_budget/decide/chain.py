"""The timeout chain's verdicts: which hop fires first, and what a visitor then gets.

The edge (the route's Cache Rule, else the zone's ``proxy_read_timeout``; without a zone,
the budget) is the outermost hop; the inner hops are what the cluster tells (the route's
Ingress, ``observe.chain``) and what the spec declares (the app server,
``chain.appServer``), outermost first. Every inner hop
must allow at least the route's budget, or requests the budget allows are cut short:

* the shortest inner hop below the budget **fires first** (``ChainConsistent`` False, its
  message names it, what a visitor gets and what to raise); others below the budget are
  **short**;
* a hop that tries a timed-out request again (ingress-nginx: 3 tries) and whose tries run
  past the edge's timeout makes the origin do the work again after the visitor already got
  a 524: **retries past the edge** (a warning in the message, the condition stays True);
* a hop of unknown timeout is **unknown**, never guessed.

The edge rung reads ``first_to_fire``: raising the edge above a hop that fires first does
not help, and the status says so. Pure: the hops in, the judged hops and the condition out.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from timeout_budget.decide.context import Context, secs
from timeout_budget.model.chain import Hop, Verdict
from timeout_budget.model.conditions import ConditionInput, ConditionStatus
from timeout_budget.model.spec import TimeoutBudgetSpec
from timeout_budget.model.world import EdgeObservation

CHAIN_CONSISTENT = "ChainConsistent"


@dataclass(frozen=True, slots=True)
class Chain:
    hops: tuple[Hop, ...]
    """The edge first, then the inner hops towards the app, each judged."""
    condition: ConditionInput

    @property
    def first_to_fire(self) -> Hop | None:
        return next((h for h in self.hops if h.verdict is Verdict.FIRES_FIRST), None)


def of(ctx: Context) -> Chain | None:
    """The route's chain, judged; ``None`` unless the spec declares one (``spec.chain``)."""
    spec = ctx.spec
    if spec.chain is None:
        return None
    budget = ctx.lines.budget
    inner = (*tunnel_hops(ctx.observation.edge), *ctx.observation.chain, *declared_hops(spec))
    return judge(edge_hop(spec, ctx.observation.edge, budget), inner, budget)


def edge_hop(spec: TimeoutBudgetSpec, edge: EdgeObservation | None, budget: int) -> Hop:
    if edge is None:
        return Hop("cloudflare", "the route's budget", budget, "idle", "budget", answers="524")
    zone = spec.edge.zone_ref.name if spec.edge else "?"
    own = edge.route_timeout_seconds is not None and not edge.route_rule_overridden
    source = "cacheRule" if own else "zone"
    where = f"CloudflareZone {zone}" + (" (the route's Cache Rule)" if own else "")
    return Hop("cloudflare", where, edge.in_force_seconds, "idle", source, answers="524")


def tunnel_hops(edge: EdgeObservation | None) -> tuple[Hop, ...]:
    """A Cloudflare Tunnel behind the edge, when the route's host is a CNAME to one:
    cloudflared has no read timeout (only connect, TLS and idle-pool timeouts), so it never
    fires first; shown so the chain is whole."""
    if edge is None or not edge.tunnel:
        return ()
    where = f"Cloudflare Tunnel {edge.tunnel}"
    return (Hop("tunnel", where, math.inf, "idle", "none (cloudflared has no read timeout)"),)


def declared_hops(spec: TimeoutBudgetSpec) -> tuple[Hop, ...]:
    """The hops the spec declares (``chain.appServer``)."""
    chain = spec.chain
    if chain is None or chain.app_server is None:
        return ()
    app = chain.app_server
    return (
        Hop(
            "app",
            f"{app.name}, spec.chain.appServer",
            app.request_timeout_seconds,
            "worker",
            "spec",
            answers="502 from the hop in front (the request is cut)",
            keep_alive_seconds=app.keep_alive_seconds,
        ),
    )


def judge(edge: Hop, inner: tuple[Hop, ...], budget: int) -> Chain:
    """Each hop's verdict, and ``ChainConsistent``."""
    known = [h for h in inner if h.timeout_seconds is not None]
    short = [h for h in known if _fires_at(h) < budget]
    first = min(short, key=_fires_at, default=None)
    judged: list[Hop] = [edge.judged(Verdict.OK)]
    past_edge: list[Hop] = []
    for hop in inner:
        if hop.timeout_seconds is None:
            judged.append(hop.judged(Verdict.UNKNOWN))
        elif hop is first:
            judged.append(hop.judged(Verdict.FIRES_FIRST))
        elif hop in short:
            judged.append(hop.judged(Verdict.SHORT))
        elif _retries_past(hop, edge):
            judged.append(hop.judged(Verdict.RETRIES_PAST_EDGE))
            past_edge.append(hop)
        else:
            judged.append(hop.judged(Verdict.OK))
    races = _keep_alive_races(inner)
    return Chain(tuple(judged), _condition(edge, first, past_edge, inner, budget, races))


def _keep_alive_races(inner: tuple[Hop, ...]) -> list[str]:
    """Each server behind a proxy must keep idle connections longer than the proxy's pool
    in front of it (a 502 race otherwise): said as a warning, for known values only."""
    races: list[str] = []
    for front, back in itertools.pairwise(inner):
        pool, server = front.keep_alive_seconds, back.keep_alive_seconds
        if pool is not None and server is not None and server <= pool:
            races.append(
                f"{back.hop} closes idle connections after {secs(server)}, while {front.hop} "
                f"keeps them {secs(pool)}: it can reuse one being closed (502s); keep the "
                f"server's keep-alive above {secs(pool)}"
            )
    return races


def _fires_at(hop: Hop) -> float:
    """When a visitor hears from the hop: its timeout, on every try."""
    assert hop.timeout_seconds is not None
    return hop.timeout_seconds * hop.tries


def _retries_past(hop: Hop, edge: Hop) -> bool:
    if hop.tries <= 1 or hop.timeout_seconds is None or edge.timeout_seconds is None:
        return False
    return hop.timeout_seconds < edge.timeout_seconds < _fires_at(hop)


def _condition(
    edge: Hop,
    first: Hop | None,
    past_edge: list[Hop],
    inner: tuple[Hop, ...],
    budget: int,
    races: list[str],
) -> ConditionInput:
    warnings = "".join(f"; {race}" for race in races) + "".join(
        f"; {h.hop} ({h.object}) tries a timed-out request {h.tries} times "
        f"({secs(h.timeout_seconds or 0)} each), past Cloudflare's "
        f"{secs(edge.timeout_seconds or 0)}: the origin does the work again after the "
        "visitor got a 524"
        for h in past_edge
    )
    if first is not None:
        at = secs(_fires_at(first))
        edge_text = secs(edge.timeout_seconds) if edge.timeout_seconds is not None else "?"
        return ConditionInput(
            CHAIN_CONSISTENT,
            ConditionStatus.FALSE,
            "InnerHopFiresFirst",
            f"{first.hop} ({first.object}) fires first: a visitor gets {first.answers} after "
            f"{at}, before Cloudflare's {edge_text} and the {secs(budget)} budget: raise its "
            f"timeout to at least {secs(budget + 1)}{warnings}",
        )
    if not inner or all(h.timeout_seconds is None for h in inner):
        return ConditionInput(
            CHAIN_CONSISTENT,
            ConditionStatus.UNKNOWN,
            "HopsUnknown",
            "no inner hop's timeout is known: declare spec.chain.appServer",
        )
    return ConditionInput(
        CHAIN_CONSISTENT,
        ConditionStatus.TRUE,
        "Consistent",
        f"every known hop allows at least the {secs(budget)} budget{warnings}",
    )
