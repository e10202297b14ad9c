"""LatencyObserver without a server: outcomes, error classification, bisection, caching.

A fake client stands in for ``PrometheusConnect``: it answers (or raises) per query text, as
the real one does from a worker thread.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.exceptions import MaxRetryError, NewConnectionError

from timeout_budget.model.observation import LatencyObservation, Outcome
from timeout_budget.model.spec import RouteKey, TimeoutBudgetSpec, parse_timeout_budget
from timeout_budget.observe.latency import LatencyObserver
from timeout_budget.observe.promql.answers import Answer
from timeout_budget.observe.query_failures import parse_client_error
from timeout_budget.observe.settings import PrometheusSettings, SettingsError

pytestmark = pytest.mark.unit

M = "http_request_duration_seconds"
TOKEN = "tok-3f9a-very-secret"
QUOTED = b'quote"s'  # bytes whose repr uses single quotes around a double quote
Handler = Callable[[str, dict[str, Any]], Any]


class FakeClient:
    def __init__(self, handler: Handler, delay: float = 0.0) -> None:
        self.handler = handler
        self.delay = delay
        self.queries: list[str] = []
        self.params: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self.closed = False

    def query(self, query: str, params: Mapping[str, str]) -> Answer:
        """The handler's result as a whole answer (a handler may return an ``Answer``)."""
        with self._lock:
            self.queries.append(query)
            self.params.append(dict(params))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                time.sleep(self.delay)
            result = self.handler(query, dict(params))
            return result if isinstance(result, Answer) else Answer(result)
        finally:
            with self._lock:
                self.in_flight -= 1

    def close(self) -> None:
        self.closed = True


def spec(selector: Mapping[str, str] | None = None, **latency: Any) -> TimeoutBudgetSpec:
    body: dict[str, Any] = {"selector": dict(selector or {}), **latency}
    if "query" not in body:
        body.setdefault("metric", M)
    return parse_timeout_budget(
        {"route": {"host": "api.example.com"}, "latency": body, "origin": {"deploymentName": "d"}}
    )


def settings(**kw: Any) -> PrometheusSettings:
    kw.setdefault("coverage_refresh_seconds", 300.0)
    return PrometheusSettings("http://prometheus.example:9090", bearer_token=TOKEN, **kw)


def run(
    client: FakeClient,
    routes: Mapping[RouteKey, TimeoutBudgetSpec],
    at: float | None = 1700000000.0,
    observer: LatencyObserver | None = None,
    **kw: Any,
) -> dict[RouteKey, LatencyObservation]:
    obs = observer or LatencyObserver(settings(**kw), client=client)
    return asyncio.run(obs.observe(routes, at=at))


def vector(series: Mapping[str, str], label: str = "route") -> list[dict[str, Any]]:
    return [{"metric": {label: k}, "value": [1700000000.0, v]} for k, v in series.items()]


def routes_in(query: str) -> list[str]:
    """The route values a batched query selects (``route="a"`` or ``route=~"a|b"``)."""
    m = re.search(r'route=~?"([^"]*)"', query)
    return m.group(1).split("|") if m else []


def answering(values: Mapping[str, str], tops: Mapping[str, list[str]] | None = None) -> Handler:
    def handler(query: str, params: dict[str, Any]) -> Any:
        wanted = routes_in(query)
        if query.startswith("group by"):
            return [
                {"metric": {"route": r, "le": le}, "value": [0, "1"]}
                for r, les in (tops or {}).items()
                if r in wanted
                for le in les
            ]
        return vector({r: v for r, v in values.items() if r in wanted})

    return handler


def client_error(status: int, body: bytes) -> PrometheusApiClientException:
    # prometheus-api-client 0.7.2's exact wording
    return PrometheusApiClientException(f"HTTP Status Code {status} ({body!r})")


# ---------------------------------------------------------------- outcomes


def test_values_nan_and_missing_series_stay_distinct() -> None:
    client = FakeClient(
        answering(
            {"fast": "0.42", "idle": "NaN", "inf": "+Inf"},
            {"fast": ["0.1", "10", "6000", "+Inf"], "idle": ["10", "+Inf"]},
        )
    )
    routes = {RouteKey(f"n/{r}"): spec({"route": r}) for r in ("fast", "idle", "gone", "inf")}
    got = run(client, routes)

    assert got[RouteKey("n/fast")] == LatencyObservation.value(0.42, top_bucket_seconds=6000.0)
    idle = got[RouteKey("n/idle")]
    assert idle.outcome is Outcome.NO_DATA
    assert "NaN" in idle.message
    assert idle.top_bucket_seconds == 10.0
    gone = got[RouteKey("n/gone")]
    assert gone.outcome is Outcome.NO_DATA
    assert f'{M}_bucket{{route="gone"}}' in gone.message
    assert got[RouteKey("n/inf")].outcome is Outcome.NO_DATA
    assert not any(o.seconds == 0 for o in got.values())
    # one quantile query and one coverage query for the whole group, at the asked time
    assert len(client.queries) == 2
    assert all(p["time"] == "1700000000.000" for p in client.params)
    assert all(p["timeout"] == "10" for p in client.params)


