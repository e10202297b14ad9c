"""The demo's pure parts: the origin's queueing model, the scenario's bands, the timeline,
the table and the summary. A change that would stop `make demo` from showing what it
claims (a surge that no longer crosses the at-risk line, a reroute that no longer relieves)
fails here in milliseconds, without a sandbox."""

from __future__ import annotations

import io
from collections import deque
from pathlib import Path

import pytest
import yaml

from sandbox import demo_scenario as sc
from sandbox import demo_shift
from sandbox.demo_summary import render, summarize_route
from sandbox.demo_table import LiveTable, row
from sandbox.demo_timeline import (
    ActionKind,
    ActionRecord,
    DemoResult,
    RouteSample,
    Span,
    action_from_event,
)
from sandbox.origin_exporter import MAX_STRETCH, RHO_MAX, OriginExporter, queueing_stretch
from tests.support.ladder import T0, make_observation
from timeout_budget.decide import diff, ladder, timers
from timeout_budget.model.actions import EdgeTimeout, Reroute, RerouteTarget, ScaleTo
from timeout_budget.model.memory import Memory
from timeout_budget.model.spec import TimeoutBudgetSpec, parse_timeout_budget
from timeout_budget.model.world import EdgeObservation

pytestmark = pytest.mark.unit

AT_RISK, RECOVER, BUDGET = 96.0, 72.0, 120.0


def p95(route: sc.Route, pool: sc.Pool, rps: float, replicas: int) -> float:
    """What the synthetic origin serves for ``route`` on ``replicas`` pods of ``pool``."""
    exporter = OriginExporter(replicas_for=lambda _: replicas)
    exporter.set_route(
        route.name,
        p95=pool.base_p95 or route.base_p95,
        rps=rps,
        capacity_rps_per_replica=pool.capacity_rps_per_replica,
        servers_per_replica=pool.servers_per_replica,
    )
    return exporter.effective_p95(route.name)


# -- the queueing model -----------------------------------------------------------------


def test_latency_stays_near_the_base_with_headroom_and_climbs_near_saturation() -> None:
    assert queueing_stretch(0.1, 4) == pytest.approx(1.0, abs=0.01)
    values = [queueing_stretch(rho / 100, 4) for rho in range(0, 200, 5)]
    assert values == sorted(values)  # never faster under more load
    assert queueing_stretch(0.9, 4) > 2 * queueing_stretch(0.6, 4)
    # More parallel slots absorb the same utilisation better.
    assert queueing_stretch(0.8, 16) < queueing_stretch(0.8, 2)


def test_overload_continues_the_curve_and_is_capped() -> None:
    below, above = queueing_stretch(RHO_MAX - 1e-6, 6), queueing_stretch(RHO_MAX + 1e-6, 6)
    assert above == pytest.approx(below, rel=1e-3)
    assert queueing_stretch(5.0, 6) == MAX_STRETCH


def test_servers_per_replica_selects_the_queueing_model_and_linear_stays_the_default() -> None:
    replicas = {"r": 2}
    exporter = OriginExporter(replicas_for=lambda route: replicas[route])
    exporter.set_route("r", p95=10.0, rps=10, capacity_rps_per_replica=10)
    assert exporter.effective_p95("r") == 10.0  # linear: no stretch below capacity
    exporter.set_route("r", p95=10.0, rps=10, capacity_rps_per_replica=10, servers_per_replica=1)
    assert exporter.effective_p95("r") == pytest.approx(10 * queueing_stretch(0.5, 2))
    with pytest.raises(ValueError, match="servers_per_replica"):
        exporter.set_route("r", p95=1.0, servers_per_replica=0)


# -- the scenario lands where the demo says -----------------------------------------------


def test_api_surge_is_at_risk_on_two_replicas_and_healthy_on_four() -> None:
    main = sc.API.main
    assert p95(sc.API, main, sc.CALM["api"], 2) < RECOVER
    assert AT_RISK + 4 < p95(sc.API, main, sc.SURGE["api"], 2) < BUDGET - 10
    assert p95(sc.API, main, sc.SURGE["api"], 4) < RECOVER


