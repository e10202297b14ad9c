"""The demo's closing summary, computed from the recorded timeline (pure: no I/O).

Per route: the worst P95 and when, the time spent at risk (the operator's reading at or
above the at-risk line) and breaching, what the operator did, the read timeout in force at
the Cloudflare edge and the 524s the edge answered before and after the operator acted
(``demo_edge``). Then what happened while Prometheus was down, and what
deleting the TimeoutBudgets left behind.

The edge read timeout's changes are also counted per at-risk episode (``episodes``): an
episode begins at a reading at or above the at-risk line and ends once P95 has stayed below
the recover line for the route's release window, the operator's own rule for undoing a
reroute or lowering an edge raise. One raise and one lowering per episode is the rule; a
third change in one episode is a flap, and the summary says so.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sandbox import demo_edge, demo_shift
from sandbox.demo_timeline import MARKED, ActionKind, ActionRecord, DemoResult, RouteSample
from timeout_budget.decide import bands, timers
from timeout_budget.decide.bands import Band, Lines
from timeout_budget.model.memory import Memory


@dataclass(frozen=True)
class Episode:
    """One at-risk episode of a route and the edge read timeout changes made in it."""

    start: float
    """The first reading at or above the at-risk line."""
    recovered_at: float | None
    """When P95 had stayed below the recover line for the release window; ``None``: not by
    the end of the run."""
    edge_changes: tuple[ActionRecord, ...]
    """The edge changes from its start to the next episode's (a lowering the operator makes
    a cycle after the demo saw the recovery complete still belongs to it)."""

    @property
    def flapped(self) -> bool:
        return len(self.edge_changes) > 2

    def describe(self) -> str:
        end = (
            "not recovered by the end"
            if self.recovered_at is None
            else f"recovered at t={self.recovered_at:.0f}s"
        )
        text = f"at risk from t={self.start:.0f}s, {end}: edge read timeout changed "
        text += f"x{len(self.edge_changes)}"
        if self.edge_changes:
            text += f" ({'; '.join(f't={a.t:.0f}s {a.what}' for a in self.edge_changes)})"
        if self.flapped:
            text += " — more than one raise and one lowering: a flap"
        return text


EPISODE_SLACK_INTERVALS = 2
"""An Event's time is whole seconds and a sample reads the status up to a cycle after the
operator wrote it: a raise may be dated up to about two cycles before the first sample that
shows the route at risk, and still belongs to that episode."""


def at_risk_spans(samples: Sequence[RouteSample]) -> list[tuple[float, float | None]]:
    """``(start, recovered_at)`` of each at-risk episode. The readings go through the
    operator's own bands and recovery clock (``decide.timers.observe``: a sample without
    data restarts the recovery), so an episode ends where the operator's does."""
    spans: list[tuple[float, float | None]] = []
    start: float | None = None
    memory = Memory()
    for s in samples:
        band = _band(s)
        memory = timers.observe(memory, band, s.t, at_cap=False, streak_limit=0)
        if band is not None and band.at_risk and start is None:
            start = s.t
        since = memory.recovery_started_at
        if start is not None and since is not None and s.t - since >= (s.release_seconds or 0):
            spans.append((start, s.t))
            start = None
    if start is not None:
        spans.append((start, None))
    return spans


def _band(s: RouteSample) -> Band | None:
    if s.p95 is None or s.budget is None or s.at_risk_line is None or s.recover_line is None:
        return None
    return bands.classify(s.p95, Lines(round(s.budget), s.at_risk_line, s.recover_line), None)


def episodes(
    samples: Sequence[RouteSample], actions: Sequence[ActionRecord], interval: float
) -> tuple[Episode, ...]:
    spans = at_risk_spans(samples)
    slack = EPISODE_SLACK_INTERVALS * interval
    starts = [start - slack for start, _ in spans] + [float("inf")]
    edge = [a for a in actions if a.kind is ActionKind.EDGE]
    found: list[list[ActionRecord]] = [[] for _ in spans]
    for action in edge:
        i = next((i for i in range(len(spans)) if starts[i] <= action.t < starts[i + 1]), None)
        if i is None:
            continue
        end = spans[i][1]
        # A raise made after the episode recovered was made for the next one (whose first
        # at-risk sample may lag the operator's reading by more than the slack).
        if _is_raise(action) and end is not None and action.t > end and i + 1 < len(spans):
            i += 1
        found[i].append(action)
    return tuple(Episode(start, end, tuple(found[i])) for i, (start, end) in enumerate(spans))