def test_invalid_selectors_send_nothing() -> None:
    client = FakeClient(answering({}))
    got = run(client, {RouteKey("n/bad"): spec({"le": "10"})})
    assert got[RouteKey("n/bad")].outcome is Outcome.INVALID
    assert client.queries == []


def test_override_outcomes() -> None:
    answers: dict[str, Any] = {
        "scalar(q1)": [1700000000.0, "12.5"],
        "q2": vector({"x": "NaN"}),
        "q3": vector({"x": "1", "y": "2"}),
        "q4": [],
        "q5": vector({"x": "4.5"}),
    }
    client = FakeClient(lambda q, p: answers[q])
    routes = {RouteKey(f"n/{q}"): spec(query=q) for q in answers}
    got = run(client, routes)
    assert got[RouteKey("n/scalar(q1)")].seconds == 12.5
    assert got[RouteKey("n/q2")].outcome is Outcome.NO_DATA
    assert got[RouteKey("n/q3")].outcome is Outcome.REJECTED
    assert "one series" in got[RouteKey("n/q3")].message
    assert got[RouteKey("n/q4")].outcome is Outcome.NO_DATA
    assert got[RouteKey("n/q5")] == LatencyObservation.value(4.5)
    assert not any(q.startswith("group by") for q in client.queries)  # no coverage for overrides


def test_parts_arrive_as_prometheus_answers_each_route_once() -> None:
    """Two batches (windows 1m and 5m): the 5m one answers only once the caller holds the
    1m routes (with their coverage), so a caller that waited for everything would stall
    it; every route is in exactly one part."""
    fast = answering({"a": "1.5", "b": "2.5"}, {"a": ["10", "+Inf"], "b": ["10", "+Inf"]})
    first_part_in = threading.Event()
    released: list[bool] = []

    def handler(query: str, params: dict[str, Any]) -> Any:
        if "[5m]" in query:
            released.append(first_part_in.wait(timeout=5))
            return vector({"c": "3.5"})
        return fast(query, params)

    routes = {
        RouteKey("n/a"): spec({"route": "a"}, window="1m"),
        RouteKey("n/b"): spec({"route": "b"}, window="1m"),
        RouteKey("n/c"): spec({"route": "c"}, window="5m"),
        RouteKey("n/bad"): spec({"le": "10"}),
    }
    obs = LatencyObserver(settings(), client=FakeClient(handler))

    async def collect() -> list[dict[RouteKey, LatencyObservation]]:
        parts = []
        async for part in obs.observe_parts(routes, 1.0):
            parts.append(part)
            if RouteKey("n/a") in part:
                first_part_in.set()
        return parts

    parts = asyncio.run(collect())
    assert released == [True, True]  # both 5m queries answered after the 1m part was out
    keys = [k for part in parts for k in part]
    assert sorted(keys) == sorted(routes)  # each route exactly once
    assert [set(p) for p in parts] == [
        {RouteKey("n/bad")},
        {RouteKey("n/a"), RouteKey("n/b")},
        {RouteKey("n/c")},
    ]
    assert parts[1][RouteKey("n/a")] == LatencyObservation.value(1.5, top_bucket_seconds=10.0)
    assert parts[2][RouteKey("n/c")].seconds == 3.5


def test_received_in_is_prometheus_time_answered_in_adds_the_callers_hold() -> None:
    """The caller keeps the event loop busy (deciding the first part's routes) while the
    second answer arrives in its worker thread: ``answered_in`` counts that wait,
    ``received_in`` does not (the bench tells the two apart with them)."""
    fast = answering({"a": "1.5"}, {"a": ["10", "+Inf"]})

    def handler(query: str, params: dict[str, Any]) -> Any:
        if "[5m]" in query:
            time.sleep(0.05)
            return vector({"c": "3.5"})
        return fast(query, params)

    routes = {
        RouteKey("n/a"): spec({"route": "a"}, window="1m"),
        RouteKey("n/c"): spec({"route": "c"}, window="5m"),
    }
    obs = LatencyObserver(settings(), client=FakeClient(handler))

    async def collect() -> None:
        async for part in obs.observe_parts(routes, 1.0):
            if RouteKey("n/a") in part:
                time.sleep(1.0)  # holding the loop: no task resumes meanwhile

    asyncio.run(collect())
    assert obs.answered_in >= 1.0
    assert obs.received_in < obs.answered_in - 0.5  # the answer came in during the hold
    assert obs.sent_by < obs.received_in  # every query went out at once


