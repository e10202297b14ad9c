"""`make demo`: the operator keeping four routes inside their timeout budgets, live.

Starts the local sandbox (a real control plane with KWOK nodes, Prometheus, the Cloudflare
API emulator, a synthetic origin whose latency follows the load and the ready replicas),
applies a CloudflareZone and four TimeoutBudgets, runs the operator, and plays a load
profile: calm, a surge (scale-up), a bigger one (to max replicas), one beyond max
(reroute), Prometheus going down (everything held), and recovery (undo, scale-down). One
route (reports) is rerouted by the weights of its HTTPRoute, step by step.
A live table follows every route each cycle; at the end a summary per route and a PNG
plot per route. ``--keep`` leaves the sandbox running; otherwise everything is torn down,
Ctrl-C included.

``run()`` returns a ``DemoResult`` (the timeline of samples and actions) for tests.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import pydantic

from sandbox import demo_scenario as sc
from sandbox.demo_plot import plot_all
from sandbox.demo_shift import rules_restored
from sandbox.demo_summary import render
from sandbox.demo_table import LiveTable
from sandbox.demo_timeline import (
    DemoResult,
    EdgeCount,
    RouteSample,
    Span,
    action_from_event,
)
from sandbox.demo_world import World, announce
from timeout_budget.decide import timers
from timeout_budget.model.spec import parse_timeout_budget

REPO = Path(__file__).resolve().parents[1]
DEFAULT_WORKDIR = REPO / ".sandbox" / "demo"
DEFAULT_OUT = REPO / "out" / "demo"


def _event_time(event: dict[str, Any], wall0: float) -> float:
    stamp = event.get("firstTimestamp") or event.get("eventTime") or event.get("lastTimestamp")
    if not stamp:
        return time.time() - wall0
    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp() - wall0


def sample(world: World, route: sc.Route, t: float, phase: str, prom_up: bool) -> RouteSample:
    view = world.view
    status, spec = view.status(route.name), view.spec(route.name)
    budget_spec = spec.get("budget") or {}
    budget = status.get("budgetSeconds")
    pool = world.serving(route)
    p95 = status.get("p95Seconds")
    return RouteSample(
        t=t,
        route=route.name,
        phase=phase,
        p95=None if p95 is None else float(p95),
        budget=None if budget is None else float(budget),
        at_risk_line=None if budget is None else budget * budget_spec.get("atRiskRatio", 0.8),
        recover_line=None if budget is None else budget * budget_spec.get("recoverRatio", 0.6),
        ratio=status.get("ratio"),
        state=str(status.get("state", "—")),
        replicas=view.ready(route.main.labels),
        spec_replicas=view.spec_replicas(route.main.deployment),
        max_replicas=int((spec.get("origin") or {}).get("maxReplicas", 0)),
        hpa_min_replicas=view.hpa_min(route.hpa),
        serving_pool=pool.name,
        serving_ready=view.ready(pool.labels),
        rps=world.scenario.rps_at(route.name, max(0.0, t)),
        model_p95=world.model_p95(route.name),
        edge_timeout=world.edge_timeout(route.name),
        last_action=str(status.get("lastAction") or ""),
        prometheus_up=prom_up,
        release_seconds=_release_seconds(spec),
        edge_coverage=edge_coverage(status.get("edgeCoverage") or ()),
        chain=chain_cell(status.get("chain") or ()),
        long_share=world.long_share(route),
    )


def chain_cell(hops: Sequence[Mapping[str, Any]]) -> str:
    """``status.chain``'s inner hops in a table cell: ``ingress-nginx 60s FiresFirst``."""
    cells = []
    for hop in hops[1:]:  # the first is Cloudflare, shown in the edge column
        timeout = hop.get("timeoutSeconds")
        shown = "?" if timeout is None else f"{timeout}s"
        cells.append(f"{hop.get('hop')} {shown} {hop.get('verdict')}")
    return " · ".join(cells)


_BY = {"CacheRule": "rule", "ZoneTimeout": "zone", "DnsOnly": "dns-only", "None": "NONE"}


