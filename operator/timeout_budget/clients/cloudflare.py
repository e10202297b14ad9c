"""The operator's one seam to the Cloudflare API: the handful of calls it makes, nothing more.

Everything goes through the official ``cloudflare`` SDK (``AsyncCloudflare``), pointed at
``base_url`` (Cloudflare's, or the sandbox's emulator). Four things the SDK does not do for
the operator are done here, once:

* **No hidden retries.** ``max_retries=0``: one call is one request, counted against the
  token's ``RequestBudget`` before it is sent. A refusal costs nothing; the caller
  requeues. A 429 sets the budget's embargo from ``Retry-After``; Cloudflare's
  ``Ratelimit`` header, on any answer, tells the budget what the server still allows.
* **The token stays a secret.** It lives in an ``ApiToken`` whose ``repr`` is a
  placeholder; ``CLOUDFLARE_EMAIL``/``CLOUDFLARE_API_KEY`` in the environment, which the SDK
  would otherwise send *instead* of the token, are ignored; errors are rebuilt from
  Cloudflare's error list only, outside the SDK exception's context (which holds the
  request and its ``Authorization`` header).
* **Raw JSON where it matters.** Rules and DNS records are sent and read as JSON through
  the SDK's own request methods (``get``, ``post``, ``patch``...: same client, token,
  headers, errors), not its typed ``rulesets`` and ``dns`` resources: a rule the operator
  does not own is written back byte for byte, and the process does not build those
  resources' pydantic models (about 20 MiB of RSS, measured on a replica holding a zone).
* **Errors the caller can act on** (``cloudflare_errors``): rate limited, unavailable,
  refused, auth failed, permission missing; the values it hands back are in
  ``cloudflare_values``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import quote

import cloudflare
from cloudflare.types.zones.proxy_read_timeout import ProxyReadTimeout

from timeout_budget.clients import request_budget
from timeout_budget.clients.cloudflare_errors import (
    AuthFailed,
    BudgetExhausted,
    CloudflareError,
    CloudflareRefused,
    CloudflareUnavailable,
    NotFound,
    PermissionMissing,
    RateLimited,
    graphql_errors,
    graphql_failure,
    outcome_of,
    permission_for,
    translate,
)
from timeout_budget.clients.cloudflare_values import ApiToken, Entrypoint, ZoneTimeout
from timeout_budget.clients.request_budget import RequestBudget

T = TypeVar("T")

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
PHASE: Literal["http_request_cache_settings"] = "http_request_cache_settings"
SETTING = "proxy_read_timeout"
DNS_PAGE_SIZE = 100


class RequestObserver(Protocol):
    """Told about every request (``report.metrics.OperatorMetrics`` is one)."""

    def cloudflare_request(
        self, operation: str, outcome: str = "ok", duration_seconds: float | None = None
    ) -> None: ...

    def cloudflare_not_sent(self, reason: str) -> None: ...


class _Answer(Protocol):
    """An HTTP answer as the SDK's ``httpx`` hands it to a response hook."""

    @property
    def headers(self) -> Mapping[str, str]: ...


@dataclass(frozen=True)
class Call:
    """One kind of request: a fixed operation name (metrics) and what it does (messages)."""

    operation: str
    text: str

    def __str__(self) -> str:
        return self.text


REPLICA_HEADER = "X-Timeout-Budget-Replica"


