"""Fleet-scale reads against a real Prometheus: a batched query longer than any URL limit
sent in a form-encoded POST body and answered exactly, and a refusal for the backend's own
limits (``--query.max-samples``) split until it fits, with the backend's message.

600 routes with long names make one batch of 28,335 URL-encoded characters: in a
URL it is cut into five queries (8,000 each), in a body it is one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import quote_plus

import pytest

from sandbox.origin_exporter import BUCKETS
from sandbox.prometheus import HistogramSample, PrometheusServer, render_openmetrics
from tests.integration.prom_fixtures import T0, expected_quantile, latency_spec, observe
from timeout_budget.model.observation import Outcome
from timeout_budget.model.spec import RouteKey
from timeout_budget.observe.latency import LatencyObserver
from timeout_budget.observe.promql.planning import DEFAULT_MAX_QUERY_LENGTH, plan_queries
from timeout_budget.observe.settings import PrometheusSettings

pytestmark = pytest.mark.integration

METRIC = "http_request_duration_seconds"
ROUTES = 600
AT = T0 + 60
STEPS = [T0 + 15 * i for i in range(5)]


def name(i: int) -> str:
    return f"checkout-service-route-with-a-long-name-{i:04d}"


def history(i: int) -> list[tuple[float, list[float], float]]:
    per_step = [float((i * 7 + b * 3) % 11) for b in range(len(BUCKETS) + 1)]
    counts, out = [0.0] * (len(BUCKETS) + 1), []
    for t in STEPS:
        out.append((t, [sum(counts[: b + 1]) for b in range(len(BUCKETS))], sum(counts)))
        counts = [c + d for c, d in zip(counts, per_step, strict=True)]
    return out


def samples() -> Iterator[HistogramSample]:
    for i in range(ROUTES):
        for t, cumulative, total in history(i):
            yield HistogramSample({"route": name(i)}, tuple(BUCKETS), cumulative, total, t)


@pytest.fixture(scope="module")
def openmetrics() -> str:
    return render_openmetrics(METRIC, samples())


@pytest.fixture(scope="module")
def prometheus(openmetrics: str) -> Iterator[PrometheusServer]:
    with PrometheusServer() as prom:
        prom.backfill(openmetrics)
        prom.start()
        yield prom


ROUTE_SPECS = {RouteKey(f"ns/{name(i)}"): latency_spec({"route": name(i)}) for i in range(ROUTES)}


def expected(i: int) -> float:
    return expected_quantile(0.95, tuple(BUCKETS), history(i), AT, 60.0)


def test_a_batch_longer_than_a_url_is_one_post_answered_exactly(
    prometheus: PrometheusServer,
) -> None:
    latencies = {k: v.latency for k, v in ROUTE_SPECS.items()}
    (batch,) = plan_queries(latencies, 128_000).batches
    length = len(quote_plus(batch.promql))
    assert length > 3 * DEFAULT_MAX_QUERY_LENGTH, length  # 28,335
    assert len(plan_queries(latencies, DEFAULT_MAX_QUERY_LENGTH).batches) == 5

    got = observe(prometheus.url, ROUTE_SPECS, at=AT)  # POST, the default
    for i in range(ROUTES):
        obs = got[RouteKey(f"ns/{name(i)}")]
        assert obs.outcome is Outcome.VALUE, obs
        assert obs.seconds is not None
        assert abs(obs.seconds - expected(i)) <= 1e-9, (i, obs.seconds, expected(i))
    # The same answers through URLs, in five queries.
    by_url = observe(prometheus.url, ROUTE_SPECS, at=AT, method="GET")
    assert {k: o.seconds for k, o in by_url.items()} == {k: o.seconds for k, o in got.items()}


def test_a_refusal_for_the_backends_limits_is_split_and_reported(
    openmetrics: str, caplog: pytest.LogCaptureFixture
) -> None:
    """``--query.max-samples`` refuses the whole batch ("too many samples"); the operator
    splits it until each part fits, says so with Prometheus' message, and every route
    still gets its exact value."""
    # One query at a time: the whole group is one batch (no cut for parallel queries).
    settings = PrometheusSettings(
        "http://127.0.0.1:1", coverage_refresh_seconds=0.0, max_concurrency=1
    )
    with PrometheusServer() as prom:
        prom.backfill(openmetrics)
        prom.start(extra_flags=["--query.max-samples=20000"])

        async def cycle() -> tuple[dict[RouteKey, Any], int]:
            async with LatencyObserver(replace(settings, url=prom.url)) as observer:
                got = await observer.observe(ROUTE_SPECS, at=AT)
                return got, observer.queries_sent

        with caplog.at_level(logging.WARNING, logger="timeout_budget.observe.latency"):
            got, sent = asyncio.run(cycle())
    for i in range(ROUTES):
        obs = got[RouteKey(f"ns/{name(i)}")]
        assert obs.outcome is Outcome.VALUE, obs
        assert abs(obs.seconds - expected(i)) <= 1e-9
    said = [r.getMessage() for r in caplog.records if "for its limits" in r.getMessage()]
    assert said, [r.getMessage() for r in caplog.records]
    assert "too many samples" in said[0]
    assert sent > 2  # the batch, then its parts (and the coverage query)