def test_leaving_the_parts_early_cancels_the_queries_still_running() -> None:
    started: list[str] = []

    def handler(query: str, params: dict[str, Any]) -> Any:
        started.append(query)
        if "[5m]" in query:
            time.sleep(0.3)
        return vector({r: "1" for r in routes_in(query)})

    routes = {
        RouteKey("n/a"): spec({"route": "a"}, window="1m"),
        RouteKey("n/c"): spec({"route": "c"}, window="5m"),
    }
    obs = LatencyObserver(settings(max_concurrency=1), client=FakeClient(handler))

    async def first_only() -> None:
        parts = obs.observe_parts(routes, 1.0)
        async for _ in parts:
            break
        await parts.aclose()
        await asyncio.sleep(0.5)  # a query not cancelled would start by now

    asyncio.run(first_only())
    # one part in: the other batch (and both coverage queries behind it) never started
    assert len(started) < 4


# ---------------------------------------------------------------- error classification


def _refused() -> requests.ConnectionError:
    reason = NewConnectionError(
        object(),  # type: ignore[arg-type]
        "<urllib3.connection.HTTPConnection object at 0x7f0>: Failed to establish a new "
        "connection: [Errno 111] Connection refused",
    )
    url = "/api/v1/query?query=histogram_quantile%28...&time=1"
    return requests.ConnectionError(MaxRetryError(None, url, reason))  # type: ignore[arg-type]


ERRORS: list[tuple[str, BaseException, Outcome, str]] = [
    ("refused", _refused(), Outcome.UNAVAILABLE, "Connection refused"),
    (
        "read-timeout",
        requests.ReadTimeout("HTTPConnectionPool(host='p', port=9090): Read timed out."),
        Outcome.UNAVAILABLE,
        "did not answer within 10s",
    ),
    (
        "bad-data",
        client_error(
            400,
            b'{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected }"}',
        ),
        Outcome.REJECTED,
        "Prometheus rejected the query (bad_data): 1:5: parse error: unexpected }",
    ),
    (
        "execution",
        client_error(
            422,
            b'{"status":"error","errorType":"execution",'
            b'"error":"vector cannot contain metrics with the same labelset"}',
        ),
        Outcome.REJECTED,
        "same labelset",
    ),
    (
        "too-many-samples",
        client_error(
            422,
            b'{"status":"error","errorType":"execution","error":"query processing would load '
            b'too many samples into memory in query execution"}',
        ),
        # A limit on one query's size (--query.max-samples): refused, and split smaller.
        Outcome.REJECTED,
        "for its limits (HTTP 422): query processing would load too many samples",
    ),
    (
        "mimir-limit",
        client_error(
            422,
            b'{"status":"error","errorType":"execution","error":"the query exceeded the '
            b'maximum number of series (limit: 1000 series) (err-mimir-max-series-per-query)"}',
        ),
        Outcome.REJECTED,
        "err-mimir-max-series-per-query",
    ),
    (
        "thanos-store-down-partial-denied",
        client_error(
            422,
            b'{"status":"error","errorType":"execution","error":"expanding series: proxy '
            b'Series(): fetch series for {store=\\"b\\"} Addr: 127.0.0.1:4 MinTime: 0 '
            b'MaxTime: 9: rpc error: code = Unavailable desc = connection error"}',
        ),
        # The query is fine; a store is down and partial answers are denied: held, not split.
        Outcome.PARTIAL,
        "no whole answer (partial answers are denied): HTTP 422: expanding series",
    ),
    (
        "thanos-store-stream-broken-partial-denied",
        client_error(
            422,
            b'{"status":"error","errorType":"execution","error":"expanding series: proxy '
            b"Series(): receive series from Addr: 127.0.0.1:4 MinTime: 0 MaxTime: 9: "
            b'rpc error: code = Canceled desc = grpc: the client connection is closing"}',
        ),
        # Thanos' other wording (a stream that broke, here not Unavailable): still held.
        Outcome.PARTIAL,
        "no whole answer (partial answers are denied): HTTP 422: expanding series",
    ),
    (
        "victoriametrics-partial-denied",
        client_error(
            503,
            b'{"status":"error","errorType":"503","error":"cannot fetch query results from '
            b'vmstorage nodes: cannot obtain data from vmstorage 127.0.0.1:8401"}',
        ),
        Outcome.PARTIAL,
        "no whole answer (partial answers are denied): HTTP 503: cannot fetch",
    ),
    (
        "thanos-tenant-missing",
        client_error(
            400, b'{"status":"error","errorType":"bad_data","error":"tenant name not valid"}'
        ),
        # The operator's settings, not the query: unavailable, with what to set.
        Outcome.UNAVAILABLE,
        "refused the tenant (HTTP 400): tenant name not valid; set TBO_PROMETHEUS_TENANT",
    ),
    (
        "mimir-org-id-missing",
        client_error(401, b"no org id\n"),
        Outcome.UNAVAILABLE,
        "refused the tenant (HTTP 401): no org id",
    ),
    (
        "body-too-large",
        client_error(413, b"<html>413 Request Entity Too Large</html>"),
        Outcome.REJECTED,
        "the backend refused the query for its limits (HTTP 413)",
    ),
    (
        "server-timeout",
        client_error(
            503, b'{"status":"error","errorType":"timeout","error":"query timed out in eval"}'
        ),
        Outcome.UNAVAILABLE,
        "HTTP 503 (timeout): query timed out",
    ),
    ("unauthorized", client_error(401, b"Unauthorized\n"), Outcome.UNAVAILABLE, "HTTP 401"),
    (
        "proxy-echoes-token",
        client_error(502, f"<html>bad gateway for Bearer {TOKEN}</html>".encode()),
        Outcome.UNAVAILABLE,
        "HTTP 502",
    ),
    (
        "json-garbage",
        requests.JSONDecodeError("Expecting value", "<html>", 0),
        Outcome.UNAVAILABLE,
        "unexpected answer",
    ),
    ("missing-data-key", KeyError("data"), Outcome.UNAVAILABLE, "unexpected answer"),
]