def test_beyond_max_is_at_risk_not_breaching_at_max_and_the_reroute_relieves_it() -> None:
    main, long_running = sc.API.pools
    at_max = p95(sc.API, main, sc.BEYOND["api"], 4)
    assert AT_RISK + 5 < at_max < BUDGET - 5
    rerouted = p95(sc.API, long_running, sc.BEYOND["api"], 2)
    assert RECOVER + 5 < rerouted < AT_RISK - 5  # between the lines: held, no flapping
    assert p95(sc.API, long_running, sc.CALM["api"], 2) < RECOVER  # then recovery


def test_the_other_routes() -> None:
    export = sc.EXPORT.main
    for load in (sc.CALM, sc.SURGE, sc.BEYOND):
        assert p95(sc.EXPORT, export, load["export"], 1) < 0.8 * 360  # never at risk
        assert p95(sc.EXPORT, export, load["export"], 1) > BUDGET  # but beyond the zone's 120 s
    search = sc.SEARCH.main
    assert AT_RISK < p95(sc.SEARCH, search, sc.SURGE["search"], 1) < BUDGET
    assert p95(sc.SEARCH, search, sc.SURGE["search"], 2) < RECOVER


def test_pool_follows_the_service_selector() -> None:
    assert sc.API.pool_for({"app": "api"}).name == "main"
    assert sc.API.pool_for({"app": "api-long-running"}).name == "long-running"
    assert sc.API.pool_for(None).name == "main"


@pytest.mark.parametrize("make", [sc.default, sc.fast])
def test_scenarios(make: object) -> None:
    scenario = make()  # type: ignore[operator]
    assert scenario.seconds <= 180
    names = [p.name for p in scenario.phases]
    assert names == [p.name for p in sc.default().phases]
    assert [p.prometheus_up for p in scenario.phases].count(False) == 1
    surge = scenario.phase_start(names.index("surge"))
    assert scenario.rps_at("api", surge) == pytest.approx(sc.CALM["api"])
    ramp = scenario.phases[names.index("surge")].ramp_seconds
    mid = scenario.rps_at("api", surge + ramp / 2)
    assert mid == pytest.approx((sc.CALM["api"] + sc.SURGE["api"]) / 2)
    assert scenario.rps_at("api", surge + ramp + 0.1) == sc.SURGE["api"]
    assert scenario.phase_at(scenario.seconds + 10)[1].name == "recovery"


# -- timeline, table, summary -----------------------------------------------------------


def sample(t: float, p95_: float | None, **fields: object) -> RouteSample:
    base: dict[str, object] = {
        "t": t, "route": "api", "phase": "surge", "p95": p95_, "budget": BUDGET,
        "at_risk_line": AT_RISK, "recover_line": RECOVER, "ratio": None, "state": "Healthy",
        "replicas": 2, "spec_replicas": 2, "max_replicas": 4, "hpa_min_replicas": None,
        "serving_pool": "main", "serving_ready": 2, "rps": 10.0, "model_p95": 50.0,
        "edge_timeout": 120, "last_action": "", "prometheus_up": True,
    }  # fmt: skip
    base.update(fields)
    return RouteSample(**base)  # type: ignore[arg-type]


def test_events_become_actions() -> None:
    event = {
        "reason": "Scaled",
        "message": "scale Deployment api to 3 (replicas): ... scaling down one step 4 → 3",
        "involvedObject": {"name": "api"},
    }
    action = action_from_event(event, 12.0)
    assert (action.kind, action.replicas, action.route) == (ActionKind.SCALE_DOWN, 3, "api")
    assert action.what == "scale Deployment api to 3 (replicas)"
    undo = action_from_event({"reason": "RerouteUndone", "message": "m"}, 1.0)
    assert undo.kind is ActionKind.UNDO