def _is_raise(action: ActionRecord) -> bool:
    return action.what.startswith("set ")


@dataclass(frozen=True)
class RouteSummary:
    route: str
    worst_p95: float | None
    worst_at: float | None
    worst_phase: str
    budget: float | None
    at_risk_line: float | None
    recover_line: float | None
    seconds_at_risk: float
    seconds_breaching: float
    seconds_rerouted: float
    actions: tuple[ActionRecord, ...]
    edge_timeout: int | None
    edge_rule_timeouts: tuple[int, ...]
    """Every read_timeout the route's Cache Rule had (empty: it never had one)."""
    final_state: str
    final_replicas: int
    final_hpa_min: int | None = None
    episodes: tuple[Episode, ...] = ()

    def counts(self) -> str:
        counted = Counter(a.kind for a in self.actions if a.kind in MARKED)
        if not counted:
            return "none"
        return ", ".join(
            f"{kind.value} x{n}{self._per_episode(kind)}" for kind, n in counted.items()
        )

    def _per_episode(self, kind: ActionKind) -> str:
        """``edge timeout x4 (2+2 in 2 at-risk episodes)``: a flap shows as a 3 or more."""
        if kind is not ActionKind.EDGE or not self.episodes:
            return ""
        per = "+".join(str(len(e.edge_changes)) for e in self.episodes)
        plural = "s" if len(self.episodes) > 1 else ""
        return f" ({per} in {len(self.episodes)} at-risk episode{plural})"


def _dt(samples: Sequence[RouteSample], index: int, interval: float) -> float:
    if index + 1 < len(samples):
        return min(samples[index + 1].t - samples[index].t, 3 * interval)
    return interval


def summarize_route(result: DemoResult, route: str) -> RouteSummary:
    samples = result.route_samples(route)
    readings = [s for s in samples if s.p95 is not None]
    worst = max(readings, key=lambda s: s.p95 or 0.0, default=None)
    at_risk = breaching = rerouted = 0.0
    for i, s in enumerate(samples):
        dt = _dt(samples, i, result.interval_seconds)
        if s.p95 is not None and s.at_risk_line is not None and s.p95 >= s.at_risk_line:
            at_risk += dt
        if s.p95 is not None and s.budget is not None and s.p95 >= s.budget:
            breaching += dt
        if s.serving_pool != "main" or s.long_share:
            rerouted += dt
    last = samples[-1] if samples else None
    return RouteSummary(
        route=route,
        worst_p95=worst.p95 if worst else None,
        worst_at=worst.t if worst else None,
        worst_phase=worst.phase if worst else "",
        budget=last.budget if last else None,
        at_risk_line=last.at_risk_line if last else None,
        recover_line=last.recover_line if last else None,
        seconds_at_risk=at_risk,
        seconds_breaching=breaching,
        seconds_rerouted=rerouted,
        actions=tuple(result.route_actions(route)),
        edge_timeout=last.edge_timeout if last else None,
        edge_rule_timeouts=tuple(sorted(result.edge_rules_seen.get(route, set()))),
        final_state=last.state if last else "",
        final_replicas=last.replicas if last else 0,
        final_hpa_min=last.hpa_min_replicas if last else None,
        episodes=episodes(samples, result.route_actions(route), result.interval_seconds),
    )


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}s"


def _edge(summary: RouteSummary, zone_timeout: int) -> str:
    if summary.edge_timeout is None:
        return "unknown"
    rule = summary.edge_rule_timeouts
    where = "zone default" if summary.edge_timeout == zone_timeout else "its Cache Rule"
    text = f"{summary.edge_timeout}s ({where})"
    if rule and summary.edge_timeout == zone_timeout:
        text += f"; its Cache Rule had read_timeout {', '.join(map(str, rule))}s during the run"
    elif not rule:
        text += "; the operator created no Cache Rule for it"
    return text


