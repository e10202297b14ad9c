"""Every route's latency quantile from Prometheus, batched, with honest outcomes.

The observe step of the loop must read P95 for up to 10,000 routes inside a 15 s cycle,
without blocking kopf's event loop and without ever turning missing data into a number.
``LatencyObserver`` plans the fewest safe queries (``promql.planning.plan_queries``), runs them
through ``prometheus_api_client.PrometheusConnect`` in worker threads (one pooled HTTP
session, bounded concurrency, timeouts, a short retry policy), and gives each route one
``LatencyObservation``:

* ``VALUE``: a finite quantile;
* ``NO_DATA``: NaN (no requests in the window) or no series at all; never 0;
* ``UNAVAILABLE``: Prometheus unreachable, timing out, or answering an error status that
  is not about the query (401/403, 5xx, ...), with the reason;
* ``REJECTED``: Prometheus refused the query (400 ``bad_data``, 422 ``execution``), with
  Prometheus' own message; for a batched query the batch is bisected so only the culprit
  routes carry it;
* ``INVALID``: the operator refused to build the selector; nothing was sent.

Each observation carries the largest finite ``le`` bound seen for the route's histogram
(``top_bucket_seconds``), refreshed at most every ``coverage_refresh_seconds``, so the
decide step can flag buckets too coarse for the budget (``decide.conditions.buckets_cover_budget``).
No message ever contains the bearer token or a URL password.
"""

from __future__ import annotations

import ast
import asyncio
import json
import logging
import math
import re
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

import requests
from prometheus_api_client.exceptions import PrometheusApiClientException
from prometheus_api_client.prometheus_connect import PrometheusConnect
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

from timeout_budget.model.observation import LatencyObservation, Outcome
from timeout_budget.model.spec import Latency, RouteKey, TimeoutBudgetSpec
from timeout_budget.observe.promql.answers import ResultError, map_override
from timeout_budget.observe.promql.planning import (
    BatchQuery,
    OverrideQuery,
    QueryPlan,
    plan_queries,
)
from timeout_budget.observe.promql.selection import RouteSelector
from timeout_budget.observe.settings import PrometheusSettings

log = logging.getLogger(__name__)

MAX_MESSAGE_LENGTH = 600
RETRY_STATUSES = (502, 503, 504)
# 422 "execution" errors that are about Prometheus' capacity, not about the query's text.
_CAPACITY_ERRORS = ("too many samples", "query timed out", "context deadline exceeded")
_CLIENT_ERROR_RE = re.compile(r"^HTTP Status Code (\d+) \((b(['\"]).*\3)\)$", re.DOTALL)
_OBJECT_REPR_RE = re.compile(r"<[^<>]* object at 0x[0-9a-f]+>:?\s*")


class PromClient(Protocol):
    """The part of ``PrometheusConnect`` the observer uses (a fake can stand in for tests)."""

    def custom_query(self, query: str, params: dict[Any, Any] = ...) -> Any: ...

    def close(self) -> None: ...


class QueryFailed(Exception):
    """A query did not produce a result; ``observation`` says how, for every route it served."""

    def __init__(self, observation: LatencyObservation) -> None:
        super().__init__(observation.message)
        self.observation = observation


@dataclass(frozen=True)
class _Coverage:
    selector: RouteSelector
    top_bucket_seconds: float | None
    fetched_at: float


