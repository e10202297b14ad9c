"""Cloudflare's GraphQL Analytics API (``POST /client/v4/graphql``), for the fields the
operator reads: ``viewer.zones(...).httpRequestsAdaptiveGroups`` and its ``settings``.

A real GraphQL implementation (graphql-core) parses each query and validates it against
the schema of those fields (``analytics_schema.graphql``, names and types from Cloudflare's
own schema dump), so a query the real API would refuse for an unknown field, a missing
required argument or a wrong type is refused here too. Then Cloudflare's limits, with its
documented messages (developers.cloudflare.com/analytics/graphql-api/errors, limits):

* at most 10 zones per query (``in combination, your request queries too many nodes,
  zones and accounts``);
* 300 queries per 5 minutes per user, a query costing zones x dataset nodes (``rate
  limiter budget depleted, try again after 5 minutes``), HTTP 429;
* ``limit`` within ``maxPageSize``, the time range within ``maxDuration``, nothing older
  than ``notOlderThan``;
* a zone whose plan has no access to the dataset (``zone '<tag>' does not have access to
  the path``), HTTP 403. Which plans have ``httpRequestsAdaptiveGroups`` with the fields
  used is not documented per field: the emulator is strict and refuses Free zones (say so
  where it matters), and ``settings`` reports it (``enabled: false``);
* a token needs Analytics Read for the zones (``zones [...] are not authorized``).

Errors come back as GraphQL errors: ``{"data": null, "errors": [{"message", "path",
"extensions": {"timestamp"}}]}``; a success has ``"errors": null``.

Data: the requests the sandbox's traffic reports (``Traffic.record``), each with its host,
path, method, edge status and origin time, visible only ``delay_seconds`` after it happened
(Cloudflare's data is some minutes late). Counts are exact (``sampleInterval`` 1: the
sandbox's volume is far below where Cloudflare starts sampling).
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import graphql

from sandbox.cloudflare_emulator.state import Plan, Store

SCHEMA = graphql.build_schema((Path(__file__).with_name("analytics_schema.graphql")).read_text())
DATASET = "httpRequestsAdaptiveGroups"
MAX_ZONES = 10
BUDGET = 300
BUDGET_WINDOW = 300.0
MAX_PAGE_SIZE = 10_000
MAX_DURATION = 86_400
NOT_OLDER_THAN = 2_678_400
DOCS = "https://developers.cloudflare.com/analytics/graphql-api/errors/"


@dataclass(frozen=True, slots=True)
class Hit:
    """One request as the edge saw it."""

    at: float
    zone_id: str
    host: str
    path: str
    method: str
    status: int
    origin_ms: float


class GraphQLRefusal(Exception):
    def __init__(self, status: int, message: str, path: Sequence[str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.path = status, message, list(path) if path else None


@dataclass
class Traffic:
    """The requests the edge has seen, and the query budget per user."""

    delay_seconds: float = 300.0
    clock: Callable[[], float] = time.time
    hits: list[Hit] = field(default_factory=list)
    spent: dict[str, collections.deque[tuple[float, int]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, hit: Hit) -> None:
        with self.lock:
            self.hits.append(hit)

    def clear(self) -> None:
        with self.lock:
            self.hits.clear()
            self.spent.clear()

    def visible(self) -> list[Hit]:
        """What Cloudflare's analytics show now: requests at least ``delay_seconds`` old."""
        cutoff = self.clock() - self.delay_seconds
        with self.lock:
            return [h for h in self.hits if h.at <= cutoff]

    def charge(self, user: str, cost: int) -> None:
        now = self.clock()
        with self.lock:
            spent = self.spent.setdefault(user, collections.deque())
            while spent and spent[0][0] <= now - BUDGET_WINDOW:
                spent.popleft()
            if sum(c for _, c in spent) + cost > BUDGET:
                raise GraphQLRefusal(429, "rate limiter budget depleted, try again after 5 minutes")
            spent.append((now, cost))


def answer(
    store: Store, traffic: Traffic, body: Any, user: str, authorized: Callable[[str], bool]
) -> tuple[int, dict[str, Any]]:
    """The HTTP status and body for one GraphQL request."""
    try:
        return 200, {"data": _execute(store, traffic, body, user, authorized), "errors": None}
    except GraphQLRefusal as refusal:
        return refusal.status, _errors(refusal.message, refusal.path)


def _errors(message: str, path: Sequence[str] | None = None) -> dict[str, Any]:
    stamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    item = {"message": message, "path": path, "extensions": {"timestamp": stamp}}
    return {"data": None, "errors": [item]}