@pytest.mark.parametrize(
    ("exc", "outcome", "fragment"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS]
)
def test_errors_are_classified_without_leaking_secrets(
    exc: BaseException, outcome: Outcome, fragment: str
) -> None:
    def fail(query: str, params: dict[str, Any]) -> Any:
        raise exc

    routes = {
        RouteKey("n/a"): spec({"route": "a"}),
        RouteKey("n/b"): spec({"route": "b"}),
        RouteKey("n/o"): spec(query="max(x)"),
    }
    got = run(FakeClient(fail), routes)
    for obs in got.values():
        assert obs.outcome is outcome, obs
        assert fragment in obs.message
        assert TOKEN not in obs.message
        assert "query=" not in obs.message
        assert len(obs.message) <= 600


def test_a_bug_is_not_disguised_as_an_outage() -> None:
    def fail(query: str, params: dict[str, Any]) -> Any:
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError, match="bug"):
        run(FakeClient(fail), {RouteKey("n/a"): spec({"route": "a"})})


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        (
            'HTTP Status Code 400 (b\'{"status":"error","errorType":"bad_data","error":"x"}\')',
            (400, "bad_data", "x"),
        ),
        ("HTTP Status Code 502 (b'<html>\\nbad gateway</html>')", (502, "", "<html>")),
        ("HTTP Status Code 500 (b'')", (500, "", "")),
        ("something else", (None, "", "something else")),
        ("HTTP Status Code 400 (" + repr(QUOTED) + ")", (400, "", 'quote"s')),
    ],
)
def test_parse_client_error(text: str, parsed: tuple[int | None, str, str]) -> None:
    assert parse_client_error(text) == parsed


# ---------------------------------------------------------------- batching behaviour


def test_a_rejected_batch_is_bisected_to_the_culprit() -> None:
    names = [f"r{i}" for i in range(16)]
    values = {n: str(i + 1) for i, n in enumerate(names)}

    def handler(query: str, params: dict[str, Any]) -> Any:
        if "r13" in routes_in(query):
            raise client_error(400, b'{"status":"error","errorType":"bad_data","error":"nope r13"}')
        return answering(values)(query, params)

    client = FakeClient(handler)
    got = run(client, {RouteKey(f"n/{n}"): spec({"route": n}) for n in names})
    assert got[RouteKey("n/r13")].outcome is Outcome.REJECTED
    assert "nope r13" in got[RouteKey("n/r13")].message
    for n in names:
        if n != "r13":
            assert got[RouteKey(f"n/{n}")].seconds == float(values[n])
    quantile_queries = [q for q in client.queries if q.startswith("histogram_quantile")]
    assert len(quantile_queries) == 1 + 2 * 4  # the batch, then two halves per level