class LatencyObserver:
    """Reads every route's latency quantile from one Prometheus.

    Create one per operator process and reuse it: it keeps one HTTP connection pool and the
    per-route bucket-coverage cache. ``close()`` (or ``async with``) releases the pool.
    """

    def __init__(
        self,
        settings: PrometheusSettings,
        client: PromClient | None = None,
        clock: Any = time.monotonic,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._session: requests.Session | None = None
        self._client: PromClient = client if client is not None else self._connect(settings)
        self._limits: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}
        self._coverage: dict[RouteKey, _Coverage] = {}
        self._last_plan: tuple[dict[RouteKey, Latency], QueryPlan] | None = None
        self.queries_sent = 0
        """HTTP queries sent so far (for benchmarks and metrics)."""
        self.answered_in = 0.0
        """Seconds from the last observation's start to Prometheus' last answer: the
        Prometheus time alone, without what the caller did with the parts meanwhile."""

    def _connect(self, settings: PrometheusSettings) -> PromClient:
        session = requests.Session()
        session.verify = settings.ca_file or not settings.insecure_skip_verify
        if settings.client_cert_file and settings.client_key_file:
            session.cert = (settings.client_cert_file, settings.client_key_file)
        # Retry refused connections and gateway errors once, quickly; never a read timeout
        # (the query already took timeout_seconds). raise_on_status=False keeps the last
        # response, so the error body reaches the message.
        retry = Retry(
            total=settings.retries,
            connect=settings.retries,
            read=0,
            status=settings.retries,
            other=0,
            backoff_factor=0.2,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET", "POST"}),
            raise_on_status=False,
        )
        headers = (
            {"Authorization": f"Bearer {settings.bearer_token}"} if settings.bearer_token else {}
        )
        client = PrometheusConnect(
            url=settings.base_url,
            headers=headers,
            session=session,
            retry=retry,
            # requests takes float seconds; the library annotates int, narrower than it uses.
            timeout=settings.timeout_seconds,  # type: ignore[arg-type]
        )
        # Replace the adapter PrometheusConnect mounted: same retry, a pool as large as the
        # concurrency so worker threads reuse connections instead of opening new ones.
        pool = max(10, settings.max_concurrency)
        session.mount(
            settings.base_url,
            HTTPAdapter(max_retries=retry, pool_connections=1, pool_maxsize=pool),
        )
        self._session = session
        return client

    async def __aenter__(self) -> LatencyObserver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    # ------------------------------------------------------------------ public API

    async def observe(
        self, routes: Mapping[RouteKey, TimeoutBudgetSpec], at: float | None = None
    ) -> dict[RouteKey, LatencyObservation]:
        """One observation per route, evaluated at ``at`` (Unix seconds) or now.

        All batched quantile queries, overrides and due coverage queries run concurrently,
        at most ``max_concurrency`` at a time.
        """
        out: dict[RouteKey, LatencyObservation] = {}
        async for part in self.observe_parts(routes, at):
            out.update(part)
        return out

    async def observe_parts(
        self, routes: Mapping[RouteKey, TimeoutBudgetSpec], at: float | None = None
    ) -> AsyncIterator[dict[RouteKey, LatencyObservation]]:
        """``observe``, answered batch by batch as Prometheus answers: the caller decides
        the first routes while the other queries still run. Every route is in exactly one
        part. A batch whose bucket coverage is due comes with its coverage refreshed.
        Leaving the iteration early cancels the queries still running."""
        latencies = {key: spec.latency for key, spec in routes.items()}
        plan = self._reusable_plan(latencies)
        if plan is None:
            # Planning 10,000 routes takes a few hundred ms of CPU: off the event loop.
            plan = await asyncio.to_thread(plan_queries, latencies, self.settings.max_query_length)
            self._last_plan = (latencies, plan)
        if plan.invalid:
            yield {key: LatencyObservation.invalid(msg) for key, msg in plan.invalid.items()}
        stale = {id(batch) for batch in self._stale_coverage(plan)}
        started = time.monotonic()
        answered: list[float] = []

        async def timed(
            work: Awaitable[tuple[dict[RouteKey, LatencyObservation], QueryFailed | None]],
        ) -> tuple[dict[RouteKey, LatencyObservation], QueryFailed | None]:
            result = await work
            answered.append(time.monotonic())
            return result

        tasks = [
            asyncio.ensure_future(timed(self._batch(batch, id(batch) in stale, plan, at)))
            for batch in plan.batches
        ]
        tasks.extend(
            asyncio.ensure_future(timed(self._override_part(o, at))) for o in plan.overrides
        )
        failures: list[QueryFailed] = []
        try:
            for next_done in asyncio.as_completed(tasks):
                part, failed = await next_done
                if failed is not None:
                    failures.append(failed)
                yield part
        finally:
            for task in tasks:
                task.cancel()
        self.answered_in = max(answered, default=started) - started
        if failures:
            # Coverage is advisory: keep the last known bounds, retry next cycle, log once.
            log.warning(
                "bucket coverage not refreshed for %d of %d batches: %s",
                len(failures),
                len(stale),
                failures[0].observation.message,
            )
        for key in list(self._coverage):
            if key not in plan.selectors:
                del self._coverage[key]

    async def _batch(
        self, batch: BatchQuery, refresh_coverage: bool, plan: QueryPlan, at: float | None
    ) -> tuple[dict[RouteKey, LatencyObservation], QueryFailed | None]:
        """One batch's observations, and its coverage failure if its refresh failed."""
        if refresh_coverage:
            values, coverage = await asyncio.gather(
                self._batch_quantiles(batch, at), self._batch_coverage(batch, at)
            )
        else:
            values, coverage = await self._batch_quantiles(batch, at), {}
        if not isinstance(coverage, QueryFailed):
            now = self._clock()
            for key, top in coverage.items():
                self._coverage[key] = _Coverage(plan.selectors[key], top, now)
        part = {
            key: self._to_observation(batch, key, raw, plan.selectors[key])
            for key, raw in values.items()
        }
        return part, coverage if isinstance(coverage, QueryFailed) else None

    async def _override_part(
        self, override: OverrideQuery, at: float | None
    ) -> tuple[dict[RouteKey, LatencyObservation], None]:
        return {override.route: await self._override(override, at)}, None

    def _limit(self) -> asyncio.Semaphore:
        """The concurrency bound of the running event loop (asyncio primitives bind to one)."""
        loop = asyncio.get_running_loop()
        limit = self._limits.get(loop)
        if limit is None:
            self._limits = {loop: asyncio.Semaphore(self.settings.max_concurrency)}
            limit = self._limits[loop]
        return limit

    async def _query(
        self, promql: str, at: float | None, parse: Callable[[Any], Any] | None = None
    ) -> Any:
        """Run one query in a worker thread; ``parse`` (mapping the result) runs there too."""
        params: dict[str, Any] = {"timeout": f"{self.settings.timeout_seconds:g}"}
        if at is not None:
            params["time"] = f"{at:.3f}"

        def call() -> Any:
            result = self._client.custom_query(promql, params)
            return parse(result) if parse is not None else result

        async with self._limit():
            self.queries_sent += 1
            try:
                return await asyncio.to_thread(call)
            except Exception as exc:
                raise QueryFailed(self._failure(exc)) from None

    async def _batch_quantiles(
        self, batch: BatchQuery, at: float | None
    ) -> dict[RouteKey, float | LatencyObservation | None]:
        try:
            mapped: dict[RouteKey, float | None] = await self._query(
                batch.promql, at, batch.map_quantiles
            )
            return dict(mapped)
        except QueryFailed as failed:
            if failed.observation.outcome is Outcome.REJECTED and len(batch.members) > 1:
                return await self._bisect(batch, at)
            return dict.fromkeys(batch.route_keys, failed.observation)

    async def _bisect(
        self, batch: BatchQuery, at: float | None
    ) -> dict[RouteKey, float | LatencyObservation | None]:
        """Prometheus refused a whole batch: find the members it refuses.

        Halves are queried; a refused half is split further only while its sibling passed
        (one culprit), so a refusal that hits everyone costs two extra queries, not 2n.
        """
        halves = batch.split()

        async def attempt(half: BatchQuery) -> dict[RouteKey, float | None] | QueryFailed:
            try:
                mapped: dict[RouteKey, float | None] = await self._query(
                    half.promql, at, half.map_quantiles
                )
            except QueryFailed as failed:
                return failed
            return mapped

        results = await asyncio.gather(*(attempt(half) for half in halves))
        out: dict[RouteKey, float | LatencyObservation | None] = {}
        both_failed = all(isinstance(r, QueryFailed) for r in results)
        for half, result in zip(halves, results, strict=True):
            if not isinstance(result, QueryFailed):
                out.update(result)
            elif (
                not both_failed
                and result.observation.outcome is Outcome.REJECTED
                and len(half.members) > 1
            ):
                out.update(await self._bisect(half, at))
            else:
                out.update(dict.fromkeys(half.route_keys, result.observation))
        return out

    async def _batch_coverage(
        self, batch: BatchQuery, at: float | None
    ) -> dict[RouteKey, float | None] | QueryFailed:
        try:
            mapped: dict[RouteKey, float | None] = await self._query(
                batch.coverage_promql, at, batch.map_coverage
            )
        except QueryFailed as failed:
            return failed
        return mapped

    async def _override(self, override: OverrideQuery, at: float | None) -> LatencyObservation:
        try:
            result = await self._query(override.promql, at)
        except QueryFailed as failed:
            return failed.observation
        try:
            value = map_override(result)
        except ResultError as exc:
            return LatencyObservation.rejected(self._scrub(str(exc)))
        if value is None:
            return LatencyObservation.no_data("latency.query returned no series")
        if math.isnan(value):
            return LatencyObservation.no_data("latency.query returned NaN (no requests?)")
        if math.isinf(value):
            return LatencyObservation.no_data(f"latency.query returned {value}")
        return LatencyObservation.value(value)

    # ------------------------------------------------------------------ coverage cache

    def _reusable_plan(self, latencies: Mapping[RouteKey, Latency]) -> QueryPlan | None:
        """The last cycle's plan, when the routes are the same and each route's latency spec
        is the very object planned then (specs are parsed once per generation, so an
        unchanged route hands over the same object; a changed one, a new object)."""
        if self._last_plan is None:
            return None
        planned, plan = self._last_plan
        if len(planned) != len(latencies):
            return None
        for key, latency in latencies.items():
            if planned.get(key) is not latency:
                return None
        return plan

    def _stale_coverage(self, plan: QueryPlan) -> list[BatchQuery]:
        """Batches with at least one route whose bucket bounds are unknown or due."""
        now = self._clock()
        stale: list[BatchQuery] = []
        for batch in plan.batches:
            # Spread refreshes over [0.5, 1] x the period, stably per batch, so 10,000 routes'
            # coverage does not all come due in the same cycle.
            spread = 0.5 + 0.5 * zlib.crc32(batch.route_keys[0].encode()) / 2**32
            refresh = self.settings.coverage_refresh_seconds * spread
            # A route with no series yet is retried sooner: it may start receiving traffic.
            refresh_unknown = min(refresh, 60.0)
            for key in batch.route_keys:
                entry = self._coverage.get(key)
                if (
                    entry is None
                    or entry.selector != plan.selectors[key]
                    or now - entry.fetched_at
                    >= (refresh if entry.top_bucket_seconds is not None else refresh_unknown)
                ):
                    stale.append(batch)
                    break
        return stale

    def top_bucket_seconds(self, key: RouteKey) -> float | None:
        entry = self._coverage.get(key)
        return entry.top_bucket_seconds if entry else None

    # ------------------------------------------------------------------ outcomes

    def _to_observation(
        self,
        batch: BatchQuery,
        key: RouteKey,
        raw: float | LatencyObservation | None,
        selector: RouteSelector,
    ) -> LatencyObservation:
        entry = self._coverage.get(key)
        top = entry.top_bucket_seconds if entry and entry.selector == selector else None
        if isinstance(raw, LatencyObservation):
            return replace(raw, top_bucket_seconds=top)
        window = batch.key.window
        if raw is None:
            own = BatchQuery(batch.key, ((selector.values, (key,)),)).selector
            message = f"no series match {own} in the last {window}"
            return LatencyObservation(Outcome.NO_DATA, message=message, top_bucket_seconds=top)
        if math.isnan(raw):
            message = f"no requests in the last {window} (histogram_quantile is NaN)"
            return LatencyObservation(Outcome.NO_DATA, message=message, top_bucket_seconds=top)
        if math.isinf(raw):
            message = "the histogram has no finite buckets to interpolate in"
            return LatencyObservation(Outcome.NO_DATA, message=message, top_bucket_seconds=top)
        return LatencyObservation.value(raw, top_bucket_seconds=top)

    @property
    def _where(self) -> str:
        return self.settings.display_url

    def _failure(self, exc: BaseException) -> LatencyObservation:
        """Classify an exception from a query into REJECTED or UNAVAILABLE, with a message."""
        if isinstance(exc, PrometheusApiClientException):
            status, error_type, error = parse_client_error(str(exc))
            capacity = any(s in error.lower() for s in _CAPACITY_ERRORS)
            if status in (400, 422) and error_type in ("bad_data", "execution") and not capacity:
                return LatencyObservation.rejected(
                    self._scrub(f"Prometheus rejected the query ({error_type}): {error}")
                )
            detail = f" ({error_type}): {error}" if error_type else f": {error}" if error else ""
            return LatencyObservation.unavailable(
                self._scrub(f"Prometheus at {self._where} answered HTTP {status}{detail}")
            )
        if isinstance(exc, requests.Timeout) or _read_timed_out(exc):
            return LatencyObservation.unavailable(
                self._scrub(
                    f"Prometheus at {self._where} did not answer within "
                    f"{self.settings.timeout_seconds:g}s: {_reason(exc)}"
                )
            )
        if isinstance(exc, requests.ConnectionError):
            return LatencyObservation.unavailable(
                self._scrub(f"cannot reach Prometheus at {self._where}: {_reason(exc)}")
            )
        if isinstance(exc, requests.RequestException | KeyError | ValueError):
            return LatencyObservation.unavailable(
                self._scrub(
                    f"unexpected answer from Prometheus at {self._where}: "
                    f"{type(exc).__name__}: {_reason(exc)}"
                )
            )
        # Anything else is a bug here, not Prometheus' state: let it surface.
        raise exc

    def _scrub(self, message: str) -> str:
        for secret in self.settings.secrets:
            message = message.replace(secret, "***")
        if len(message) > MAX_MESSAGE_LENGTH:
            message = message[: MAX_MESSAGE_LENGTH - 3] + "..."
        return message