def edge_coverage(entries: Sequence[Mapping[str, Any]]) -> str:
    """``status.edgeCoverage`` in a table cell: ``GET rule 301s · POST NONE 120s``."""
    cells = []
    for entry in entries:
        methods = "/".join(m for m in entry.get("methods", ()) if m != "HEAD") or "HEAD"
        by = _BY.get(str(entry.get("by")), str(entry.get("by")))
        seconds = entry.get("timeoutSeconds")
        cells.append(f"{methods} {by}" + ("" if seconds is None else f" {seconds}s"))
    return " · ".join(cells)


def _release_seconds(spec: Mapping[str, Any]) -> float | None:
    """The operator's own rule, read from the spec it reads; ``None`` before the watch has
    the TimeoutBudget (or for a spec the operator would refuse too)."""
    try:
        return timers.release_window(parse_timeout_budget(dict(spec)))
    except pydantic.ValidationError:
        return None


class Player:
    """Plays a scenario on a started world, recording into ``result``."""

    def __init__(self, world: World, result: DemoResult, table: LiveTable) -> None:
        self.world, self.result, self.table = world, result, table
        self.scenario = world.scenario
        self.prom_up = True
        self.start = time.monotonic()
        self.wall0 = time.time()
        self._outage_start = 0.0

    def now(self) -> float:
        return time.monotonic() - self.start

    def play(self) -> None:
        self.start, self.wall0 = time.monotonic(), time.time()
        self.result.wall0 = self.wall0
        current = -1
        phase_start = 0.0
        next_tick = 0.0
        while (t := self.now()) < self.scenario.seconds:
            index, phase = self.scenario.phase_at(t)
            if index != current:
                if current >= 0:
                    self._close_phase(current, phase_start, t)
                current, phase_start = index, t
                self.table.log(f"\n▶ t={t:4.0f}s  {phase.name.upper()}: {phase.caption}")
                if phase.prometheus_up != self.prom_up:
                    self._switch_prometheus(phase.prometheus_up)
            self.world.apply_load(t)
            if t >= next_tick:
                self.tick(t, phase.name)
                next_tick = max(next_tick + self.scenario.interval_seconds, t)
            time.sleep(0.25)
        end = self.now()
        self._close_phase(current, phase_start, end)
        self.tick(end, self.scenario.phases[-1].name)

    def _close_phase(self, index: int, start: float, end: float) -> None:
        self.result.phases.append(Span(self.scenario.phases[index].name, start, end))

    def _switch_prometheus(self, up: bool) -> None:
        if not up:
            begun = self.now()
            self.world.prometheus_down()
            self.prom_up = False
            self._outage_start = begun
            self.table.log(f"  t={begun:4.0f}s  Prometheus stopped")
        else:
            self.world.prometheus_up()
            self.prom_up = True
            end = self.now()
            self.result.outages.append(Span("prometheus down", self._outage_start, end))
            self.table.log(f"  t={end:4.0f}s  Prometheus back (same data, same port)")

    def tick(self, t: float, phase: str) -> None:
        for event in self.world.watch.take_events() if self.world.watch else []:
            action = action_from_event(event, _event_time(event, self.wall0))
            self.result.actions.append(action)
            self.table.log(f"  t={action.t:4.0f}s  {action.route:<7}{action.message}"[:200])
        samples = [sample(self.world, r, t, phase, self.prom_up) for r in self.scenario.routes]
        self.result.samples.extend(samples)
        for route in self.scenario.routes:
            rule = self.world.edge_rule(route.name)
            if rule is not None:
                self.result.edge_rules[route.name] = rule
                seconds = (rule.get("action_parameters") or {}).get("read_timeout")
                if seconds is not None:
                    self.result.edge_rules_seen.setdefault(route.name, set()).add(int(seconds))
        self.table.update(t, phase, samples, self.prom_up)