class CloudflareClient:
    """The calls the operator makes, for one token, each counted and translated."""

    def __init__(
        self,
        token: ApiToken,
        *,
        budget: RequestBudget,
        base_url: str = DEFAULT_BASE_URL,
        timeout_seconds: float = 20.0,
        observer: RequestObserver | None = None,
        analytics_budget: RequestBudget | None = None,
        replica: str | None = None,
    ) -> None:
        self.budget = budget
        self.analytics_budget = analytics_budget or RequestBudget(
            request_budget.GRAPHQL_LIMIT, scope="for GraphQL Analytics"
        )
        """GraphQL Analytics' own budget (300 per 5 minutes per user, a query costing
        its zones times its dataset nodes), shared by every zone."""
        self._observer = observer
        self.base_url = base_url
        self.denied: set[str] = set()
        """Permissions whose last request got a 403 (``permission_for``)."""
        self._sdk = cloudflare.AsyncCloudflare(
            api_token=token.reveal(),
            base_url=base_url,
            max_retries=0,
            timeout=timeout_seconds,
            # Which replica sent a request (sharded: every zone has exactly one writer),
            # for Cloudflare's audit logs and the emulator's request log.
            default_headers={REPLICA_HEADER: replica} if replica else None,
            http_client=cloudflare.DefaultAsyncHttpxClient(
                event_hooks={"response": [self._read_rate_limit]}
            ),
        )
        # Read from the environment when not given, and sent instead of the token.
        self._sdk.api_email = None
        self._sdk.api_key = None
        self._sdk.user_service_key = None

    def __repr__(self) -> str:
        return f"CloudflareClient(base_url={self.base_url!r})"

    async def aclose(self) -> None:
        await self._sdk.close()

    async def _read_rate_limit(self, response: _Answer) -> None:
        """Every answer may carry Cloudflare's own count (``Ratelimit``): the budget
        stops there too, since the dashboard and other tools spend from it."""
        said = request_budget.parse_ratelimit(response.headers.get("Ratelimit"))
        if said is not None:
            self.budget.server_says(*said)

    # -- zone --------------------------------------------------------------------------
    async def get_zone_plan(self, zone_id: str) -> str | None:
        """The zone's plan (``free``, ``pro``, ``business``, ``enterprise``), if told."""
        what = Call("get_zone", f"read the plan of zone {zone_id}")
        raw = await self._send(what, lambda: self._sdk.zones.with_raw_response.get(zone_id=zone_id))
        result = _result(await raw.json(), what)
        plan = result.get("plan") if isinstance(result, dict) else None
        legacy = plan.get("legacy_id") if isinstance(plan, dict) else None
        return legacy if isinstance(legacy, str) else None

    # -- zone setting ------------------------------------------------------------------
    async def get_proxy_read_timeout(self, zone_id: str) -> ZoneTimeout:
        what = Call("get_zone_setting", f"read {SETTING} of zone {zone_id}")
        answer = await self._send(
            what, lambda: self._sdk.zones.settings.get(SETTING, zone_id=zone_id)
        )
        return _zone_timeout(answer, what)

    async def set_proxy_read_timeout(self, zone_id: str, seconds: int) -> ZoneTimeout:
        what = Call("edit_zone_setting", f"set {SETTING} of zone {zone_id} to {seconds}s")
        answer = await self._send(
            what, lambda: self._sdk.zones.settings.edit(SETTING, zone_id=zone_id, value=seconds)
        )
        return _zone_timeout(answer, what)

    # -- Cache Rules entry point -------------------------------------------------------
    async def get_cache_rules(self, zone_id: str) -> Entrypoint | None:
        """The entry point, or ``None`` when the zone has none yet (404)."""
        what = Call("get_cache_rules", f"read the Cache Rules of zone {zone_id}")
        try:
            answer = await self._send(
                what, lambda: self._sdk.get(_entrypoint_path(zone_id), cast_to=object)
            )
        except NotFound:
            return None
        return _entrypoint(_result(answer, what), what)

    async def put_cache_rules(self, zone_id: str, rules: Sequence[Mapping[str, Any]]) -> Entrypoint:
        """Replace the whole list (creating the entry point if there is none). The operator
        itself writes rule by rule (``edge.cache_rules``); this is for tools and
        tests that own a whole list."""
        what = Call("put_cache_rules", f"write the Cache Rules of zone {zone_id}")
        body = {"rules": [dict(r) for r in rules]}
        answer = await self._send(
            what, lambda: self._sdk.put(_entrypoint_path(zone_id), body=body, cast_to=object)
        )
        return _entrypoint(_result(answer, what), what)

    async def create_cache_ruleset(
        self, zone_id: str, rules: Sequence[Mapping[str, Any]]
    ) -> Entrypoint:
        """Create the zone's entry point with ``rules``. Unlike a PUT, this fails when the
        entry point exists (someone created it since it was read): nothing is replaced."""
        what = Call("create_cache_ruleset", f"create the Cache Rules entry point of zone {zone_id}")
        body = {
            "kind": "zone",
            "name": "default",
            "phase": PHASE,
            "rules": [dict(r) for r in rules],
        }
        answer = await self._send(
            what,
            lambda: self._sdk.post(_path("zones", zone_id, "rulesets"), body=body, cast_to=object),
        )
        return _entrypoint(_result(answer, what), what)

    async def create_cache_rule(
        self,
        zone_id: str,
        ruleset_id: str,
        rule: Mapping[str, Any],
        position: Mapping[str, Any] | None = None,
    ) -> Entrypoint:
        """Add one rule (at ``position``; default last); answers the whole ruleset."""
        what = Call("create_cache_rule", f"create Cache Rule {rule.get('ref')} in zone {zone_id}")
        body = {**rule, **({"position": dict(position)} if position else {})}
        path = _path("zones", zone_id, "rulesets", ruleset_id, "rules")
        answer = await self._send(what, lambda: self._sdk.post(path, body=body, cast_to=object))
        return _entrypoint(_result(answer, what), what)

    async def edit_cache_rule(
        self,
        zone_id: str,
        ruleset_id: str,
        rule_id: str,
        rule: Mapping[str, Any],
        position: Mapping[str, Any] | None = None,
    ) -> Entrypoint:
        """PATCH one rule (404 ``NotFound`` if someone deleted it meanwhile)."""
        what = Call("edit_cache_rule", f"edit Cache Rule {rule.get('ref')} in zone {zone_id}")
        body = {**rule, **({"position": dict(position)} if position else {})}
        path = _path("zones", zone_id, "rulesets", ruleset_id, "rules", rule_id)
        answer = await self._send(what, lambda: self._sdk.patch(path, body=body, cast_to=object))
        return _entrypoint(_result(answer, what), what)

    async def delete_cache_rule(self, zone_id: str, ruleset_id: str, rule_id: str) -> Entrypoint:
        """DELETE one rule (404 ``NotFound`` if it is already gone)."""
        what = Call("delete_cache_rule", f"delete Cache Rule {rule_id} in zone {zone_id}")
        path = _path("zones", zone_id, "rulesets", ruleset_id, "rules", rule_id)
        answer = await self._send(what, lambda: self._sdk.delete(path, cast_to=object))
        return _entrypoint(_result(answer, what), what)

    # -- DNS records -------------------------------------------------------------------
    async def list_dns_records(self, zone_id: str, name: str) -> list[dict[str, Any]]:
        """Every record named exactly ``name``, page by page (the SDK's auto-paging would
        spend one more request on an empty page)."""
        what = Call("list_dns_records", f"list the DNS records of {name} in zone {zone_id}")
        records: list[dict[str, Any]] = []
        page = 1
        while True:
            found, pages = await self._dns_page(zone_id, name, page, what)
            records.extend(found)
            if page >= pages:
                return records
            page += 1

    async def _dns_page(
        self, zone_id: str, name: str, page: int, what: Call
    ) -> tuple[list[dict[str, Any]], int]:
        query = {"name": {"exact": name}, "per_page": DNS_PAGE_SIZE, "page": page}
        envelope = await self._send(
            what,
            lambda: self._sdk.get(
                _path("zones", zone_id, "dns_records"), cast_to=object, options={"params": query}
            ),
        )
        found = _result(envelope, what)
        if not isinstance(found, list):
            raise CloudflareUnavailable(f"{what}: unexpected answer (no record list)")
        info = envelope.get("result_info") if isinstance(envelope, dict) else None
        pages = info.get("total_pages", 1) if isinstance(info, dict) else 1
        return [r for r in found if isinstance(r, dict)], pages if isinstance(pages, int) else 1

    async def edit_dns_record(
        self,
        zone_id: str,
        record_id: str,
        *,
        name: str,
        record_type: str,
        ttl: float,
        proxied: bool,
        comment: str,
    ) -> dict[str, Any]:
        """PATCH one record, with its name, type and ttl alongside (as SDK 5.x's typed
        ``dns.records.edit`` insists)."""
        what = Call(
            "edit_dns_record", f"set proxied={str(proxied).lower()} on {record_type} record {name}"
        )
        body = {
            "name": name,
            "type": record_type,
            "ttl": ttl,
            "proxied": proxied,
            "comment": comment,
        }
        path = _path("zones", zone_id, "dns_records", record_id)
        answer = await self._send(what, lambda: self._sdk.patch(path, body=body, cast_to=object))
        result = _result(answer, what)
        if not isinstance(result, dict):
            raise CloudflareUnavailable(f"{what}: unexpected answer (no record)")
        return result

    # -- GraphQL Analytics -------------------------------------------------------------
    async def graphql(
        self, text: str, query: str, variables: Mapping[str, Any], *, cost: int
    ) -> dict[str, Any]:
        """``data`` of one query to the GraphQL Analytics API (``POST /graphql``), which
        the SDK does not model: sent through its own HTTP client (same token, base URL,
        timeout and rate-limit hook). Counted against the analytics budget (``cost``: the
        query's zones times its dataset nodes) and the zone's. A GraphQL error in a 200
        answer is a refusal too."""
        what = Call("graphql", text)
        try:
            self.analytics_budget.acquire(cost)
        except request_budget.NotSent as exc:
            if self._observer is not None:
                self._observer.cloudflare_not_sent("analytics_budget_spent")
            raise BudgetExhausted(f"{what}: not sent: {exc}", exc.retry_after) from None
        body = {"query": query, "variables": dict(variables)}
        answer = await self._send(
            what,
            lambda: self._sdk.post("/graphql", body=body, cast_to=object),
            translated=lambda exc: graphql_failure(
                exc, str(what), self.budget, self.analytics_budget
            ),
        )
        if not isinstance(answer, dict):
            raise CloudflareUnavailable(f"{what}: unexpected answer (not a GraphQL answer)")
        if answer.get("errors"):
            raise CloudflareRefused(f"{what}: {graphql_errors(answer)}", 200)
        data = answer.get("data")
        if not isinstance(data, dict):
            raise CloudflareUnavailable(f"{what}: unexpected answer (no data)")
        return data

    # -- the one place requests are sent -----------------------------------------------
    async def _send(
        self,
        what: Call,
        call: Callable[[], Awaitable[T]],
        translated: Callable[[cloudflare.APIError], CloudflareError] | None = None,
    ) -> T:
        try:
            self.budget.acquire()
        except request_budget.NotSent as exc:
            spent = isinstance(exc, request_budget.BudgetSpent)
            if self._observer is not None:
                self._observer.cloudflare_not_sent("budget_spent" if spent else "rate_limit_wait")
            kind = BudgetExhausted if spent else RateLimited
            raise kind(f"{what}: not sent: {exc}", exc.retry_after) from None
        failure: CloudflareError
        started = time.monotonic()
        permission = permission_for(what.operation)
        try:
            answer = await call()
        except cloudflare.APIError as exc:
            failure = (
                translated(exc)
                if translated is not None
                else translate(exc, str(what), permission, self.budget)
            )
        else:
            self.denied.discard(permission)
            self._observe(what, "ok", started)
            return answer
        if isinstance(failure, PermissionMissing):
            self.denied.add(permission)
        elif not isinstance(failure, AuthFailed | CloudflareUnavailable | RateLimited):
            self.denied.discard(permission)  # Cloudflare looked at the request: allowed
        self._observe(what, outcome_of(failure), started)
        # Raised outside the except block: no __context__ pointing at the SDK's request.
        raise failure

    def _observe(self, what: Call, outcome: str, started: float) -> None:
        if self._observer is not None:
            elapsed = time.monotonic() - started
            self._observer.cloudflare_request(what.operation, outcome, elapsed)