def test_summary_counts_time_at_risk_and_actions() -> None:
    result = DemoResult("t", 1.0)
    result.samples = [
        sample(0, 50),
        sample(1, 100, state="AtRisk"),
        sample(2, 130, state="Breaching"),
        sample(3, None, state="NoData", prometheus_up=False),
        sample(4, 60, serving_pool="long-running", edge_timeout=121),
    ]
    result.actions = [
        action_from_event(
            {
                "reason": "Scaled",
                "message": "scale Deployment api to 4 (r): x",
                "involvedObject": {"name": "api"},
            },
            1.5,
        ),
    ]
    result.phases = [Span("surge", 0, 5)]
    result.outages = [Span("prometheus down", 2.5, 3.5)]
    result.edge_rules_seen = {"api": {121}}
    summary = summarize_route(result, "api")
    assert (summary.worst_p95, summary.worst_at) == (130, 2)
    assert (summary.seconds_at_risk, summary.seconds_breaching) == (2, 1)
    assert summary.seconds_rerouted == 1
    assert summary.counts() == "scale up x1"
    text = render(result, 120)
    assert "worst P95" in text
    assert "0 scale-down(s) or undo(s) in that time (everything held)" in text
    assert "121s (its Cache Rule)" in text


def test_table_without_a_tty_prints_on_change_or_every_few_seconds() -> None:
    out = io.StringIO()
    table = LiveTable(out, tty=False, every=5)
    table.update(0, "calm", [sample(0, 50)], True)
    table.update(1, "calm", [sample(1, 51)], True)  # nothing a person watches changed
    table.update(2, "calm", [sample(2, 99, state="AtRisk")], True)
    table.update(8, "calm", [sample(8, 99, state="AtRisk")], True)
    assert out.getvalue().count("route ") == 3
    assert "\x1b[" not in out.getvalue()
    line = row(sample(0, None, state="NoData", serving_pool="long-running", serving_ready=2))
    assert "—" in line
    assert "⇒ long-running 2" in line


def test_table_on_a_tty_redraws_in_place() -> None:
    out = io.StringIO()
    table = LiveTable(out, tty=True)
    table.update(0, "calm", [sample(0, 50)], True)
    table.log("an action")
    table.update(1, "calm", [sample(1, 51)], True)
    assert out.getvalue().count("\x1b[3F\x1b[J") == 2  # header, column names, one row


# -- the edge read timeout per at-risk episode ------------------------------------------------


def edge(t: float, what: str) -> ActionRecord:
    return ActionRecord(t, "api", ActionKind.EDGE, "EdgeTimeoutSet", f"{what}: why")


RAISE, LOWER = "set the edge read timeout of api.example.com/ to 121s", "remove the rule"


def two_episodes(*changes: ActionRecord) -> DemoResult:
    """At risk at 2-3 s and 10 s; below the recover line from 4 s (a 3 s release window, so
    the first episode ends at 7 s) and from 12 s to the end (15 s: the second ends at 15 s)."""
    readings = {2: 100.0, 3: 100.0, 10: 100.0, 11: 80.0}
    result = DemoResult("t", 1.0)
    result.samples = [
        sample(t, readings.get(t, 50.0 if t >= 4 else 60.0), release_seconds=3.0) for t in range(16)
    ]
    result.actions = list(changes)
    return result


def test_summary_counts_edge_changes_per_at_risk_episode() -> None:
    result = two_episodes(edge(1.2, RAISE), edge(7.0, LOWER), edge(9.5, RAISE), edge(15, LOWER))
    summary = summarize_route(result, "api")
    assert [(e.start, e.recovered_at, len(e.edge_changes)) for e in summary.episodes] == [
        (2, 7, 2),  # a raise dated up to two cycles before the sample that shows the risk
        (10, 15, 2),
    ]
    assert summary.counts() == "edge timeout x4 (2+2 in 2 at-risk episodes)"
    text = render(result, 120)
    assert "at risk from t=2s, recovered at t=7s: edge read timeout changed x2 (t=1s set" in text
    assert "a flap" not in text


def test_a_raise_after_recovery_belongs_to_the_next_episode() -> None:
    """The first episode recovered at 7 s; a raise at 7.5 s is for the second (its first
    at-risk sample at 10 s lags the operator's reading), not a flap of the first."""
    changes = (edge(2, RAISE), edge(6.5, LOWER), edge(7.5, RAISE), edge(15, LOWER))
    summary = summarize_route(two_episodes(*changes), "api")
    assert [len(e.edge_changes) for e in summary.episodes] == [2, 2]