def parse_client_error(text: str) -> tuple[int | None, str, str]:
    """``(status, errorType, error)`` from ``PrometheusApiClientException``'s text.

    prometheus-api-client 0.7.2 raises ``"HTTP Status Code <n> (<repr of body bytes>)"``;
    Prometheus' body is ``{"status":"error","errorType":...,"error":...}``, a proxy's may be
    anything (its first line is kept).
    """
    match = _CLIENT_ERROR_RE.match(text)
    if not match:
        return None, "", text
    status = int(match.group(1))
    try:
        body = ast.literal_eval(match.group(2))
    except (ValueError, SyntaxError):
        return status, "", ""
    if not isinstance(body, bytes):
        return status, "", ""
    decoded = body.decode("utf-8", errors="replace")
    try:
        payload = json.loads(decoded)
    except ValueError:
        return status, "", decoded.strip().splitlines()[0] if decoded.strip() else ""
    if not isinstance(payload, dict):
        return status, "", decoded.strip()
    return status, str(payload.get("errorType", "")), str(payload.get("error", ""))


def _read_timed_out(exc: BaseException) -> bool:
    """With read retries off, urllib3 wraps a read timeout in ``MaxRetryError``, which
    requests raises as ``ConnectionError``: Prometheus was reached and was slow."""
    inner = exc.args[0] if isinstance(exc, requests.ConnectionError) and exc.args else None
    return isinstance(getattr(inner, "reason", None), ReadTimeoutError)


def _reason(exc: BaseException) -> str:
    """The innermost readable cause ("Connection refused", "Read timed out"), no URLs."""
    cause: object = exc
    for _ in range(5):
        args = getattr(cause, "args", ())
        inner = getattr(cause, "reason", None) or (args[0] if args else None)
        if inner is None or inner is cause or isinstance(inner, str):
            break
        cause = inner
    text = str(cause)
    text = _OBJECT_REPR_RE.sub("", text)
    # urllib3 puts the full request URL (the query) in pool errors: keep the reason only.
    text = re.sub(r"\w+\(host=[^)]*\): ", "", text)
    caused = re.search(r"Max retries exceeded with url: \S+ \(Caused by (.*)\)$", text, re.DOTALL)
    if caused:
        text = caused.group(1)
    return text or type(exc).__name__
