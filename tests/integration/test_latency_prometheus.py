"""Latency observation against a real Prometheus loaded with exact histories.

One Prometheus (Debian 2.42) is started for the module with blocks created by
``promtool tsdb create-blocks-from openmetrics`` from histories built here, and queried at an
explicit time. Each expected value is computed in the test from the raw bucket counts by
re-implementing Prometheus' ``rate`` and ``histogram_quantile`` (``prom_fixtures``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest

from sandbox.origin_exporter import BUCKETS, CLIENT_DEFAULT_BUCKETS
from sandbox.prometheus import HistogramSample, PrometheusServer, render_openmetrics
from tests.integration.prom_fixtures import T0, expected_quantile, latency_spec, observe
from tests.support.hostile import LABEL_VALUES
from timeout_budget.decide.ladder import decide
from timeout_budget.model.memory import Memory
from timeout_budget.model.observation import LatencyObservation, Outcome
from timeout_budget.model.spec import RouteKey, TimeoutBudgetSpec
from timeout_budget.model.world import RouteObservation, ScaleObservation
from timeout_budget.observe.promql.planning import plan_queries

pytestmark = pytest.mark.integration

METRIC = "http_request_duration_seconds"
HOSTILE_METRIC = "hostile_request_duration_seconds"
LEGACY_METRIC = "legacy_request_duration_seconds"
WINDOW = "1m"
WINDOW_SECONDS = 60.0
AT = T0 + 60
STEPS = [T0 + 15 * i for i in range(5)]  # T0 .. T0+60: the window's both ends are samples


@dataclass(frozen=True)
class Series:
    """One histogram series: its labels and history ``[(t, cumulative, total), ...]``."""

    labels: dict[str, str]
    bounds: tuple[float, ...]
    history: list[tuple[float, list[float], float]]

    def samples(self) -> Iterator[HistogramSample]:
        for t, counts, total in self.history:
            yield HistogramSample(self.labels, self.bounds, counts, total, t)

    def expected(self, q: float = 0.95) -> float:
        return expected_quantile(q, self.bounds, self.history, AT, WINDOW_SECONDS)


def steady(
    labels: dict[str, str],
    per_step: Sequence[float],
    bounds: Sequence[float] = BUCKETS,
    start: Sequence[float] | None = None,
    times: Sequence[float] = STEPS,
) -> Series:
    """Every step adds ``per_step[i]`` observations to bucket ``i`` (non-cumulative; the last
    entry is the ``+Inf`` bucket beyond the largest bound)."""
    assert len(per_step) == len(bounds) + 1
    counts = list(start) if start is not None else [0.0] * (len(bounds) + 1)
    history = []
    for t in times:
        cumulative = [sum(counts[: i + 1]) for i in range(len(bounds))]
        history.append((t, cumulative, sum(counts)))
        counts = [c + d for c, d in zip(counts, per_step, strict=True)]
    return Series(labels, tuple(bounds), history)


def one_bucket(index: int, n: float = 100.0, bounds: Sequence[float] = BUCKETS) -> list[float]:
    per = [0.0] * (len(bounds) + 1)
    per[index] = n
    return per


def _hand_15s() -> list[float]:
    """200 observations per minute: cumulative 100, 150, 180, 185, 195, 200 at le=1, 2.5, 5,
    10, 20, 30. Rank 0.95 * 200 = 190 falls in (10, 20] holding 10: 10 + 10 * 5/10 = 15."""
    per = [0.0] * (len(BUCKETS) + 1)
    for bound, n in ((1, 100), (2.5, 50), (5, 30), (10, 5), (20, 10), (30, 5)):
        per[BUCKETS.index(bound)] = n / 4  # four 15 s steps per minute
    return per


def _random_per_step(seed: int) -> list[float]:
    rng = random.Random(seed)
    return [float(rng.randint(0, 40)) for _ in range(len(BUCKETS) + 1)]


EXACT: dict[str, Series] = {
    "hand-15s": steady({"route": "hand-15s", "host": "a"}, _hand_15s()),
    # rank close to (not on: float rounding decides that side) a bucket's cumulative count
    "near-boundary": steady(
        {"route": "near-boundary", "host": "a"},
        [94.0 if b == 60 else 6.0 if b == 90 else 0.0 for b in BUCKETS] + [0.0],
    ),
    "first-bucket": steady({"route": "first-bucket", "host": "a"}, one_bucket(0)),
    "top-inf": steady({"route": "top-inf", "host": "a"}, one_bucket(len(BUCKETS))),
    "random-1": steady({"route": "random-1", "host": "a"}, _random_per_step(1)),
    "random-2": steady(
        {"route": "random-2", "host": "a"}, _random_per_step(2), start=[7.0] * (len(BUCKETS) + 1)
    ),
    # samples off the window's grid: rate() extrapolates (and stops at the counter's zero)
    "irregular": steady(
        {"route": "irregular", "host": "a"},
        _random_per_step(3),
        times=[T0 + 7 + 15 * i for i in range(4)],
    ),
    "idle": steady({"route": "idle", "host": "a"}, [0.0] * (len(BUCKETS) + 1), start=[3.0] * 29),
}
# A two-label group: (host, route) pairs; the cross product's other pairs exist as decoys.
PAIRS: dict[str, Series] = {
    "pair-h1-r1": steady({"route": "r1", "host": "h1"}, one_bucket(5)),
    "pair-h2-r2": steady({"route": "r2", "host": "h2"}, one_bucket(9)),
}
DECOY_PAIRS = [
    steady({"route": "r2", "host": "h1"}, one_bucket(20)),
    steady({"route": "r1", "host": "h2"}, one_bucket(21)),
]

HOSTILE_VALUES: list[str] = [*LABEL_VALUES, "{{window}}", ""]
# Label values a wrongly-escaped regex alternation of HOSTILE_VALUES would also select.
DECOYS = ["a", "b", "x", "ab", "anything", "quote", "line1", "Ünïcødé"]


def hostile_series() -> list[Series]:
    series = []
    for index, value in enumerate(HOSTILE_VALUES):
        labels = {"host": "h"} if value == "" else {"route": value, "host": "h"}
        series.append(steady(labels, one_bucket(index + 1)))
    for value in DECOYS:
        series.append(steady({"route": value, "host": "h"}, one_bucket(27)))
    return series


LEGACY = steady(
    {"route": "legacy", "host": "a"},
    [0.0] * 9 + [2.0, 3.0, 95.0],  # 95 % of the requests take longer than 10 s
    bounds=CLIENT_DEFAULT_BUCKETS,
)


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusServer]:
    history = render_openmetrics(
        METRIC,
        (
            s
            for group in (EXACT.values(), PAIRS.values(), DECOY_PAIRS)
            for series in group
            for s in series.samples()
        ),
    )
    hostile = render_openmetrics(HOSTILE_METRIC, (s for x in hostile_series() for s in x.samples()))
    legacy = render_openmetrics(LEGACY_METRIC, LEGACY.samples())
    with PrometheusServer() as prom:
        prom.backfill(history)
        prom.backfill(hostile)
        prom.backfill(legacy)
        prom.start()
        yield prom


def test_backfilled_p95_equals_hand_computed_interpolation(prometheus: PrometheusServer) -> None:
    routes = {RouteKey(f"ns/{name}"): latency_spec({"route": name}) for name in EXACT}
    routes.update(
        {
            RouteKey(f"ns/{name}"): latency_spec(
                {"route": s.labels["route"], "host": s.labels["host"]}
            )
            for name, s in PAIRS.items()
        }
    )
    plan = plan_queries({k: v.latency for k, v in routes.items()})
    assert len(plan.batches) == 2  # one per label set: (route) and (host, route)

    got = observe(prometheus.url, routes, at=AT)

    for name, series in {**EXACT, **PAIRS}.items():
        obs = got[RouteKey(f"ns/{name}")]
        expected = series.expected()
        if name == "idle":
            assert math.isnan(expected)
            assert obs.outcome is Outcome.NO_DATA, obs
            continue
        assert obs.outcome is Outcome.VALUE, (name, obs)
        assert obs.seconds is not None
        assert abs(obs.seconds - expected) <= 1e-9, (name, obs.seconds, expected)
        assert obs.top_bucket_seconds == 6000.0
    # The reference itself against numbers worked out by hand.
    assert abs(EXACT["hand-15s"].expected() - 15.0) <= 1e-9
    assert abs(EXACT["near-boundary"].expected() - (75 + 15 * (1 / 6))) <= 1e-9
    assert abs(EXACT["first-bucket"].expected() - 0.095) <= 1e-9
    assert EXACT["top-inf"].expected() == 6000.0  # quantile in +Inf: second-highest bound
    assert abs(PAIRS["pair-h1-r1"].expected() - (2.5 + 2.5 * 0.95)) <= 1e-9


def test_no_traffic_and_no_series_are_no_data(prometheus: PrometheusServer) -> None:
    routes = {
        RouteKey("ns/idle"): latency_spec({"route": "idle"}),
        RouteKey("ns/absent"): latency_spec({"route": "no-such-route"}),
        RouteKey("ns/other-window"): latency_spec({"route": "hand-15s"}, window="2m"),
    }
    got = observe(prometheus.url, routes, at=AT)
    idle, absent = got[RouteKey("ns/idle")], got[RouteKey("ns/absent")]
    assert idle.outcome is Outcome.NO_DATA
    assert "NaN" in idle.message
    assert idle.seconds is None
    assert idle.top_bucket_seconds == 6000.0
    assert absent.outcome is Outcome.NO_DATA
    assert "no series match" in absent.message
    assert 'route="no-such-route"' in absent.message
    assert got[RouteKey("ns/other-window")].has_value
    # Before the history starts there is nothing at all: NoData, never 0.
    before = observe(prometheus.url, routes, at=T0 - 3600)
    assert {o.outcome for o in before.values()} == {Outcome.NO_DATA}


@pytest.mark.parametrize("one_query_per_route", [False, True], ids=["batched", "per-route"])
def test_hostile_selector_values_match_literally(
    prometheus: PrometheusServer, one_query_per_route: bool
) -> None:
    routes = {
        RouteKey(f"ns/hostile-{i}"): latency_spec({"route": value}, metric=HOSTILE_METRIC)
        for i, value in enumerate(HOSTILE_VALUES)
    }
    # max_query_length=1 forces one member per query: the equality matcher path.
    limit = 1 if one_query_per_route else 100_000
    plan = plan_queries({k: v.latency for k, v in routes.items()}, max_query_length=limit)
    assert len(plan.batches) == (len(HOSTILE_VALUES) if one_query_per_route else 1)

    got = observe(prometheus.url, routes, at=AT, max_query_length=limit)

    expected = {s.labels.get("route", ""): s.expected() for s in hostile_series()}
    for i, value in enumerate(HOSTILE_VALUES):
        obs = got[RouteKey(f"ns/hostile-{i}")]
        assert obs.outcome is Outcome.VALUE, (value, obs)
        assert obs.seconds is not None
        assert abs(obs.seconds - expected[value]) <= 1e-9, (value, obs.seconds)
        assert abs(obs.seconds - (BUCKETS[i] + (BUCKETS[i + 1] - BUCKETS[i]) * 0.95)) <= 1e-9

    # The selectors themselves pick exactly the hostile series, never a decoy.
    for batch in plan.batches:
        data = prometheus.api_get(
            "query", {"query": f"count by (route) ({batch.selector})", "time": str(AT)}
        )
        assert isinstance(data, dict)
        selected = {r["metric"].get("route", "") for r in data["result"]}
        wanted = {vals[0] for vals, _ in batch.members}
        assert selected == wanted, (batch.selector, selected)
        assert all(r["value"][1] == str(len(BUCKETS) + 1) for r in data["result"])


def test_queries_prometheus_rejects_carry_its_message(prometheus: PrometheusServer) -> None:
    bucket = f'{METRIC}_bucket{{route="hand-15s"}}'
    routes = {
        RouteKey("ns/parse-error"): latency_spec(
            metric=None, query="histogram_quantile({{quantile}}, sum by (le) (rate(x[{{window}}])"
        ),
        RouteKey("ns/execution-error"): latency_spec(
            metric=None, query=f'label_replace({bucket}, "le", "same", "", "")'
        ),
        RouteKey("ns/many-series"): latency_spec(metric=None, query=bucket),
        # Python's re accepts this character class; Go's RE2 does not.
        RouteKey("ns/re2-only-error"): latency_spec(
            {"route": "hand-15s"},
            matchers=[{"label": "host", "operator": "=~", "value": "[[:nope:]]"}],
        ),
        # The CRD and the model allow it; the planner refuses it before any query.
        RouteKey("ns/bad-label"): latency_spec({"le": "10"}),
        RouteKey("ns/good"): latency_spec({"route": "hand-15s"}),
        RouteKey("ns/good-override"): latency_spec(
            metric=None,
            query=(
                "histogram_quantile({{quantile}}, sum by (le) "
                f'(rate({METRIC}_bucket{{route="hand-15s"}}[{{{{window}}}}])))'
            ),
        ),
    }
    got = observe(prometheus.url, routes, at=AT)

    parse = got[RouteKey("ns/parse-error")]
    assert parse.outcome is Outcome.REJECTED
    assert "bad_data" in parse.message
    assert "parse error" in parse.message
    execution = got[RouteKey("ns/execution-error")]
    assert execution.outcome is Outcome.REJECTED
    assert "execution" in execution.message
    assert "same labelset" in execution.message
    many = got[RouteKey("ns/many-series")]
    assert many.outcome is Outcome.REJECTED
    assert "one series" in many.message
    re2 = got[RouteKey("ns/re2-only-error")]
    assert re2.outcome is Outcome.REJECTED
    assert "[:nope:]" in re2.message
    invalid = got[RouteKey("ns/bad-label")]
    assert invalid.outcome is Outcome.INVALID
    assert "'le' is the histogram's bucket label" in invalid.message
    # One route's mistake is its own: the others still get their values.
    assert got[RouteKey("ns/good")].seconds == pytest.approx(15.0, abs=1e-9)
    assert got[RouteKey("ns/good-override")].seconds == pytest.approx(15.0, abs=1e-9)


def test_default_client_buckets_are_too_coarse_for_a_120s_budget(
    prometheus: PrometheusServer,
) -> None:
    legacy_spec = latency_spec({"route": "legacy"}, metric=LEGACY_METRIC, budget_seconds=120)
    fine_spec = latency_spec({"route": "hand-15s"}, budget_seconds=120)
    got = observe(
        prometheus.url, {RouteKey("ns/legacy"): legacy_spec, RouteKey("ns/fine"): fine_spec}, at=AT
    )
    legacy = got[RouteKey("ns/legacy")]
    # 95 % of requests exceed 10 s, yet P95 reads 10 s: the top finite bucket, saturated.
    assert legacy.outcome is Outcome.VALUE
    assert legacy.seconds == 10.0
    assert legacy.seconds == LEGACY.expected()
    assert legacy.top_bucket_seconds == 10.0

    # The ladder reads the saturated bound as such (``decide.conditions``).
    reason, message = bucket_condition(legacy_spec, legacy)
    assert reason == "BucketsTooCoarse"
    assert "le=10" in message
    assert "at least 96s" in message

    fine = got[RouteKey("ns/fine")]
    assert bucket_condition(fine_spec, fine)[0] == "Covered"
    assert fine.top_bucket_seconds == 6000.0


def bucket_condition(spec: TimeoutBudgetSpec, latency: LatencyObservation) -> tuple[str, str]:
    seen = RouteObservation(latency, ScaleObservation(spec_replicas=1, ready_replicas=1))
    decision = decide(spec, seen, Memory(), AT)
    (found,) = [c for c in decision.conditions if c.type == "BucketsCoverBudget"]
    return found.reason, found.message


def test_buildinfo_reports_the_debian_prometheus(prometheus: PrometheusServer) -> None:
    assert prometheus.version().startswith("2.")