def test_summary_shows_a_flap() -> None:
    """The bug of issue 17 item 6: lowered when P95 dipped under the at-risk line (11 s),
    raised again in the same episode."""
    changes = (edge(2, RAISE), edge(7, LOWER), edge(10, RAISE), edge(11, LOWER), edge(12, RAISE))
    summary = summarize_route(two_episodes(*changes), "api")
    assert [len(e.edge_changes) for e in summary.episodes] == [2, 3]
    assert summary.counts() == "edge timeout x5 (2+3 in 2 at-risk episodes)"
    assert summary.episodes[1].describe().endswith("more than one raise and one lowering: a flap")


def test_an_episode_ends_only_after_the_window_with_data_all_along() -> None:
    result = DemoResult("t", 1.0)
    readings = [100.0, 50.0, None, 50.0, 50.0, 50.0, 50.0]
    result.samples = [sample(t, p, release_seconds=3.0) for t, p in enumerate(readings)]
    (episode,) = summarize_route(result, "api").episodes
    assert (episode.start, episode.recovered_at) == (0, 6)  # not 4: no data at 2 s


API_SPEC = parse_timeout_budget(
    next(yaml.safe_load_all((Path(sc.__file__).parent / "manifests/demo/routes.yaml").read_text()))[
        "spec"
    ]
)


def play_api(scenario: sc.Scenario, ready_after: float) -> DemoResult:
    """The demo's story for the api route, decided by the ladder every second as the
    operator does: the origin model's P95 over the demo's 5 s window, new pods ready
    ``ready_after`` seconds after a scale-up, the reroute moving the load to the
    long-running pool (2 replicas), Prometheus down in its phase."""
    spec: TimeoutBudgetSpec = API_SPEC
    result = DemoResult(scenario.name, scenario.interval_seconds)
    replicas, ready, baseline = 2, 2, None
    pending: list[tuple[float, int]] = []
    rerouted: set[RerouteTarget] = set()
    route_timeout: int | None = None
    window: deque[float] = deque(maxlen=5)
    memory = Memory()
    for step in range(int(scenario.seconds)):
        t = float(step)
        ready = max([n for at, n in pending if at <= t], default=ready)
        pending = [(at, n) for at, n in pending if at > t]
        pool = sc.API.pools[1] if rerouted else sc.API.main
        window.append(p95(sc.API, pool, scenario.rps_at("api", t), 2 if rerouted else ready))
        _, phase = scenario.phase_at(t)
        reading = sum(window) / len(window) if phase.prometheus_up else None
        observation = make_observation(
            reading,
            replicas=replicas,
            ready=ready,
            baseline=baseline,
            rerouted=rerouted,
            edge=EdgeObservation(120, True, route_timeout_seconds=route_timeout),
        )
        decision = ladder.decide(spec, observation, memory, T0 + t)
        for action in diff.changes(decision.actions, observation):
            match action:
                case ScaleTo():
                    baseline = None if action.restores_baseline else (baseline or replicas)
                    replicas = action.replicas
                    pending.append((t + ready_after if replicas > ready else t, replicas))
                case Reroute():
                    (rerouted.add if action.apply else rerouted.discard)(action.target)
                case EdgeTimeout():
                    route_timeout = action.seconds
                    result.actions.append(edge(t, action.describe()))
        memory = Memory.from_status(decision.memory.to_status())
        result.samples.append(
            sample(t, reading, phase=phase.name, release_seconds=timers.release_window(spec))
        )
    return result


@pytest.mark.parametrize("make", [sc.default, sc.fast])
@pytest.mark.parametrize("ready_after", [1.0, 2.0, 4.0, 6.0, 10.0])
def test_the_demo_story_changes_the_edge_at_most_twice_per_at_risk_episode(
    make: object, ready_after: float
) -> None:
    """Every edge change belongs to an at-risk episode, and none has more than one raise and
    one lowering, however long the new pods take to show (up to 6 s seen on 2 cores)."""
    result = play_api(make(), ready_after)  # type: ignore[operator]
    summary = summarize_route(result, "api")
    assert summary.episodes, "api was never at risk"
    per_episode = [len(e.edge_changes) for e in summary.episodes]
    assert sum(per_episode) == len(result.actions) > 0
    assert max(per_episode) <= 2, [e.describe() for e in summary.episodes]
    assert result.actions[-1].what.startswith("remove")  # lowered by the end of the story


