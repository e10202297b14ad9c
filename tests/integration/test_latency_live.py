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
CHECKOUT, EXPORT = RouteKey("shop/checkout"), RouteKey("shop/export")
ROUTES = {
    CHECKOUT: latency_spec({"route": "checkout"}, window=WINDOW),
    EXPORT: latency_spec({"route": "export"}, window=WINDOW),
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


def reading(
    prom: PrometheusServer,
    route: RouteKey,
    what: str,
    until: Callable[[LatencyObservation], bool],
    seconds: float = 60,
) -> LatencyObservation:
    """``route``'s observation, polled every 0.5 s for at most ``seconds`` until ``until``."""
    return kube.wait_for(lambda: observe_now(prom)[route], seconds, what, interval=0.5, until=until)


def readings_in_buckets(
    prom: PrometheusServer, checkout: float, export: float
) -> dict[RouteKey, LatencyObservation]:
    """All observations, once checkout's and export's P95 lie in the buckets of these values."""
    return kube.wait_for(
        lambda: observe_now(prom),
        60,
        f"checkout at {checkout:g} s, export at {export:g} s",
        interval=0.5,
        until=lambda r: in_bucket_of(checkout)(r[CHECKOUT]) and in_bucket_of(export)(r[EXPORT]),
    )


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
    first = readings_in_buckets(prometheus, checkout=2.0, export=100.0)
    assert first[CHECKOUT].top_bucket_seconds == 6000.0

    set_model(exporter, {"checkout": {"p95": 50.0}, "export": {"p95": 3.0}})
    moved = readings_in_buckets(prometheus, checkout=50.0, export=3.0)
    assert moved[CHECKOUT].outcome is Outcome.VALUE

    # The Python API moves it too (the demo's load profile uses it).
    exporter.set_route("checkout", p95=300.0, rps=40, host="shop.example.com")
    reading(prometheus, CHECKOUT, "checkout at 300 s", until=in_bucket_of(300.0))


def test_route_without_requests_is_no_data(prometheus: PrometheusServer) -> None:
    quiet = reading(
        prometheus,
        RouteKey("shop/quiet"),
        "no data (NaN) for the quiet route",
        until=lambda o: o.outcome is Outcome.NO_DATA and "NaN" in o.message,
        seconds=30,
    )
    assert quiet.seconds is None


def test_prometheus_down_is_unavailable_and_recovers(
    exporter: OriginExporter, prometheus: PrometheusServer
) -> None:
    reading(prometheus, CHECKOUT, "a value for checkout", until=lambda o: o.has_value)

    prometheus.stop()
    down = observe_now(prometheus)
    for key, obs in down.items():
        assert obs.outcome is Outcome.UNAVAILABLE, (key, obs)
        assert "cannot reach Prometheus" in obs.message
        assert prometheus.url in obs.message
        assert TOKEN not in obs.message
        assert "query=" not in obs.message  # no URL with the whole query in it

    prometheus.start()  # same data directory, same port
    back = reading(prometheus, CHECKOUT, "a value for checkout again", until=lambda o: o.has_value)
    assert back.outcome is Outcome.VALUE