def test_a_systematic_rejection_costs_two_extra_queries() -> None:
    def handler(query: str, params: dict[str, Any]) -> Any:
        raise client_error(400, b'{"status":"error","errorType":"bad_data","error":"all bad"}')

    client = FakeClient(handler)
    got = run(client, {RouteKey(f"n/{i}"): spec({"route": str(i)}) for i in range(64)})
    assert {o.outcome for o in got.values()} == {Outcome.REJECTED}
    assert len([q for q in client.queries if q.startswith("histogram_quantile")]) == 3


def test_concurrency_is_bounded() -> None:
    client = FakeClient(answering({}), delay=0.05)
    routes = {RouteKey(f"n/{i}"): spec({"route": str(i)}, window=f"{i + 1}m") for i in range(12)}
    run(client, routes, max_concurrency=3)
    assert len(client.queries) == 24  # 12 windows: 12 quantile + 12 coverage queries
    assert client.max_in_flight == 3


def refresh(observer: LatencyObserver) -> int:
    """What the engine does between passes."""

    async def go() -> int:
        return await observer.refresh_coverage()

    return asyncio.run(go())


def test_coverage_is_read_with_the_first_reading_then_refreshed_between_passes() -> None:
    now = [1000.0]
    bounds = {"a": ["10", "+Inf"]}
    client = FakeClient(answering({"a": "1"}, bounds))
    observer = LatencyObserver(settings(), client=client, clock=lambda: now[0])
    routes = {RouteKey("n/a"): spec({"route": "a"})}

    def coverage_queries() -> int:
        return sum(q.startswith("group by") for q in client.queries)

    # Unknown bounds come with the first reading.
    assert run(client, routes, observer=observer)[RouteKey("n/a")].top_bucket_seconds == 10.0
    assert coverage_queries() == 1
    assert refresh(observer) == 0  # nothing due
    # Refreshes are spread over [0.5, 1] x the 300 s period, stably per batch.
    now[0] += 149
    run(client, routes, observer=observer)
    assert refresh(observer) == 0
    assert coverage_queries() == 1
    now[0] += 152
    bounds["a"] = ["30", "+Inf"]  # the app's histogram gained a bucket
    # Due, but the cycle's answers do not wait for it: it is read between passes.
    assert run(client, routes, observer=observer)[RouteKey("n/a")].top_bucket_seconds == 10.0
    assert coverage_queries() == 1
    assert refresh(observer) == 1
    assert coverage_queries() == 2
    assert run(client, routes, observer=observer)[RouteKey("n/a")].top_bucket_seconds == 30.0
    assert refresh(observer) == 0  # read just now: not due again
    # A changed selector is a different histogram: read with its first reading.
    run(client, {RouteKey("n/a"): spec({"route": "a"}, window="1m")}, observer=observer)
    assert coverage_queries() == 3


def test_a_due_refresh_is_not_sent_beside_the_cycles_queries() -> None:
    """The cycle's one batched query is alone in flight, however many batches are due."""
    now = [0.0]
    client = FakeClient(answering({}), delay=0.02)
    observer = LatencyObserver(settings(), client=client, clock=lambda: now[0])
    routes = {RouteKey(f"n/{i}"): spec({"route": str(i)}, window=f"{i + 1}m") for i in range(4)}
    run(client, routes, observer=observer)
    sent = len(client.queries)
    now[0] = 1000.0
    run(client, routes, observer=observer)
    assert all(q.startswith("histogram_quantile") for q in client.queries[sent:])
    assert refresh(observer) == 4
    assert all(q.startswith("group by") for q in client.queries[sent + 4 :])