def test_the_edge_cell_shows_coverage_per_method_group() -> None:
    from sandbox.demo import edge_coverage

    assert (
        edge_coverage(
            [
                {"methods": ["GET", "HEAD"], "by": "CacheRule", "timeoutSeconds": 301},
                {"methods": ["POST"], "by": "None", "timeoutSeconds": 120},
                {"methods": ["PUT"], "by": "DnsOnly"},
            ]
        )
        == "GET rule 301s · POST NONE 120s · PUT dns-only"
    )
    assert edge_coverage([]) == ""


# -- the weighted route (reroute.httpRoute) ---------------------------------------------------


def reports_p95(rps: float, percent: int) -> float:
    """The reports route's true P95 with ``percent`` of its rule on the long-running pool
    (2 ready replicas each), as the demo computes it for the plot."""
    ready = {"reports": 2, demo_shift.long_key("reports"): 2}
    exporter = OriginExporter(replicas_for=lambda key: ready[key])
    demo_shift.set_split(exporter, sc.REPORTS, rps, percent)
    models = exporter.models()
    return demo_shift.mixture_p95([(models[k].rps, exporter.effective_p95(k)) for k in ready])


def test_each_reports_load_is_at_risk_before_its_step_and_between_the_lines_after() -> None:
    calm, surge, beyond = sc.CALM["reports"], sc.SURGE["reports"], sc.BEYOND["reports"]
    assert reports_p95(calm, 0) < RECOVER - 5
    assert AT_RISK + 5 < reports_p95(surge, 0) < BUDGET
    assert RECOVER + 5 < reports_p95(surge, 20) < AT_RISK - 5  # held at 20 %, no walk back
    assert AT_RISK + 5 < reports_p95(beyond, 20) < BUDGET  # at risk again: the next step
    assert RECOVER + 5 < reports_p95(beyond, 40) < AT_RISK - 5
    assert max(reports_p95(calm, 40), reports_p95(calm, 20)) < RECOVER - 5  # walked back


def test_the_mixture_p95_is_that_of_the_requests_both_pools_serve() -> None:
    assert demo_shift.mixture_p95([(10, 50.0)]) == pytest.approx(50.0)
    assert demo_shift.mixture_p95([(10, 50.0), (0, 500.0)]) == pytest.approx(50.0)
    mixed = demo_shift.mixture_p95([(1, 50.0), (1, 100.0)])
    assert 50 < mixed < 100
    exporter = OriginExporter()
    demo_shift.set_split(exporter, sc.REPORTS, 20, 40)
    exporter.tick(1.0)
    text = exporter.render()
    assert 'route="reports",host="reports.example.com",pool="main"' in text
    assert 'route="reports",host="reports.example.com",pool="long-running"' in text
    assert text.count('pool="long-running",le="+Inf"} 8') == 1  # 40 % of 20 requests


def test_the_steps_of_a_weighted_route_are_told_in_order() -> None:
    shares = [0, 0, 20, 20, 40, 40, 20, 0, 0]
    samples = [sample(t, 80, route="reports", long_share=p) for t, p in enumerate(shares)]
    assert [(s.t, s.percent) for s in demo_shift.steps(samples)] == [
        (2, 20), (4, 40), (6, 20), (7, 0),
    ]  # fmt: skip
    text = demo_shift.describe("reports", samples, [])
    assert text == (
        "reports: HTTPRoute weights shifted 20% at t=2s → 40% at t=4s; walked back → 20% "
        "at t=6s → 0% at t=7s; at the end the rule is the manifest's exactly, without the "
        "operator's record"
    )
    row_ = row(sample(0, 80, route="reports", long_share=40))
    assert "⇒ 40% long" in row_
