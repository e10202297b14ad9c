"""A real distributed backend: Thanos Query in front of two Prometheus servers with sidecars.

``sandbox.thanos`` starts, from the Thanos built by ``build-binaries.sh thanos``:

* store ``a`` (external labels ``store="a", tenant_id="team-a"``): Prometheus 2.42 with the
  exact history of route ``checkout`` (and ``burst``), scraping the synthetic origin too;
* store ``b`` (``store="b", tenant_id="team-b"``): Prometheus 2.42 with route ``search``;
* Thanos Query ``main`` (``--endpoint`` to both sidecars), ``strict``
  (``--endpoint-strict``), ``tenancy`` (``--query.enforce-tenancy`` with
  ``--query.tenant-header=X-Scope-OrgID``) and ``required`` (the same with
  ``--query.default-tenant-id=`` empty).

Plain ``requests`` only: what the backend answers, not what the operator makes of it.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox import binaries
from sandbox.origin_exporter import BUCKETS, OriginExporter
from sandbox.prometheus import HistogramSample, render_openmetrics
from sandbox.thanos import ThanosSandbox
from tests.integration.prom_fixtures import T0, expected_quantile

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
METRIC = "http_request_duration_seconds"
AT = T0 + 60
WINDOW = 60.0
STEPS = [T0 + 15 * i for i in range(5)]  # T0 .. T0+60: a sample on each end of the window
TENANT_HEADER = "X-Scope-OrgID"

History = list[tuple[float, list[float], float]]


def accumulate(increments: Sequence[Sequence[float]], times: Sequence[float] = STEPS) -> History:
    """Cumulative bucket counts, zero at ``times[0]``; ``increments[i]`` (per bucket, the
    last entry beyond the largest bound) are the requests between ``times[i]`` and the next."""
    assert len(increments) == len(times) - 1
    counts, out = [0.0] * (len(BUCKETS) + 1), []
    for i, t in enumerate(times):
        out.append((t, [sum(counts[: b + 1]) for b in range(len(BUCKETS))], sum(counts)))
        if i < len(increments):
            counts = [c + d for c, d in zip(counts, increments[i], strict=True)]
    return out


def per_bucket(counts: dict[float, float]) -> list[float]:
    """Requests per bucket by its upper bound, e.g. ``{2.5: 80, 10: 20}``."""
    out = [0.0] * (len(BUCKETS) + 1)
    for bound, n in counts.items():
        out[BUCKETS.index(bound)] = n
    return out


CHECKOUT = accumulate([per_bucket({2.5: 80, 10: 20})] * 4)
SEARCH = accumulate([per_bucket({5: 50, 30: 50})] * 4)
BURST_TIMES = [T0 + 15 * i for i in range(-2, 5)]  # T0-30 .. T0+60
BURST = accumulate(
    [per_bucket({0.5: 100})] * 2
    + [per_bucket({0.5: 100, 120: 100})]
    + [per_bucket({0.5: 100})] * 3,
    BURST_TIMES,
)
"""Fast requests throughout and 100 slow ones between the window's start sample (T0) and the
next; samples before the window, so only the sample on its start decides."""


def openmetrics(routes: dict[str, History]) -> str:
    def samples() -> Iterator[HistogramSample]:
        for route, history in routes.items():
            for t, cumulative, total in history:
                yield HistogramSample({"route": route}, BUCKETS, cumulative, total, t)

    return render_openmetrics(METRIC, samples())


def p95(selector: str, window: str = "1m") -> str:
    return f"histogram_quantile(0.95, sum by (le) (rate({METRIC}_bucket{{{selector}}}[{window}])))"


def post(
    url: str, query: str, *, at: float = AT, partial_response: str | None = None
) -> requests.Response:
    """``POST /api/v1/query`` with a form-encoded body (``requests`` sets the type)."""
    data = {"query": query, "time": repr(at)}
    if partial_response is not None:
        data["partial_response"] = partial_response
    return requests.post(f"{url}/api/v1/query", data=data, timeout=30)


def scalar(body: dict[str, Any]) -> float:
    result = body["data"]["result"]
    assert len(result) == 1, body
    return float(result[0]["value"][1])


@pytest.fixture(scope="module")
def thanos(origin: OriginExporter) -> Iterator[ThanosSandbox]:
    try:
        binary = binaries.ensure_thanos(build=True)
    except binaries.BinariesUnavailable as exc:
        if os.environ.get("TBO_REQUIRE_SANDBOX") == "1":
            pytest.fail(f"thanos unavailable: {exc}")
        pytest.skip(f"thanos unavailable: {exc}")
    workdir = REPO / ".sandbox" / f"thanos-{os.getpid()}"
    with ThanosSandbox(workdir, binary=binary) as sandbox:
        sandbox.add_store(
            "a",
            tenant="team-a",
            backfill_openmetrics=openmetrics({"checkout": CHECKOUT, "burst": BURST}),
            scrape_targets=[origin.target],
        )
        sandbox.add_store(
            "b", tenant="team-b", backfill_openmetrics=openmetrics({"search": SEARCH})
        )
        sandbox.add_query("main")
        sandbox.add_query("strict", strict=True)
        tenancy = ["--query.enforce-tenancy", f"--query.tenant-header={TENANT_HEADER}"]
        sandbox.add_query("tenancy", extra_flags=tenancy)
        sandbox.add_query("required", extra_flags=[*tenancy, "--query.default-tenant-id="])
        yield sandbox


def test_p95_through_thanos_is_the_prometheus_p95(thanos: ThanosSandbox) -> None:
    """Each route's P95 from Thanos Query equals the one from the Prometheus holding it (to
    the last few ulps) and the reference from the raw counts; the fleet's P95, which no
    single Prometheus can answer, equals the reference for both stores' counts summed."""
    main = thanos.queries["main"].url
    for store, route, history in (("a", "checkout", CHECKOUT), ("b", "search", SEARCH)):
        direct = post(thanos.stores[store].prometheus.url, p95(f'route="{route}"')).json()
        through = post(main, p95(f'route="{route}"')).json()
        expected = expected_quantile(0.95, BUCKETS, history, AT, WINDOW)
        print(f"{route}: prometheus {scalar(direct)!r}, thanos {scalar(through)!r}")
        assert "warnings" not in through
        assert scalar(through) == pytest.approx(scalar(direct), rel=1e-12)
        assert scalar(through) == pytest.approx(expected, rel=1e-12)
    summed = [
        (t, [x + y for x, y in zip(ca, cb, strict=True)], ta + tb)
        for (t, ca, ta), (_, cb, tb) in zip(CHECKOUT, SEARCH, strict=True)
    ]
    fleet = post(main, p95('route=~"checkout|search"')).json()
    print(f"fleet: thanos {scalar(fleet)!r}")
    assert scalar(fleet) == pytest.approx(expected_quantile(0.95, BUCKETS, summed, AT, WINDOW))
    only_a = scalar(post(thanos.stores["a"].prometheus.url, p95('route=~"checkout|search"')).json())
    assert not math.isclose(scalar(fleet), only_a)