def test_failed_coverage_keeps_the_last_known_bounds(caplog: pytest.LogCaptureFixture) -> None:
    now = [1000.0]
    fail = [False]

    def handler(query: str, params: dict[str, Any]) -> Any:
        if fail[0] and query.startswith("group by"):
            raise requests.ConnectTimeout("connect timed out")
        return answering({"a": "1"}, {"a": ["120", "+Inf"]})(query, params)

    client = FakeClient(handler)
    observer = LatencyObserver(settings(), client=client, clock=lambda: now[0])
    routes = {RouteKey("n/a"): spec({"route": "a"})}
    run(client, routes, observer=observer)
    fail[0], now[0] = True, now[0] + 1000
    run(client, routes, observer=observer)
    with caplog.at_level("WARNING", logger="timeout_budget.observe.latency"):
        assert refresh(observer) == 0  # asked, and refused
    assert "not refreshed for 1 of 1 batches" in caplog.records[-1].getMessage()
    got = run(client, routes, observer=observer)[RouteKey("n/a")]
    assert got == LatencyObservation.value(1.0, top_bucket_seconds=120.0)
    assert refresh(observer) == 0  # still due: asked again, refused again
    assert sum(q.startswith("group by") for q in client.queries) == 3


def test_unknown_coverage_is_retried_sooner() -> None:
    now = [0.0]
    client = FakeClient(answering({}))
    observer = LatencyObserver(settings(), client=client, clock=lambda: now[0])
    routes = {RouteKey("n/a"): spec({"route": "a"})}
    run(client, routes, observer=observer)  # no series yet: bounds None
    now[0] = 59.0
    run(client, routes, observer=observer)
    assert refresh(observer) == 0
    now[0] = 61.0
    run(client, routes, observer=observer)
    assert refresh(observer) == 1
    assert sum(q.startswith("group by") for q in client.queries) == 2


# ---------------------------------------------------------------- settings and wiring


def test_real_client_wiring_carries_auth_and_tls() -> None:
    s = PrometheusSettings(
        "https://user:pw@prom.example:9091/prefix/",
        bearer_token=TOKEN,
        ca_file="/etc/ca.pem",
        client_cert_file="/c.pem",
        client_key_file="/k.pem",
        max_concurrency=16,
    )
    observer = LatencyObserver(s)
    client: Any = observer._client
    assert client.url == "https://user:pw@prom.example:9091/prefix"
    assert client.headers == {"Authorization": f"Bearer {TOKEN}"}
    session: Any = observer._session
    assert session.verify == "/etc/ca.pem"
    assert session.cert == ("/c.pem", "/k.pem")
    adapter = session.get_adapter("https://user:pw@prom.example:9091/prefix/api/v1/query")
    assert adapter._pool_maxsize == 16
    assert adapter.max_retries.total == 1
    observer.close()
    assert TOKEN not in repr(s)
    assert s.display_url == "https://prom.example:9091/prefix"
    assert set(s.secrets) == {TOKEN, "pw"}


def test_settings_from_env(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    s = PrometheusSettings.from_env(
        {
            "TBO_PROMETHEUS_URL": "https://prom:9090",
            "TBO_PROMETHEUS_BEARER_TOKEN_FILE": str(token_file),
            "TBO_PROMETHEUS_INSECURE_SKIP_VERIFY": "true",
            "TBO_PROMETHEUS_TIMEOUT_SECONDS": "2.5",
            "TBO_PROMETHEUS_MAX_CONCURRENCY": "8",
        }
    )
    assert s.bearer_token == TOKEN
    assert s.insecure_skip_verify is True
    assert s.timeout_seconds == 2.5
    assert s.max_concurrency == 8
    assert s.coverage_refresh_seconds == 300.0


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"url": "prom:9090"}, "http"),
        ({"url": "http://p", "ca_file": "/ca", "insecure_skip_verify": True}, "not both"),
        ({"url": "http://p", "client_cert_file": "/c"}, "both cert and key"),
        ({"url": "http://p", "timeout_seconds": 0}, "timeout"),
    ],
)
def test_settings_refused(kwargs: dict[str, Any], reason: str) -> None:
    with pytest.raises(SettingsError, match=reason):
        PrometheusSettings(**kwargs)
    with pytest.raises(SettingsError, match="URL is not set"):
        PrometheusSettings.from_env({})


def test_nan_is_never_a_number_downstream() -> None:
    got = run(FakeClient(answering({"a": "NaN"})), {RouteKey("n/a"): spec({"route": "a"})})
    obs = got[RouteKey("n/a")]
    assert obs.seconds is None
    assert not obs.has_value
    assert not math.isnan(obs.top_bucket_seconds or 0.0)


def test_one_observer_serves_successive_event_loops() -> None:
    client = FakeClient(answering({}), delay=0.01)
    observer = LatencyObserver(settings(max_concurrency=1), client=client)
    routes = {RouteKey(f"n/{i}"): spec({"route": str(i)}, window=f"{i + 1}m") for i in range(4)}
    for _ in range(2):  # the semaphore must not stay bound to the first loop
        run(client, routes, observer=observer)
    assert client.max_in_flight == 1


