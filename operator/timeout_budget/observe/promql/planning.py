"""Planning: every route's latency spec into the fewest safe, length-bounded queries (pure).

Routes sharing a ``GroupKey`` are asked together: one ``BatchQuery`` per chunk, each label
matching the chunk's values through an RE2 alternation, cut so the URL-encoded query stays
under ``DEFAULT_MAX_QUERY_LENGTH``. A batch also builds its coverage query and maps both
answers back to its routes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote_plus

from timeout_budget.model.spec import Latency, RouteKey
from timeout_budget.observe.promql.answers import max_finite_le, parse_vector
from timeout_budget.observe.promql.literals import (
    BUCKET_LABEL,
    SelectorError,
    format_quantile,
    promql_string,
    quote_meta,
)
from timeout_budget.observe.promql.selection import (
    GroupKey,
    RouteSelector,
    render_override,
    route_selector,
)

DEFAULT_MAX_QUERY_LENGTH = 8000
"""URL-encoded characters per query: stays under the 8 KiB request line that common reverse
proxies in front of Prometheus accept (nginx ``large_client_header_buffers``)."""
DEFAULT_MAX_BODY_QUERY_LENGTH = 128_000
"""URL-encoded characters per query sent in a form body (``POST``): far under what
Prometheus parses (Go's 10 MB form limit) and the 256 KiB to 1 MiB bodies common proxies
and query frontends take; a backend that refuses a batch for its size has it split."""


@dataclass(frozen=True)
class BatchQuery:
    """One query answering for many routes; ``members`` maps label values to routes."""

    key: GroupKey
    members: tuple[tuple[tuple[str, ...], tuple[RouteKey, ...]], ...]

    @property
    def route_keys(self) -> tuple[RouteKey, ...]:
        return tuple(r for _, routes in self.members for r in routes)

    @property
    def selector(self) -> str:
        """``<metric>_bucket{...}`` selecting every member's series (possibly more)."""
        parts: list[str] = []
        for index, label in enumerate(self.key.labels):
            values = sorted({vals[index] for vals, _ in self.members})
            if len(values) == 1:
                parts.append(f"{label}={promql_string(values[0])}")
            else:
                alternation = "|".join(quote_meta(v) for v in values)
                parts.append(f"{label}=~{promql_string(alternation)}")
        parts.extend(m.render() for m in self.key.extra)
        name = f"{self.key.metric}_bucket"
        return f"{name}{{{', '.join(parts)}}}" if parts else name

    @property
    def by_clause(self) -> str:
        return ", ".join((BUCKET_LABEL, *self.key.labels))

    @property
    def promql(self) -> str:
        return (
            f"histogram_quantile({format_quantile(self.key.quantile)}, "
            f"sum by ({self.by_clause}) (rate({self.selector}[{self.key.window}])))"
        )

    @property
    def coverage_promql(self) -> str:
        """Which ``le`` bounds exist per route over the window (one series per bound)."""
        return f"group by ({self.by_clause}) (last_over_time({self.selector}[{self.key.window}]))"

    def split(self) -> tuple[BatchQuery, BatchQuery]:
        """Two halves, to isolate a member that makes Prometheus refuse the whole batch."""
        half = len(self.members) // 2
        return (
            BatchQuery(self.key, self.members[:half]),
            BatchQuery(self.key, self.members[half:]),
        )

    def map_quantiles(self, result: object) -> dict[RouteKey, float | None]:
        """Route → value (NaN kept) or ``None`` when no series came back for it."""
        out: dict[RouteKey, float | None] = dict.fromkeys(self.route_keys)
        index = dict(self.members)
        for labels, value in parse_vector(result):
            key = tuple(labels.get(label, "") for label in self.key.labels)
            for route in index.get(key, ()):
                out[route] = value
        return out

    def map_coverage(self, result: object) -> dict[RouteKey, float | None]:
        """Route → largest finite ``le`` among its series, ``None`` when it has none."""
        per_key: dict[tuple[str, ...], list[str]] = {}
        for labels, _ in parse_vector(result):
            key = tuple(labels.get(label, "") for label in self.key.labels)
            per_key.setdefault(key, []).append(labels.get(BUCKET_LABEL, ""))
        out: dict[RouteKey, float | None] = {}
        for key, routes in self.members:
            top = max_finite_le(per_key.get(key, ()))
            for route in routes:
                out[route] = top
        return out


@dataclass(frozen=True)
class OverrideQuery:
    route: RouteKey
    promql: str


@dataclass(frozen=True)
class QueryPlan:
    batches: tuple[BatchQuery, ...]
    overrides: tuple[OverrideQuery, ...]
    invalid: Mapping[RouteKey, str]
    selectors: Mapping[RouteKey, RouteSelector]


def plan_queries(
    routes: Mapping[RouteKey, Latency],
    max_query_length: int = DEFAULT_MAX_QUERY_LENGTH,
    min_batches: int = 1,
) -> QueryPlan:
    """Turn every route's latency spec into the fewest safe queries.

    Routes that cannot be built land in ``invalid`` with a user-facing message; routes with a
    ``query`` override get one query each; all others are grouped by ``GroupKey`` and each
    group is cut into chunks whose URL-encoded query stays within ``max_query_length``. A
    group longer than ``min_batches`` URL-sized queries is cut into at least ``min_batches``
    chunks (they run in parallel: at 10,000 routes four queries are answered sooner than
    two of twice the length, see bench/README.md).
    """
    invalid: dict[RouteKey, str] = {}
    overrides: list[OverrideQuery] = []
    selectors: dict[RouteKey, RouteSelector] = {}
    groups: dict[GroupKey, dict[tuple[str, ...], list[RouteKey]]] = {}
    for route in sorted(routes):
        latency = routes[route]
        try:
            if latency.query is not None:
                promql = render_override(latency.query, latency.quantile, latency.window)
                overrides.append(OverrideQuery(route, promql))
                continue
            sel = route_selector(latency)
        except SelectorError as exc:
            invalid[route] = str(exc)
            continue
        selectors[route] = sel
        groups.setdefault(sel.group_key, {}).setdefault(sel.values, []).append(route)
    batches: list[BatchQuery] = []
    for key in sorted(groups, key=_group_sort_key):
        members = [(vals, tuple(rs)) for vals, rs in sorted(groups[key].items())]
        batches.extend(_chunk(key, members, max_query_length, min_batches))
    return QueryPlan(tuple(batches), tuple(overrides), invalid, selectors)


def _group_sort_key(key: GroupKey) -> tuple[str, float, str, tuple[str, ...], str]:
    return (key.metric, key.quantile, key.window, key.labels, repr(key.extra))


def _chunk(
    key: GroupKey,
    members: Sequence[tuple[tuple[str, ...], tuple[RouteKey, ...]]],
    max_query_length: int,
    min_batches: int = 1,
) -> Iterable[BatchQuery]:
    """Greedy chunks: each value costs its URL-encoded, regex- and string-escaped length."""
    first = BatchQuery(key, (members[0],))
    # The fixed part of the longer of the two queries (over-counts one member: conservative).
    base = max(len(quote_plus(first.promql)), len(quote_plus(first.coverage_promql)))
    budget = max(max_query_length - base, 1)
    if min_batches > 1 and len(members) >= min_batches:
        whole = sum(
            len(quote_plus(promql_string(quote_meta(v)))) + 3 for vals, _ in members for v in vals
        )
        # Never below the URL-sized chunk: small groups stay one query.
        floor = max(DEFAULT_MAX_QUERY_LENGTH - base, 1)
        budget = min(budget, max(-(-whole // min_batches), floor))
    chunk: list[tuple[tuple[str, ...], tuple[RouteKey, ...]]] = []
    seen: list[set[str]] = [set() for _ in key.labels]
    used = 0
    for vals, routes in members:
        cost = sum(
            len(quote_plus(promql_string(quote_meta(v)))) + 3
            for index, v in enumerate(vals)
            if v not in seen[index]
        )
        if chunk and used + cost > budget:
            yield BatchQuery(key, tuple(chunk))
            chunk, used = [], 0
            seen = [set() for _ in key.labels]
            cost = sum(len(quote_plus(promql_string(quote_meta(v)))) + 3 for v in vals)
        chunk.append((vals, routes))
        for index, v in enumerate(vals):
            seen[index].add(v)
        used += cost
    if chunk:
        yield BatchQuery(key, tuple(chunk))