def test_sample_on_the_window_start_counts_in_prometheus_2_not_in_thanos(
    thanos: ThanosSandbox,
) -> None:
    """Thanos v0.42 evaluates with Prometheus 3's engine, whose ranges are left-open: a
    sample exactly on the window's start is out. Prometheus 2.42 keeps it, so a burst in the
    window's first scrape interval moves its P95 and not Thanos'."""
    query = p95('route="burst"')
    direct = scalar(post(thanos.stores["a"].prometheus.url, query).json())
    through = scalar(post(thanos.queries["main"].url, query).json())
    closed = expected_quantile(0.95, BUCKETS, BURST, AT, WINDOW)
    left_open = expected_quantile(
        0.95, BUCKETS, [h for h in BURST if h[0] > AT - WINDOW], AT, WINDOW
    )
    print(f"burst: prometheus 2.42 {direct!r} (closed {closed!r}), thanos {through!r}")
    assert direct == pytest.approx(closed)
    assert through == pytest.approx(left_open)
    assert 110 < direct < 120
    assert 0.25 < through < 0.5


def test_live_origin_p95_same_through_thanos(thanos: ThanosSandbox, origin: OriginExporter) -> None:
    """The synthetic origin scraped live by store a: at the same instant, the same P95."""
    origin.set_route("thanos-live", p95=2.0, rps=50)
    prom = thanos.stores["a"].prometheus.url
    query = p95('route="thanos-live"', window="30s")
    deadline = time.monotonic() + 30
    while True:
        at = round(time.time() - 1.5, 3)
        body = post(prom, query, at=at).json()
        if body["data"]["result"] and not math.isnan(scalar(body)):
            break
        assert time.monotonic() < deadline, body
        time.sleep(0.5)
    through = post(thanos.queries["main"].url, query, at=at).json()
    print(f"live at {at}: prometheus {scalar(body)!r}, thanos {scalar(through)!r}")
    assert scalar(through) == pytest.approx(scalar(body), rel=1e-9)
    assert 1.0 < scalar(through) < 5.0