def _execute(
    store: Store, traffic: Traffic, body: Any, user: str, authorized: Callable[[str], bool]
) -> Any:
    if not isinstance(body, Mapping) or not isinstance(body.get("query"), str):
        raise GraphQLRefusal(400, "query contains error, please review it and retry")
    try:
        document = graphql.parse(body["query"])
    except graphql.GraphQLError as exc:
        raise GraphQLRefusal(400, f"error parsing args: {exc.message}") from None
    problems = graphql.validate(SCHEMA, document)
    if problems:
        raise GraphQLRefusal(400, problems[0].message)
    variables = body.get("variables") or {}
    zones = _zones_asked(document, variables)
    if len(zones) > MAX_ZONES:
        raise GraphQLRefusal(
            429, "in combination, your request queries too many nodes, zones and accounts"
        )
    unknown = [z for z in zones if z not in store.zones or not authorized(z)]
    if unknown:
        raise GraphQLRefusal(403, f"zones {unknown} are not authorized")
    traffic.charge(user, max(1, len(zones)) * max(1, _dataset_nodes(document)))
    root = {"viewer": {"zones": _zones_resolver(store, traffic)}}
    result = graphql.execute_sync(SCHEMA, document, root_value=root, variable_values=variables)
    if result.errors:
        error = result.errors[0]
        original = error.original_error
        if isinstance(original, GraphQLRefusal):
            raise GraphQLRefusal(
                original.status, original.message, [str(p) for p in error.path or []]
            )
        raise GraphQLRefusal(400, error.message)
    return result.data


def _zones_asked(document: graphql.DocumentNode, variables: Mapping[str, Any]) -> list[str]:
    """The zone tags of every ``zones(filter: ...)`` in the query."""
    found: list[str] = []

    class Visitor(graphql.Visitor):
        def enter_field(self, node: graphql.FieldNode, *_: Any) -> None:
            if node.name.value != "zones":
                return
            for arg in node.arguments:
                if arg.name.value == "filter":
                    value = graphql.value_from_ast_untyped(arg.value, dict(variables)) or {}
                    tags = value.get("zoneTag_in") or (
                        [value["zoneTag"]] if value.get("zoneTag") else []
                    )
                    found.extend(str(t) for t in tags)

    graphql.visit(document, Visitor())
    return found


def _dataset_nodes(document: graphql.DocumentNode) -> int:
    count = 0

    class Visitor(graphql.Visitor):
        def enter_field(self, node: graphql.FieldNode, *_: Any) -> None:
            nonlocal count
            count += node.name.value == DATASET

    graphql.visit(document, Visitor())
    return count


