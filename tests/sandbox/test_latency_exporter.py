"""The synthetic origin's latency model, without a server: what a scrape would see."""

from __future__ import annotations

import re

import pytest

from sandbox.origin_exporter import BUCKETS, CLIENT_DEFAULT_BUCKETS, OriginExporter, RouteModel

pytestmark = pytest.mark.unit


def scraped(exporter: OriginExporter, route: str) -> list[tuple[float, float]]:
    """``(le, cumulative)`` pairs of one route from the exposition text."""
    pairs = []
    for line in exporter.render().splitlines():
        m = re.match(r'\w+_bucket\{route="(.*?)",host=".*",le="([^"]+)"\} (\d+)$', line)
        if m and m.group(1) == route:
            pairs.append((float(m.group(2)), float(m.group(3))))
    return pairs


def p95(pairs: list[tuple[float, float]]) -> float:
    """Prometheus' interpolation on one scrape (enough for a model check)."""
    total = pairs[-1][1]
    rank = 0.95 * total
    lower, below = 0.0, 0.0
    for bound, cumulative in pairs:
        if cumulative >= rank:
            return lower + (bound - lower) * (rank - below) / (cumulative - below)
        lower, below = bound, cumulative
    raise AssertionError("unreachable")


@pytest.mark.parametrize("target", [0.3, 2.0, 50.0, 100.0, 300.0, 2000.0])
def test_generated_p95_lands_in_the_targets_bucket(target: float) -> None:
    exporter = OriginExporter()
    exporter.set_route("r", p95=target, rps=100)
    for _ in range(20):
        exporter.tick(0.5)  # 1,000 requests
    pairs = scraped(exporter, "r")
    assert pairs[-1] == (float("inf"), 1000.0)
    upper = next(b for b in BUCKETS if b >= target)
    lower = max((b for b in BUCKETS if b < target), default=0.0)
    assert lower <= p95(pairs) <= upper


def test_fractional_rates_carry_over() -> None:
    exporter = OriginExporter()
    exporter.set_route("slow", p95=1.0, rps=0.3)
    for _ in range(10):
        exporter.tick(1.0)
    assert scraped(exporter, "slow")[-1][1] == 3.0


def test_hostile_route_names_are_escaped_in_the_exposition() -> None:
    exporter = OriginExporter()
    exporter.set_route('a"b\\c\nd', p95=1.0, rps=10, host="h")
    exporter.tick(1.0)
    text = exporter.render()
    assert 'route="a\\"b\\\\c\\nd"' in text
    # one line per bucket, +Inf, _sum and _count: the newline did not break a line
    assert sum("route=" in line for line in text.splitlines()) == len(BUCKETS) + 3


def test_per_route_buckets_and_removal() -> None:
    exporter = OriginExporter()
    exporter.set_route("legacy", p95=30.0, rps=10, buckets=CLIENT_DEFAULT_BUCKETS)
    exporter.set_route("modern", p95=30.0, rps=10)
    exporter.tick(1.0)
    assert [b for b, _ in scraped(exporter, "legacy")][-2] == 10.0
    assert [b for b, _ in scraped(exporter, "modern")][-2] == 6000.0
    exporter.remove_route("legacy")
    assert scraped(exporter, "legacy") == []


def test_replicas_hook_stretches_latency_under_load() -> None:
    replicas = {"api": 1}
    exporter = OriginExporter(replicas_for=lambda route: replicas[route])
    exporter.set_route("api", p95=2.0, rps=40, capacity_rps_per_replica=10)
    assert exporter.effective_p95("api") == 8.0  # 40 rps on 1 replica of 10 rps
    replicas["api"] = 4
    assert exporter.effective_p95("api") == 2.0
    replicas["api"] = 10
    assert exporter.effective_p95("api") == 2.0  # never faster than the base


def test_model_updates_are_partial_and_validated() -> None:
    exporter = OriginExporter()
    exporter.set_route("a", p95=2.0, rps=40, host="h")
    exporter.update_models({"a": {"p95": 9.0}, "b": {"p95": 1.0}})
    assert exporter.models()["a"] == RouteModel(p95=9.0, rps=40, host="h")
    exporter.update_models({"b": None})
    assert set(exporter.models()) == {"a"}
    with pytest.raises(ValueError, match="unknown model fields"):
        exporter.update_models({"a": {"p99": 1.0}})
    with pytest.raises(ValueError, match="p95"):
        exporter.update_models({"a": {"p95": -1}})