def test_long_form_post_query_is_answered(thanos: ThanosSandbox) -> None:
    """A batch of per-route P95s longer than 8,000 characters, in a form-encoded POST body:
    answered whole, each route's value as asked alone."""
    routes = ["checkout", "search"] + [f"route-with-a-long-name-{i:04d}" for i in range(60)]
    batch = " or ".join(
        f"label_replace({p95(f'route={route!r}'.replace(chr(39), chr(34)))}, "
        f'"tbo_route", "{route}", "", "")'
        for route in routes
    )
    assert len(batch) > 8000
    response = post(thanos.queries["main"].url, batch)
    print(f"batch of {len(batch)} characters: HTTP {response.status_code}")
    assert response.status_code == 200, response.text
    assert response.request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    got = {
        r["metric"]["tbo_route"]: float(r["value"][1]) for r in response.json()["data"]["result"]
    }
    assert set(got) == {"checkout", "search"}
    for route in ("checkout", "search"):
        alone = scalar(post(thanos.queries["main"].url, p95(f'route="{route}"')).json())
        assert got[route] == alone


@pytest.fixture
def store_b_killed(thanos: ThanosSandbox) -> Iterator[ThanosSandbox]:
    thanos.kill_sidecar("b")
    try:
        yield thanos
    finally:
        thanos.restart_sidecar("b")


def test_killed_store_strict_endpoint_warns_or_refuses(store_b_killed: ThanosSandbox) -> None:
    """``--endpoint-strict``: with store b's sidecar dead every answer carries a warning
    (HTTP 200, store a's data only); ``partial_response=false`` makes it an error. Either
    names the dead sidecar in one of Thanos' two wordings (``dead_store_wording``): the
    first query after the SIGKILL may still be sent on the dead connection."""
    thanos = store_b_killed
    url = thanos.queries["strict"].url
    fleet = p95('route=~"checkout|search"')
    only_a = scalar(post(thanos.stores["a"].prometheus.url, fleet).json())
    for _ in range(2):  # before and after Query's next endpoint check (1 s)
        response = post(url, fleet)
        body = response.json()
        print(f"HTTP {response.status_code}, warnings: {body.get('warnings')}")
        assert response.status_code == 200
        assert body["status"] == "success"
        assert scalar(body) == pytest.approx(only_a, rel=1e-12)
        [warning] = body["warnings"]
        assert thanos.dead_store_wording(warning, "b") in ("fetch", "receive"), warning
        assert thanos.dead_store_wording(warning, "a") is None
        time.sleep(1.5)
    # Query has dialled the dead sidecar by now: the connection is refused.
    refused = post(url, fleet, partial_response="false")
    print(f"partial_response=false: HTTP {refused.status_code} {refused.text}")
    assert refused.status_code == 422
    error = refused.json()
    assert error["status"] == "error"
    assert error["errorType"] == "execution"
    assert error["error"].startswith("expanding series: proxy Series(): ")
    assert thanos.dead_store_wording(error["error"], "b") == "fetch", error["error"]
    # Every query is sent to every store whose external labels its selectors allow: a route
    # that store b never had fails too, unless the query names store a's external label.
    checkout = post(url, p95('route="checkout"'), partial_response="false")
    print(f"route=checkout, partial_response=false: HTTP {checkout.status_code}")
    assert checkout.status_code == 422
    alone = post(url, p95('route="checkout",store="a"'), partial_response="false")
    assert alone.status_code == 200
    assert "warnings" not in alone.json()


def test_both_wordings_of_a_dead_store_are_told_apart(thanos: ThanosSandbox) -> None:
    """The ``receive series`` wording is rare here (once in a CI run, on the first query
    after the SIGKILL): its text as Thanos v0.42.4 printed it then, on this run's ports."""
    a, b = (thanos.stores[s].sidecar.grpc_address for s in ("a", "b"))
    tail = "MinTime: 1700000000000 MaxTime: 9223372036854775807: rpc error: code = Unavailable"
    received = f"receive series from Addr: {b} {tail} desc = error reading from server: EOF"
    fetched = (
        f'fetch series for {{store="b", tenant_id="team-b"}} Addr: {b} {tail} desc = '
        f'connection error: desc = "transport: Error while dialing: dial tcp {b}: connect: '
        'connection refused"'
    )
    assert thanos.dead_store_wording(received, "b") == "receive"
    assert thanos.dead_store_wording(fetched, "b") == "fetch"
    assert thanos.dead_store_wording(received.replace(b, a), "b") is None
    assert thanos.dead_store_wording(received, "a") is None
    assert thanos.dead_store_wording(fetched, "a") is None