def render(result: DemoResult, zone_timeout: int) -> str:
    lines = [
        f"Summary: scenario '{result.scenario}', {_scenario_seconds(result)} after a "
        f"{result.setup_seconds:.0f}s set-up",
        "",
        f"{'route':<7} {'worst P95':>10} {'at risk':>8} {'breaching':>9} {'rerouted':>8}  "
        f"{'edge':>5}  actions",
    ]
    summaries = [summarize_route(result, r) for r in result.routes()]
    for s in summaries:
        lines.append(
            f"{s.route:<7} {_s(s.worst_p95):>10} {_s(s.seconds_at_risk):>8} "
            f"{_s(s.seconds_breaching):>9} {_s(s.seconds_rerouted):>8}  "
            f"{_s(s.edge_timeout):>5}  {s.counts()}"
        )
    for s in summaries:
        lines += ["", *_details(s, zone_timeout)]
        samples = result.route_samples(s.route)
        if any(x.long_share is not None for x in samples):
            restored = result.shift_restored.get(s.route)
            lines.append(f"  {demo_shift.describe(s.route, samples, restored)}")
    lines += ["", *demo_edge.render(result, result.routes())]
    lines += ["", *_outages(result), *_restoration(result)]
    return "\n".join(lines)


def _scenario_seconds(result: DemoResult) -> str:
    if not result.phases:
        return "0s"
    return f"{result.phases[-1].end - result.phases[0].start:.0f}s"


def _details(s: RouteSummary, zone_timeout: int) -> list[str]:
    lines = [
        f"{s.route}: budget {_s(s.budget)} (at risk from {_s(s.at_risk_line)}, released below "
        f"{_s(s.recover_line)}); worst P95 {_s(s.worst_p95)} at t={_s(s.worst_at)} "
        f"({s.worst_phase}); at the end {s.final_state} with {s.final_replicas} ready replica(s)",
        f"  edge read timeout in force: {_edge(s, zone_timeout)}",
        *(f"  {e.describe()}" for e in s.episodes),
    ]
    if s.final_hpa_min is not None:
        lines.append(
            f"  HPA minReplicas at the end: {s.final_hpa_min} (the HPA owns the replicas and "
            "scales them down on its own metrics; the sandbox has no metrics server, so it "
            "keeps them)"
        )
    taken = [a for a in s.actions if a.kind in MARKED]
    for action in taken:
        lines.append(f"  t={action.t:5.0f}s  {action.kind.value:<12} {action.what}")
    if not taken:
        lines.append("  no action taken")
    failed = [a for a in s.actions if a.kind is ActionKind.FAILED]
    refused = {a.message: a.t for a in s.actions if a.kind is ActionKind.REFUSED}
    if failed:
        lines.append(f"  {len(failed)} failed action(s), last: {failed[-1].message}")
    for text, t in refused.items():
        when = "during set-up" if t < 0 else f"at t={t:.0f}s"
        lines.append(f"  refused {when}: {text}")
    return lines


def _outages(result: DemoResult) -> list[str]:
    lines: list[str] = []
    for outage in result.outages:
        held = [
            a
            for a in result.actions
            if outage.contains(a.t) and a.kind in (ActionKind.SCALE_DOWN, ActionKind.UNDO)
        ]
        states = sorted(
            {s.state for s in result.samples if outage.contains(s.t) and s.t > outage.start + 2}
        )
        lines.append(
            f"Prometheus down from t={outage.start:.0f}s to t={outage.end:.0f}s "
            f"({outage.seconds:.0f}s): states seen {', '.join(states) or '—'}; "
            f"{len(held)} scale-down(s) or undo(s) in that time"
            + (" (everything held)" if not held else "")
        )
    return lines


def _restoration(result: DemoResult) -> list[str]:
    r = result.restoration
    if r is None:
        return []
    if r.ok:
        return [
            "After deleting the TimeoutBudgets: everything the operator changed is restored "
            f"(Service api selector {dict(r.service_selectors.get('api', {}))}, HPA search "
            f"minReplicas {r.hpa_min_replicas.get('search')}, no operator Cache Rule left, "
            "no operator annotation left)."
        ]
    return ["After deleting the TimeoutBudgets, NOT restored:", *(f"  - {p}" for p in r.problems)]