def run(
    scenario: sc.Scenario,
    *,
    keep: bool = False,
    workdir: Path = DEFAULT_WORKDIR,
    out_dir: Path = DEFAULT_OUT,
    stream: TextIO | None = None,
    tty: bool | None = None,
) -> DemoResult:
    """Play ``scenario`` on a fresh sandbox and return what was recorded."""
    out = stream or sys.stdout
    result = DemoResult(scenario.name, scenario.interval_seconds, workdir=workdir)
    world: World | None = None
    try:
        t0 = time.monotonic()
        announce(f"demo '{scenario.name}': {scenario.seconds:.0f}s of scenario after set-up")
        world = World.start(workdir, scenario, say=announce)
        assert world.cp is not None
        result.setup_seconds = time.monotonic() - t0
        result.kubeconfig = world.cp.kubeconfig
        table = LiveTable(out, tty=tty)
        Player(world, result, table).play()
        table.close()
        _weights_at_end(world, result)
        _edge_at_end(world, result, scenario)
        if not keep:
            announce(
                "deleting the TimeoutBudgets: the operator's finalizer restores what it changed"
            )
            result.restoration = world.delete_budgets()
        result.summary_text = render(result, sc.ZONE_PROXY_READ_TIMEOUT)
        print("\n" + result.summary_text, file=out, flush=True)
        titles = {r.name: f"{r.name}: {r.host}{r.path} — {r.about}" for r in scenario.routes}
        result.plots = plot_all(result, out_dir, titles)
        print("\nPlots:", *(f"  {p}" for p in result.plots.values()), sep="\n", file=out)
        if keep:
            _keep(world, out)
    except KeyboardInterrupt:
        result.interrupted = True
        announce("interrupted")
    finally:
        if world is not None:
            with _no_interrupts():
                announce("tearing down")
                world.stop()
                announce("sandbox stopped; no process left behind")
    return result


def _weights_at_end(world: World, result: DemoResult) -> None:
    """The weighted routes' HTTPRoutes at the end of the scenario: walked back exactly?"""
    view = world.watch.refresh() if world.watch is not None else world.view
    for name, rules in world.httproute_rules().items():
        found = view.httproutes.get(name)
        result.httproutes_at_end[name] = dict(found or {})
        result.shift_restored[name] = rules_restored(found, rules)


def _edge_at_end(world: World, result: DemoResult, scenario: sc.Scenario) -> None:
    """What the edge answered up to the end of the scenario (before the TimeoutBudgets
    are deleted and their Cache Rules with them), and the zone's view of its paths."""
    end = result.wall0 + (result.phases[-1].end if result.phases else 0.0)
    result.edge_counts = [
        EdgeCount(c["start"] - result.wall0, c["host"], c["path"], c["method"], c["status"],
                  c["count"])
        for c in world.edge_counts()
        if c["start"] < end
    ]  # fmt: skip
    result.edge_routes = {r.name: (r.host, r.path) for r in scenario.routes}
    result.load_steps = scenario.load_steps()
    result.edge_report_errors = world.origin.edge_errors if world.origin else 0
    view = world.zone_status().get("edgeView") or {}
    found = view.get("unbudgetedPaths")
    result.unbudgeted_paths = list(found) if isinstance(found, list) else None


def _keep(world: World, out: TextIO) -> None:
    assert world.cp is not None
    assert world.emulator is not None
    assert world.prometheus is not None
    kubectl = world.cp.binaries.kubectl
    print(
        "\nThe sandbox is kept running (the operator too). Explore it with:\n"
        f"  export KUBECONFIG={world.cp.kubeconfig}\n"
        f"  {kubectl} get tb -n {sc.NAMESPACE}\n"
        f"  {kubectl} describe tb api -n {sc.NAMESPACE}\n"
        f"  curl -s {world.emulator.admin_url}/state     # the Cloudflare emulator's zone\n"
        f"  curl -s '{world.emulator.admin_url}/edge-requests/summary?windowSeconds=10'"
        "     # the edge's answers (524s)\n"
        f"  Prometheus: {world.prometheus.url}   operator log: "
        f"{world.operator.log if world.operator else '-'}\n"
        "Press Ctrl-C to tear down.",
        file=out,
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):  # the way to end --keep: not a failure
        while True:
            time.sleep(3600)


@contextlib.contextmanager
def _no_interrupts() -> Iterator[None]:
    """Let teardown finish even if Ctrl-C is pressed again (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make demo", description=(__doc__ or "").splitlines()[0].strip("`: ")
    )
    parser.add_argument("--keep", action="store_true", help="leave the sandbox running at the end")
    parser.add_argument("--fast", action="store_true", help="the shortest scenario (for tests)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the plots go")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="sandbox state")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    scenario = sc.fast() if args.fast else sc.default()
    result = run(scenario, keep=args.keep, workdir=args.workdir, out_dir=args.out)
    return 130 if result.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