def test_killed_store_plain_endpoint_drops_it_silently(store_b_killed: ThanosSandbox) -> None:
    """``--endpoint`` (not strict): once Query's endpoint check has failed (every
    ``--endpoint.info-timeout``, 1 s here, 5 s by default) the dead store is no longer asked:
    HTTP 200, store a's data, no warning, and ``partial_response=false`` changes nothing."""
    thanos = store_b_killed
    thanos.wait_endpoint_unhealthy("main", "b")
    url = thanos.queries["main"].url
    fleet = p95('route=~"checkout|search"')
    only_a = scalar(post(thanos.stores["a"].prometheus.url, fleet).json())
    for form in (None, "false"):
        response = post(url, fleet, partial_response=form)
        body = response.json()
        print(f"partial_response={form}: HTTP {response.status_code} {response.text}")
        assert response.status_code == 200
        assert "warnings" not in body
        assert scalar(body) == pytest.approx(only_a, rel=1e-12)
    [dead] = [
        e
        for e in thanos.endpoints("main")
        if e["labelSets"] == [{"store": "b", "tenant_id": "team-b"}]
    ]
    print(f"/api/v1/stores: {dead}")
    assert "connection refused" in str(dead["lastError"])


def test_store_back_whole_answer(thanos: ThanosSandbox) -> None:
    """After the sidecar is back (same port) both Queries answer whole again."""
    fleet = p95('route=~"checkout|search"')
    for name in ("main", "strict"):
        body = post(thanos.queries[name].url, fleet, partial_response="false").json()
        assert "warnings" not in body
        assert scalar(body) > 5


def tenants(url: str, headers: dict[str, str], query: str | None = None) -> requests.Response:
    query = query or f'sum by (tenant_id) (rate({METRIC}_bucket{{le="+Inf"}}[1m]))'
    return requests.post(
        f"{url}/api/v1/query",
        data={"query": query, "time": repr(AT)},
        headers=headers,
        timeout=30,
    )


def test_tenancy_enforced_default_tenant_gets_nothing(thanos: ThanosSandbox) -> None:
    """``--query.enforce-tenancy``: every selector gets ``tenant_id="<header>"``. Without
    the header the tenant is ``--query.default-tenant-id`` (``default-tenant``): HTTP 200,
    an empty result, no warning. Thanos' own ``THANOS-TENANT`` header is honoured too, and
    a selector naming another tenant is overridden, not refused."""
    url = thanos.queries["tenancy"].url
    missing = tenants(url, {})
    print(f"no header: HTTP {missing.status_code} {missing.text}")
    assert missing.status_code == 200
    assert missing.json()["data"]["result"] == []
    assert "warnings" not in missing.json()
    for headers, tenant in (
        ({TENANT_HEADER: "team-a"}, "team-a"),
        ({TENANT_HEADER: "team-b"}, "team-b"),
        ({"THANOS-TENANT": "team-b"}, "team-b"),
    ):
        result = tenants(url, headers).json()["data"]["result"]
        assert [r["metric"] for r in result] == [{"tenant_id": tenant}], headers
    cross = tenants(
        url,
        {TENANT_HEADER: "team-a"},
        f'sum by (tenant_id) (rate({METRIC}_bucket{{le="+Inf",tenant_id="team-b"}}[1m]))',
    )
    print(f"team-a asking for tenant_id=team-b: {cross.text}")
    assert [r["metric"] for r in cross.json()["data"]["result"]] == [{"tenant_id": "team-a"}]
    # Without enforcement the header changes nothing: both tenants.
    free = tenants(thanos.queries["main"].url, {TENANT_HEADER: "team-a"}).json()
    assert {r["metric"]["tenant_id"] for r in free["data"]["result"]} == {"team-a", "team-b"}


def test_tenancy_required_missing_header_is_refused(thanos: ThanosSandbox) -> None:
    """The same with ``--query.default-tenant-id=`` (empty): a request without the header is
    refused, HTTP 400 ``bad_data`` "tenant name not valid"; with it, the tenant's data."""
    url = thanos.queries["required"].url
    missing = tenants(url, {})
    print(f"no header: HTTP {missing.status_code} {missing.text}")
    assert missing.status_code == 400
    assert missing.json() == {
        "status": "error",
        "errorType": "bad_data",
        "error": "tenant name not valid",
    }
    with_header = tenants(url, {TENANT_HEADER: "team-a"})
    assert with_header.status_code == 200
    assert [r["metric"] for r in with_header.json()["data"]["result"]] == [{"tenant_id": "team-a"}]
    p95_a = post(thanos.stores["a"].prometheus.url, p95('route="checkout"')).json()
    through = requests.post(
        f"{url}/api/v1/query",
        data={"query": p95('route="checkout"'), "time": repr(AT)},
        headers={TENANT_HEADER: "team-a"},
        timeout=30,
    ).json()
    assert scalar(through) == pytest.approx(scalar(p95_a), rel=1e-12)
