"""Latency observation of a live origin: the exporter's model moves P95 through a real scrape.

A synthetic origin exporter is scraped every second by a real Prometheus; the test steers
the exporter's latency model (over HTTP, as the demo does) and polls the observer until P95
follows. Every wait is bounded. Bucket interpolation means P95 lands inside the bucket that
holds the target, not on the target itself: that bucket is the tolerance.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from sandbox.origin_exporter import BUCKETS, OriginExporter
from sandbox.prometheus import PrometheusServer
from tests.integration.prom_fixtures import latency_spec, observe
from tests.support import kube
from timeout_budget.model.observation import LatencyObservation, Outcome
from timeout_budget.model.spec import RouteKey

pytestmark = pytest.mark.integration

WINDOW = "10s"
TOKEN = "s3cr3t-bearer-token-for-tests"
ROUTES = {
    RouteKey("shop/checkout"): latency_spec({"route": "checkout"}, window=WINDOW),
    RouteKey("shop/export"): latency_spec({"route": "export"}, window=WINDOW),
    RouteKey("shop/quiet"): latency_spec({"route": "quiet"}, window=WINDOW),
}


def bucket_around(seconds: float) -> tuple[float, float]:
    """The (lower, upper] bucket holding ``seconds``: where interpolation puts its P95."""
    upper = next(b for b in BUCKETS if b >= seconds)
    lower = max((b for b in BUCKETS if b < seconds), default=0.0)
    return lower, upper


def in_bucket_of(target: float) -> Callable[[LatencyObservation], bool]:
    lower, upper = bucket_around(target)

    def check(obs: LatencyObservation) -> bool:
        return obs.seconds is not None and lower <= obs.seconds <= upper

    return check


@pytest.fixture(scope="module")
def exporter() -> Iterator[OriginExporter]:
    with OriginExporter(tick_seconds=0.25) as exp:
        exp.set_route("checkout", p95=2.0, rps=40, host="shop.example.com")
        exp.set_route("export", p95=100.0, rps=40, host="shop.example.com")
        exp.set_route("quiet", p95=1.0, rps=0, host="shop.example.com")  # series, no requests
        yield exp


@pytest.fixture(scope="module")
def prometheus(exporter: OriginExporter) -> Iterator[PrometheusServer]:
    with PrometheusServer() as prom:
        prom.start(scrape_targets=[exporter.target], scrape_interval="1s")
        prom.wait_targets_up(1, timeout=30)
        yield prom


def observe_now(prom: PrometheusServer) -> dict[RouteKey, LatencyObservation]:
    return observe(prom.url, ROUTES, bearer_token=TOKEN, timeout_seconds=5)


def set_model(exporter: OriginExporter, body: dict[str, object]) -> None:
    req = urllib.request.Request(
        f"{exporter.url}/model",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200


def test_live_scrape_follows_the_latency_model(
    exporter: OriginExporter, prometheus: PrometheusServer
) -> None:
    checkout, export = RouteKey("shop/checkout"), RouteKey("shop/export")
    first = kube.wait_for(
        lambda: observe_now(prometheus),
        60,
        "checkout at 2 s, export at 100 s",
        interval=0.5,
        until=lambda r: in_bucket_of(2.0)(r[checkout]) and in_bucket_of(100.0)(r[export]),
    )
    assert first[checkout].top_bucket_seconds == 6000.0

    set_model(exporter, {"checkout": {"p95": 50.0}, "export": {"p95": 3.0}})
    moved = kube.wait_for(
        lambda: observe_now(prometheus),
        60,
        "checkout at 50 s, export at 3 s",
        interval=0.5,
        until=lambda r: in_bucket_of(50.0)(r[checkout]) and in_bucket_of(3.0)(r[export]),
    )
    assert moved[checkout].outcome is Outcome.VALUE

    # The Python API moves it too (the demo's load profile uses it).
    exporter.set_route("checkout", p95=300.0, rps=40, host="shop.example.com")
    kube.wait_for(
        lambda: observe_now(prometheus)[checkout],
        60,
        "checkout at 300 s",
        interval=0.5,
        until=in_bucket_of(300.0),
    )


def test_route_without_requests_is_no_data(prometheus: PrometheusServer) -> None:
    quiet = kube.wait_for(
        lambda: observe_now(prometheus)[RouteKey("shop/quiet")],
        30,
        "no data (NaN) for the quiet route",
        interval=0.5,
        until=lambda o: o.outcome is Outcome.NO_DATA and "NaN" in o.message,
    )
    assert quiet.seconds is None


def test_prometheus_down_is_unavailable_and_recovers(
    exporter: OriginExporter, prometheus: PrometheusServer
) -> None:
    checkout = RouteKey("shop/checkout")
    kube.wait_for(
        lambda: observe_now(prometheus)[checkout],
        60,
        "a value for checkout",
        interval=0.5,
        until=lambda o: o.has_value,
    )

    prometheus.stop()
    down = observe_now(prometheus)
    for key, obs in down.items():
        assert obs.outcome is Outcome.UNAVAILABLE, (key, obs)
        assert "cannot reach Prometheus" in obs.message
        assert prometheus.url in obs.message
        assert TOKEN not in obs.message
        assert "query=" not in obs.message  # no URL with the whole query in it

    prometheus.start()  # same data directory, same port
    back = kube.wait_for(
        lambda: observe_now(prometheus)[checkout],
        60,
        "a value for checkout again",
        interval=0.5,
        until=lambda o: o.has_value,
    )
    assert back.outcome is Outcome.VALUE