def test_failed_coverage_is_logged_once_per_cycle(caplog: pytest.LogCaptureFixture) -> None:
    def fail(query: str, params: dict[str, Any]) -> Any:
        raise _refused()

    routes = {RouteKey(f"n/{i}"): spec({"route": str(i)}, window=f"{i + 1}m") for i in range(5)}
    with caplog.at_level("WARNING", logger="timeout_budget.observe.latency"):
        run(FakeClient(fail), routes)
    (record,) = caplog.records
    assert "not refreshed for 5 of 5 batches" in record.getMessage()
    assert TOKEN not in record.getMessage()


def test_the_plan_is_reused_while_every_spec_is_the_same_object(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from timeout_budget.observe import latency as latency_module

    plans: list[int] = []
    real_plan = latency_module.plan_queries

    def counting(*args: Any, **kwargs: Any) -> Any:
        plans.append(1)
        return real_plan(*args, **kwargs)

    monkeypatch.setattr(latency_module, "plan_queries", counting)
    client = FakeClient(answering({"a": "1", "b": "2"}, {"a": ["10", "+Inf"], "b": ["10"]}))
    observer = LatencyObserver(settings(), client=client)
    a, b = RouteKey("n/a"), RouteKey("n/b")
    routes = {a: spec({"route": "a"}), b: spec({"route": "b"})}
    first = run(client, routes, observer=observer)
    assert run(client, dict(routes), observer=observer) == first
    assert len(plans) == 1  # same spec objects: planned once
    # An equal but new spec object (a new generation): planned again, answers unchanged.
    assert run(client, {a: spec({"route": "a"}), b: routes[b]}, observer=observer) == first
    assert len(plans) == 2
    # A route gone: planned again, and only the other one is asked for.
    assert set(run(client, {b: routes[b]}, observer=observer)) == {b}
    assert len(plans) == 3
    changed = run(client, {b: routes[b], a: spec({"route": "a"}, window="1m")}, observer=observer)
    assert len(plans) == 4
    assert changed[a].value == first[a].value


# --- Fleet-scale backends: partial answers, limits, tenants, form bodies --------------


def test_an_answer_with_warnings_is_partial_data_with_the_backends_words() -> None:
    warning = "No StoreAPIs matched for this query: store 127.0.0.1:10901 is down"

    def handler(query: str, params: dict[str, Any]) -> Any:
        return Answer(answering({"a": "100", "b": "NaN"})(query, params), (warning,))

    got = run(
        FakeClient(handler),
        {RouteKey("n/a"): spec({"route": "a"}), RouteKey("n/b"): spec({"route": "b"})},
    )
    a, b = got[RouteKey("n/a")], got[RouteKey("n/b")]
    assert (a.outcome, a.seconds) == (Outcome.PARTIAL, 100.0)
    assert warning in a.message
    assert (b.outcome, b.seconds) == (Outcome.PARTIAL, None)  # NaN stays no value


def test_victoriametrics_is_partial_is_partial_data() -> None:
    def handler(query: str, params: dict[str, Any]) -> Any:
        return Answer(answering({"a": "3"})(query, params), (), partial=True)

    (got,) = run(FakeClient(handler), {RouteKey("n/a"): spec({"route": "a"})}).values()
    assert got.outcome is Outcome.PARTIAL
    assert "isPartial" in got.message


def test_a_prometheus_info_annotation_is_not_missing_data() -> None:
    info = 'PromQL info: metric might not be a counter, name does not end in _total: "x"'

    def handler(query: str, params: dict[str, Any]) -> Any:
        return Answer(answering({"a": "3"})(query, params), (info,))

    (got,) = run(FakeClient(handler), {RouteKey("n/a"): spec({"route": "a"})}).values()
    assert got.outcome is Outcome.VALUE


def test_whole_answers_are_asked_for_unless_allowed_and_the_time_can_lag() -> None:
    client = FakeClient(answering({"a": "1"}))
    run(client, {RouteKey("n/a"): spec({"route": "a"})})
    assert client.params[0]["partial_response"] == "false"  # Thanos
    assert client.params[0]["deny_partial_response"] == "1"  # VictoriaMetrics cluster
    allowing = FakeClient(answering({"a": "1"}))
    run(allowing, {RouteKey("n/a"): spec({"route": "a"})}, partial_response="allow")
    assert "partial_response" not in allowing.params[0]
    lagging = FakeClient(answering({"a": "1"}))
    before = time.time()
    run(lagging, {RouteKey("n/a"): spec({"route": "a"})}, at=None, evaluation_delay_seconds=30)
    assert before - 31 <= float(lagging.params[0]["time"]) <= time.time() - 29


def test_a_refusal_for_the_backends_limits_is_split_until_it_fits() -> None:
    names = [f"r{i}" for i in range(8)]
    values = {n: str(i + 1) for i, n in enumerate(names)}
    limit = (
        b'{"status":"error","errorType":"execution","error":"the query exceeded the maximum '
        b'number of series (limit: 2 series) (err-mimir-max-series-per-query)"}'
    )

    def handler(query: str, params: dict[str, Any]) -> Any:
        if query.startswith("histogram_quantile") and len(routes_in(query)) > 2:
            raise client_error(422, limit)
        return answering(values)(query, params)

    client = FakeClient(handler)
    got = run(client, {RouteKey(f"n/{n}"): spec({"route": n}) for n in names})
    assert {n: o.seconds for n, o in got.items()} == {
        RouteKey(f"n/{n}"): float(v) for n, v in values.items()
    }
    sizes = [len(routes_in(q)) for q in client.queries if q.startswith("histogram_quantile")]
    assert sorted(sizes) == [2, 2, 2, 2, 4, 4, 8]  # 8 refused, both 4s refused, 2s fit


def test_settings_for_fleet_backends_from_env(tmp_path: Path) -> None:
    headers = tmp_path / "headers"
    headers.write_text("# from a Secret\nX-Api-Key: k-123456\n\nX-Extra: yes\n")
    password = tmp_path / "password"
    password.write_text("s3cret-pw\n")
    s = PrometheusSettings.from_env(
        {
            "TBO_PROMETHEUS_URL": "https://mimir:8080/prometheus",
            "TBO_PROMETHEUS_TENANT": "team-a",
            "TBO_PROMETHEUS_HEADERS_FILE": str(headers),
            "TBO_PROMETHEUS_BASIC_AUTH_USERNAME": "tbo",
            "TBO_PROMETHEUS_BASIC_AUTH_PASSWORD_FILE": str(password),
            "TBO_PROMETHEUS_EVALUATION_DELAY_SECONDS": "30",
        }
    )
    assert s.request_headers == {
        "X-Api-Key": "k-123456",
        "X-Extra": "yes",
        "X-Scope-OrgID": "team-a",
    }
    assert s.basic_auth == ("tbo", "s3cret-pw")
    assert (s.method, s.query_length, s.evaluation_delay_seconds) == ("POST", 128_000, 30.0)
    assert "k-123456" not in repr(s)
    assert "s3cret-pw" not in repr(s)
    assert {"k-123456", "s3cret-pw"} <= set(s.secrets)
    observer = LatencyObserver(s)
    client: Any = observer._client
    assert client.headers["X-Scope-OrgID"] == "team-a"
    assert client.auth == ("tbo", "s3cret-pw")
    observer.close()
    get = PrometheusSettings("http://p:9090", method="GET")
    assert get.query_length == 8000  # in the URL: under common 8 KiB request lines


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"TBO_PROMETHEUS_METHOD": "PUT"}, "GET or POST"),
        ({"TBO_PROMETHEUS_PARTIAL_RESPONSE": "maybe"}, "deny or allow"),
        ({"TBO_PROMETHEUS_TENANT_HEADER": "X Scope"}, "header name"),
        ({"TBO_PROMETHEUS_BASIC_AUTH_USERNAME": "u"}, "needs both"),
        ({"TBO_PROMETHEUS_HEADERS_FILE": "/nonexistent/h"}, "cannot be read"),
        ({"TBO_PROMETHEUS_EVALUATION_DELAY_SECONDS": "9999"}, "between 0 and 600"),
    ],
)
def test_fleet_settings_refused_with_a_reason(env: dict[str, str], reason: str) -> None:
    with pytest.raises(SettingsError, match=reason):
        PrometheusSettings.from_env({"TBO_PROMETHEUS_URL": "http://p:9090", **env})


def test_a_bad_headers_line_is_named_by_number_not_content(tmp_path: Path) -> None:
    headers = tmp_path / "headers"
    headers.write_text("X-Ok: 1\nsecret-without-colon\n")
    with pytest.raises(SettingsError) as refused:
        PrometheusSettings.from_env(
            {"TBO_PROMETHEUS_URL": "http://p:9090", "TBO_PROMETHEUS_HEADERS_FILE": str(headers)}
        )
    assert "line 2" in str(refused.value)
    assert "secret-without-colon" not in str(refused.value)