def _path(*segments: str) -> str:
    """An API path from its segments, each percent-encoded (an ID is one segment)."""
    return "".join(f"/{quote(segment, safe='')}" for segment in segments)


def _entrypoint_path(zone_id: str) -> str:
    return _path("zones", zone_id, "rulesets", "phases", PHASE, "entrypoint")


def _result(envelope: object, what: object) -> Any:
    if not isinstance(envelope, dict) or "result" not in envelope:
        raise CloudflareUnavailable(f"{what}: unexpected answer (no Cloudflare envelope)")
    return envelope["result"]


def _zone_timeout(answer: object, what: object) -> ZoneTimeout:
    # The SDK types settings.get/edit as a union of every zone setting: narrow it.
    if not isinstance(answer, ProxyReadTimeout) or answer.value is None:
        raise CloudflareUnavailable(f"{what}: unexpected answer (not {SETTING})")
    return ZoneTimeout(seconds=round(answer.value), editable=answer.editable is True)


def _entrypoint(result: object, what: object) -> Entrypoint:
    if not isinstance(result, dict) or not isinstance(result.get("rules", []), list):
        raise CloudflareUnavailable(f"{what}: unexpected answer (not a ruleset)")
    rules = [r for r in result.get("rules", []) if isinstance(r, dict)]
    return Entrypoint(
        id=str(result.get("id", "")), version=str(result.get("version", "")), rules=rules
    )