def _zones_resolver(store: Store, traffic: Traffic) -> Callable[..., list[dict[str, Any]]]:
    def zones(
        info: graphql.GraphQLResolveInfo,
        filter: Mapping[str, Any] | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        del info
        wanted = dict(filter or {})
        tags = wanted.get("zoneTag_in") or ([wanted["zoneTag"]] if wanted.get("zoneTag") else [])
        out = []
        for tag in tags[: limit or None]:
            zone = store.zones[tag]
            out.append(
                {
                    "zoneTag": tag,
                    "settings": {DATASET: _settings(zone.plan)},
                    DATASET: _groups_resolver(tag, zone.plan, traffic),
                }
            )
        return out

    return zones


def has_access(plan: Plan) -> bool:
    """Not documented per plan and field: strict, Free zones have no access."""
    return plan is not Plan.FREE


def _settings(plan: Plan) -> dict[str, Any]:
    enabled = has_access(plan)
    fields = [
        "count",
        "avg_originResponseDurationMs",
        "avg_sampleInterval",
        "dimensions_clientRequestHTTPHost",
        "dimensions_clientRequestPath",
        "dimensions_clientRequestHTTPMethodName",
        "dimensions_edgeResponseStatus",
        "dimensions_datetimeMinute",
        "quantiles_originResponseDurationMsP50",
        "quantiles_originResponseDurationMsP95",
        "quantiles_originResponseDurationMsP99",
    ]
    return {
        "availableFields": fields if enabled else [],
        "enabled": enabled,
        "maxDuration": MAX_DURATION,
        "maxNumberOfFields": 30,
        "maxPageSize": MAX_PAGE_SIZE,
        "notOlderThan": NOT_OLDER_THAN,
    }


def _groups_resolver(tag: str, plan: Plan, traffic: Traffic) -> Callable[..., list[dict[str, Any]]]:
    def groups(
        info: graphql.GraphQLResolveInfo,
        filter: Mapping[str, Any],
        limit: int,
        orderBy: Sequence[str] | None = None,  # noqa: N803 (the API's name)
    ) -> list[dict[str, Any]]:
        if not has_access(plan):
            raise GraphQLRefusal(
                403,
                f"zone '{tag}' does not have access to the path. Refer to this page for more "
                f"details about access controls: {DOCS}",
            )
        if not 0 < int(limit) <= MAX_PAGE_SIZE:
            raise GraphQLRefusal(
                400, f"limit must be positive number and not greater than {MAX_PAGE_SIZE}"
            )
        start, end = _time(filter.get("datetime_geq")), _time(filter.get("datetime_lt"))
        now = traffic.clock()
        if start is not None and start < now - NOT_OLDER_THAN:
            raise GraphQLRefusal(400, f"cannot request data older than {NOT_OLDER_THAN}s")
        if start is not None and end is not None and end - start > MAX_DURATION:
            raise GraphQLRefusal(
                400,
                f"query time range is too large. Time range can't be wider than {MAX_DURATION}s",
            )
        hits = [h for h in traffic.visible() if h.zone_id == tag and _matches(h, filter)]
        dims = _requested_dimensions(info)
        grouped: dict[tuple[Any, ...], list[Hit]] = collections.defaultdict(list)
        for hit in hits:
            grouped[tuple(_dimension(hit, d) for d in dims)].append(hit)
        out = [
            _group(dict(zip(dims, key, strict=True)), members) for key, members in grouped.items()
        ]
        if orderBy and "count_DESC" in orderBy:
            out.sort(key=lambda g: -g["count"])
        return out[: int(limit)]

    return groups


def _time(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise GraphQLRefusal(400, f"error parsing args: {value!r} is not a Time") from None


def _like(text: str, pattern: str) -> bool:
    """SQL ``LIKE`` with ``%`` (any run) as Cloudflare's ``_like`` filters use it."""
    parts = pattern.split("%")
    if len(parts) == 1:
        return text == pattern
    if not text.startswith(parts[0]) or not text.endswith(parts[-1]):
        return False
    at = len(parts[0])
    for part in parts[1:-1]:
        found = text.find(part, at)
        if found < 0:
            return False
        at = found + len(part)
    return at <= len(text) - len(parts[-1])


def _matches(hit: Hit, f: Mapping[str, Any]) -> bool:
    checks: list[tuple[str, Callable[[Any], bool]]] = [
        ("datetime_geq", lambda v: hit.at >= (_time(v) or 0)),
        ("datetime_lt", lambda v: hit.at < (_time(v) or math.inf)),
        ("clientRequestHTTPHost", lambda v: hit.host == v),
        ("clientRequestHTTPHost_in", lambda v: hit.host in v),
        ("clientRequestPath_like", lambda v: _like(hit.path, str(v))),
        ("edgeResponseStatus", lambda v: hit.status == int(v)),
        ("edgeResponseStatus_geq", lambda v: hit.status >= int(v)),
        ("edgeResponseStatus_lt", lambda v: hit.status < int(v)),
        ("requestSource", lambda v: v == "eyeball"),
    ]
    for key, holds in checks:
        if f.get(key) is not None and not holds(f[key]):
            return False
    return all(_matches(hit, part) for part in f.get("AND") or [])


def _requested_dimensions(info: graphql.GraphQLResolveInfo) -> list[str]:
    for node in info.field_nodes:
        for selection in node.selection_set.selections if node.selection_set else ():
            if isinstance(selection, graphql.FieldNode) and selection.name.value == "dimensions":
                sub = selection.selection_set.selections if selection.selection_set else ()
                return [s.name.value for s in sub if isinstance(s, graphql.FieldNode)]
    return []


def _dimension(hit: Hit, name: str) -> Any:
    if name == "datetimeMinute":
        minute = math.floor(hit.at / 60) * 60
        return datetime.fromtimestamp(minute, UTC).isoformat().replace("+00:00", "Z")
    return {
        "clientRequestHTTPHost": hit.host,
        "clientRequestPath": hit.path,
        "clientRequestHTTPMethodName": hit.method,
        "edgeResponseStatus": hit.status,
    }[name]


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _group(dimensions: dict[str, Any], members: list[Hit]) -> dict[str, Any]:
    times = [h.origin_ms for h in members]
    return {
        "count": len(members),
        "dimensions": dimensions,
        "avg": {"originResponseDurationMs": sum(times) / len(times), "sampleInterval": 1.0},
        "quantiles": {
            "originResponseDurationMsP50": _quantile(times, 0.5),
            "originResponseDurationMsP95": _quantile(times, 0.95),
            "originResponseDurationMsP99": _quantile(times, 0.99),
        },
    }
