"""Every route's latency quantile from Prometheus, batched, with honest outcomes.

The observe step of the loop must read P95 for up to 10,000 routes inside a 15 s cycle,
without blocking kopf's event loop and without ever turning missing data into a number.
``LatencyObserver`` plans the fewest safe queries (``promql.planning.plan_queries``), runs
them through ``prometheus_api_client.PrometheusConnect`` in worker threads (one pooled HTTP
session, ``prometheus_session``; bounded concurrency, timeouts, a short retry policy), and
gives each route one ``LatencyObservation`` (a failed query classified by
``query_failures``):

* ``VALUE``: a finite quantile;
* ``NO_DATA``: NaN (no requests in the window) or no series at all; never 0;
* ``UNAVAILABLE``: Prometheus unreachable, timing out, or answering an error status that
  is not about the query (401/403, 5xx, ...), with the reason;
* ``REJECTED``: Prometheus refused the query (400 ``bad_data``, 422 ``execution``), with
  Prometheus' own message; for a batched query the batch is bisected so only the culprit
  routes carry it;
* ``INVALID``: the operator refused to build the selector; nothing was sent.

Each observation carries the largest finite ``le`` bound seen for the route's histogram
(``top_bucket_seconds``), so the decide step can flag buckets too coarse for the budget
(``decide.conditions.buckets_cover_budget``). A route's bounds are read with its first
reading (and again when its selector changes); after that they come due every
``coverage_refresh_seconds`` and are read between passes (``refresh_coverage``), so a
refresh never holds a cycle's answers.
No message ever contains the bearer token or a URL password.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import zlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import requests

from timeout_budget.model.observation import LatencyObservation, Outcome
from timeout_budget.model.spec import Latency, RouteKey, TimeoutBudgetSpec
from timeout_budget.model.timestamps import Clock
from timeout_budget.observe.prometheus_session import PromClient, connect
from timeout_budget.observe.promql.answers import ResultError, map_override
from timeout_budget.observe.promql.planning import (
    BatchQuery,
    OverrideQuery,
    QueryPlan,
    plan_queries,
)
from timeout_budget.observe.promql.selection import RouteSelector
from timeout_budget.observe.query_failures import QueryFailed, classify_failure, scrub
from timeout_budget.observe.settings import PrometheusSettings

log = logging.getLogger(__name__)


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
        clock: Clock = time.monotonic,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._session: requests.Session | None = None
        if client is None:
            client, self._session = connect(settings)
        self._client: PromClient = client
        self._limits: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}
        self._coverage: dict[RouteKey, _Coverage] = {}
        self._last_plan: tuple[dict[RouteKey, Latency], QueryPlan] | None = None
        self._due: tuple[list[BatchQuery], QueryPlan] | None = None
        """The last observation's batches whose known bounds came due, and its plan, for
        ``refresh_coverage``."""
        self.queries_sent = 0
        """HTTP queries sent so far (for benchmarks and metrics)."""
        self.answered_in = 0.0
        """Seconds from the last observation's start to its last part being ready in the
        event loop: Prometheus' time, plus any wait for the loop the caller kept busy."""
        self.received_in = 0.0
        """Seconds from the last observation's start to its last answer read and parsed in
        its worker thread: Prometheus' time without the event loop's."""
        self.sent_by = 0.0
        """Seconds from the last observation's start until its last query was sent (the
        concurrency bound and the worker threads' queue)."""
        self._thread_times: list[tuple[float, float]] = []

    @property
    def last_plan(self) -> QueryPlan | None:
        """The plan of the last observation (the benchmark reads its queries' text)."""
        return self._last_plan[1] if self._last_plan is not None else None

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

        All batched quantile queries, overrides and the coverage queries of routes whose
        bounds are unknown run concurrently, at most ``max_concurrency`` at a time.
        """
        out: dict[RouteKey, LatencyObservation] = {}
        async for part in self.observe_parts(routes, at):
            out.update(part)
        return out

    async def observe_parts(
        self, routes: Mapping[RouteKey, TimeoutBudgetSpec], at: float | None = None
    ) -> AsyncGenerator[dict[RouteKey, LatencyObservation], None]:
        """``observe``, answered batch by batch as Prometheus answers: the caller decides
        the first routes while the other queries still run. Every route is in exactly one
        part. A batch with a route whose bucket bounds are unknown comes with them; one
        whose bounds are only due is left for ``refresh_coverage``. Leaving the iteration
        early cancels the queries still running."""
        latencies = {key: spec.latency for key, spec in routes.items()}
        plan = self._reusable_plan(latencies)
        if plan is None:
            # Planning 10,000 routes takes a few hundred ms of CPU: off the event loop.
            plan = await asyncio.to_thread(
                plan_queries,
                latencies,
                self.settings.query_length,
                self.settings.max_concurrency,
            )
            self._last_plan = (latencies, plan)
        if plan.invalid:
            yield {key: LatencyObservation.invalid(msg) for key, msg in plan.invalid.items()}
        unknown, due = self._stale_coverage(plan)
        stale = {id(batch) for batch in unknown}
        self._due = (due, plan)
        started = time.monotonic()
        answered: list[float] = []
        times: list[tuple[float, float]] = []
        self._thread_times = times

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
        self.sent_by = max((sent for sent, _ in times), default=started) - started
        self.received_in = max((done for _, done in times), default=started) - started
        _log_coverage_failures(failures, len(stale))
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
        self._remember_coverage(coverage, plan)
        part = {
            key: self._to_observation(batch, key, raw, plan.selectors[key])
            for key, raw in values.items()
        }
        return part, coverage if isinstance(coverage, QueryFailed) else None

    def refresh_coverage(self) -> Awaitable[int]:
        """Read the bucket bounds that came due in the last observation (between passes:
        the engine runs this after each pass, not beside its queries); how many batches
        were refreshed. A failure keeps the last known bounds, retried when next due."""
        due, self._due = self._due, None  # taken now: a later observation sets its own
        return self._refresh(due)

    async def _refresh(self, taken: tuple[list[BatchQuery], QueryPlan] | None) -> int:
        if taken is None:
            return 0
        due, plan = taken
        results = await asyncio.gather(*(self._batch_coverage(batch, None) for batch in due))
        failures = [coverage for coverage in results if isinstance(coverage, QueryFailed)]
        for coverage in results:
            self._remember_coverage(coverage, plan)
        _log_coverage_failures(failures, len(due))
        return len(due) - len(failures)

    def _remember_coverage(
        self, coverage: Mapping[RouteKey, float | None] | QueryFailed, plan: QueryPlan
    ) -> None:
        if isinstance(coverage, QueryFailed):
            return
        now = self._clock()
        for key, top in coverage.items():
            self._coverage[key] = _Coverage(plan.selectors[key], top, now)

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
    ) -> tuple[Any, str | None]:
        """Run one query in a worker thread (``parse``, mapping the result, runs there
        too): the result, and why the answer may miss data (``None``: it is whole)."""
        params = {"timeout": f"{self.settings.timeout_seconds:g}", **self.settings.query_params}
        delay = self.settings.evaluation_delay_seconds
        when = at if at is not None else (time.time() - delay if delay else None)
        if when is not None:
            params["time"] = f"{when:.3f}"

        times = self._thread_times

        def call() -> tuple[Any, str | None]:
            sent = time.monotonic()
            answer = self._client.query(promql, params)
            result = parse(answer.result) if parse is not None else answer.result
            times.append((sent, time.monotonic()))
            return result, answer.incomplete

        async with self._limit():
            self.queries_sent += 1
            try:
                return await asyncio.to_thread(call)
            except Exception as exc:
                raise QueryFailed.of(classify_failure(exc, self.settings)) from None

    def _partial(self, why: str) -> str:
        return scrub(why, self.settings)

    async def _batch_quantiles(
        self, batch: BatchQuery, at: float | None
    ) -> dict[RouteKey, float | LatencyObservation | None]:
        try:
            mapped, incomplete = await self._query(batch.promql, at, batch.map_quantiles)
            return self._values(mapped, incomplete)
        except QueryFailed as failed:
            if failed.observation.outcome is Outcome.REJECTED and len(batch.members) > 1:
                if failed.too_big:
                    log.warning(
                        "a query for %d routes: %s",
                        len(batch.route_keys),
                        failed.observation.message,
                    )
                return await self._bisect(batch, at)
            return dict.fromkeys(batch.route_keys, failed.observation)

    def _values(
        self, mapped: Mapping[RouteKey, float | None], incomplete: str | None
    ) -> dict[RouteKey, float | LatencyObservation | None]:
        """A batch's values; from an answer that may miss data, each a ``PartialData``."""
        if incomplete is None:
            return dict(mapped)
        why = self._partial(incomplete)
        return {
            key: LatencyObservation.partial(
                value if value is not None and math.isfinite(value) else None, why
            )
            for key, value in mapped.items()
        }

    async def _bisect(
        self, batch: BatchQuery, at: float | None
    ) -> dict[RouteKey, float | LatencyObservation | None]:
        """Prometheus refused a whole batch: find the members it refuses.

        Halves are queried; a refused half is split further only while its sibling passed
        (one culprit), so a refusal that hits everyone costs two extra queries, not 2n. A
        refusal for the backend's own limits (the query's size, its series or samples) is
        split further whatever the sibling did, down to one member: a smaller query fits.
        """
        halves = batch.split()

        async def attempt(
            half: BatchQuery,
        ) -> dict[RouteKey, float | LatencyObservation | None] | QueryFailed:
            try:
                mapped, incomplete = await self._query(half.promql, at, half.map_quantiles)
            except QueryFailed as failed:
                return failed
            return self._values(mapped, incomplete)

        results = await asyncio.gather(*(attempt(half) for half in halves))
        out: dict[RouteKey, float | LatencyObservation | None] = {}
        both_failed = all(isinstance(r, QueryFailed) for r in results)
        for half, result in zip(halves, results, strict=True):
            if not isinstance(result, QueryFailed):
                out.update(result)
            elif (
                (not both_failed or result.too_big)
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
            # Bucket bounds are the same in every store: a partial answer still has them.
            mapped, _ = await self._query(batch.coverage_promql, at, batch.map_coverage)
        except QueryFailed as failed:
            return failed
        return dict(mapped)

    async def _override(self, override: OverrideQuery, at: float | None) -> LatencyObservation:
        try:
            result, incomplete = await self._query(override.promql, at)
        except QueryFailed as failed:
            return failed.observation
        try:
            value = map_override(result)
        except ResultError as exc:
            return LatencyObservation.rejected(scrub(str(exc), self.settings))
        if incomplete is not None:
            usable = value if value is not None and math.isfinite(value) else None
            return LatencyObservation.partial(usable, self._partial(incomplete))
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

    def _stale_coverage(self, plan: QueryPlan) -> tuple[list[BatchQuery], list[BatchQuery]]:
        """Batches with at least one route whose bucket bounds are unknown (never read, or
        read for another selector), and the others with at least one whose bounds are
        due."""
        now = self._clock()
        unknown: list[BatchQuery] = []
        due: list[BatchQuery] = []
        for batch in plan.batches:
            # Spread refreshes over [0.5, 1] x the period, stably per batch, so 10,000 routes'
            # coverage does not all come due in the same cycle.
            spread = 0.5 + 0.5 * zlib.crc32(batch.route_keys[0].encode()) / 2**32
            refresh = self.settings.coverage_refresh_seconds * spread
            # A route with no series yet is retried sooner: it may start receiving traffic.
            refresh_unknown = min(refresh, 60.0)
            is_due = False
            for key in batch.route_keys:
                entry = self._coverage.get(key)
                if entry is None or entry.selector != plan.selectors[key]:
                    unknown.append(batch)
                    break
                is_due = is_due or now - entry.fetched_at >= (
                    refresh if entry.top_bucket_seconds is not None else refresh_unknown
                )
            else:
                if is_due:
                    due.append(batch)
        return unknown, due

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


def _log_coverage_failures(failures: list[QueryFailed], batches: int) -> None:
    # Coverage is advisory: the last known bounds stay and are retried when next due.
    if failures:
        log.warning(
            "bucket coverage not refreshed for %d of %d batches: %s",
            len(failures),
            batches,
            failures[0].observation.message,
        )
