"""The emulated API's front door: authenticate, count against the rate limit, route.

Every request under ``/client/v4`` passes the same gates Cloudflare puts first, in the
same order: a well-formed, known API token (``Authorization: Bearer``), then the rate
limit of the token's user, then a JSON body that parses, then a route, then the
permission the route needs (``tokens``). Only then does a handler run, under the store's
lock. Every answer to a known token carries the rate-limit headers. The routes are
exactly the endpoints the operator uses.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote

from sandbox.cloudflare_emulator import analytics, dns, rulesets, tokens, zone_settings
from sandbox.cloudflare_emulator.protocol import (
    ApiError,
    Code,
    ErrorItem,
    JsonObject,
    Reply,
    Request,
    failure,
    ok,
)
from sandbox.cloudflare_emulator.ratelimit import RateLimiter
from sandbox.cloudflare_emulator.state import Plan, Store
from sandbox.cloudflare_emulator.tokens import Grant
from sandbox.cloudflare_emulator.validation import Validators

log = logging.getLogger(__name__)

Handler = Callable[[Store, Validators, Request], Reply]

_PLAN_NAMES = {
    Plan.FREE: "Free Website",
    Plan.PRO: "Pro Website",
    Plan.BUSINESS: "Business Website",
    Plan.ENTERPRISE: "Enterprise Website",
}


def get_zone(store: Store, validators: Validators, req: Request) -> Reply:
    """``GET /zones/{id}``: the parts of a zone's details a client reads (its plan)."""
    del validators
    zone = store.zone(req.params["zone_id"])
    details: JsonObject = {
        "id": zone.id,
        "name": zone.name,
        "status": "active",
        "plan": {
            "id": zone.plan.value,
            "name": _PLAN_NAMES[zone.plan],
            "legacy_id": zone.plan.value,
        },
    }
    return ok(copy.deepcopy(details))


_ZONE = r"/zones/(?P<zone_id>[^/]+)"
_RULE = _ZONE + r"/rulesets/(?P<ruleset_id>[^/]+)/rules/(?P<rule_id>[^/]+)"
_PHASE = _ZONE + r"/rulesets/phases/(?P<phase>[^/]+)/entrypoint"
ROUTES: tuple[tuple[str, re.Pattern[str], Handler, str], ...] = tuple(
    (method, re.compile(pattern), handler, permission)
    for method, pattern, handler, permission in (
        ("GET", _ZONE, get_zone, tokens.ZONE_READ),
        (
            "GET",
            _ZONE + r"/settings/(?P<setting_id>[^/]+)",
            zone_settings.get_setting,
            tokens.ZONE_SETTINGS_READ,
        ),
        (
            "PATCH",
            _ZONE + r"/settings/(?P<setting_id>[^/]+)",
            zone_settings.edit_setting,
            tokens.ZONE_SETTINGS_EDIT,
        ),
        ("GET", _PHASE, rulesets.get_entrypoint, tokens.CACHE_RULES_READ),
        ("PUT", _PHASE, rulesets.put_entrypoint, tokens.CACHE_RULES_EDIT),
        ("POST", _ZONE + r"/rulesets", rulesets.create_ruleset, tokens.CACHE_RULES_EDIT),
        (
            "POST",
            _ZONE + r"/rulesets/(?P<ruleset_id>[^/]+)/rules",
            rulesets.create_rule,
            tokens.CACHE_RULES_EDIT,
        ),
        ("PATCH", _RULE, rulesets.edit_rule, tokens.CACHE_RULES_EDIT),
        ("DELETE", _RULE, rulesets.delete_rule, tokens.CACHE_RULES_EDIT),
        ("GET", _ZONE + r"/dns_records", dns.list_records, tokens.DNS_READ),
        ("GET", _ZONE + r"/dns_records/(?P<record_id>[^/]+)", dns.get_record, tokens.DNS_READ),
        ("PATCH", _ZONE + r"/dns_records/(?P<record_id>[^/]+)", dns.edit_record, tokens.DNS_EDIT),
    )
)


def authenticate(headers: Mapping[str, str], grants: Mapping[str, Grant]) -> Grant:
    """The caller's token's grant, or the error Cloudflare answers without a valid one
    (400 for a malformed token, 403 for an unknown one, 401 for none).

    ``headers`` must have lower-case names. The SDK sends ``X-Auth-Email`` /
    ``X-Auth-Key`` *instead of* the token when ``CLOUDFLARE_EMAIL`` or
    ``CLOUDFLARE_API_KEY`` are set: that is refused here with a message saying so.
    """
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return tokens.check(token.strip(), grants)
    legacy = [h for h in ("x-auth-email", "x-auth-key") if h in headers]
    if legacy:
        raise ApiError(
            400,
            [
                ErrorItem(
                    Code.INVALID_REQUEST_HEADERS,
                    "Invalid request headers",
                    chain=(
                        ErrorItem(
                            Code.INVALID_AUTH_KEY_FORMAT,
                            f"{', '.join(legacy)} sent without an API token: this account "
                            "accepts API tokens only (are CLOUDFLARE_EMAIL or "
                            "CLOUDFLARE_API_KEY set?)",
                        ),
                    ),
                )
            ],
        )
    raise ApiError.one(401, Code.AUTHENTICATION_ERROR, "Authentication error")


def parse_body(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        message = f"Malformed JSON in request body: {exc}"
        raise ApiError.one(400, Code.MALFORMED_JSON, message) from None


def route(method: str, path: str) -> tuple[Handler, dict[str, str], str]:
    """The handler, its path parameters and the token permission it needs."""
    known_path = False
    for route_method, pattern, handler, permission in ROUTES:
        match = pattern.fullmatch(path)
        if match is None:
            continue
        known_path = True
        if route_method == method:
            return handler, {k: unquote(v) for k, v in match.groupdict().items()}, permission
    if known_path:
        raise ApiError.one(405, Code.METHOD_NOT_ALLOWED, f"Method {method} not allowed here")
    raise ApiError.one(404, Code.NO_ROUTE, "No route for that URI")


class FrontDoor:
    """Answers one API request; holds what every request needs."""

    def __init__(
        self,
        store: Store,
        validators: Validators,
        limiter: RateLimiter,
        tokens: Callable[[], Mapping[str, Grant]],
        traffic: analytics.Traffic | None = None,
    ) -> None:
        self.traffic = traffic or analytics.Traffic()
        self.store = store
        self.validators = validators
        self.limiter = limiter
        self.tokens = tokens

    def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, Sequence[str]],
        headers: Mapping[str, str],
        raw_body: bytes,
    ) -> Reply:
        """``path`` is relative to ``/client/v4``; ``headers`` have lower-case names."""
        try:
            grant = authenticate(headers, self.tokens())
        except ApiError as exc:
            return failure(exc)
        reply = self._answer(grant, method, path, query, raw_body)
        limits = self.limiter.header_values(grant.user)
        return dataclasses.replace(reply, headers={**reply.headers, **limits})

    def _answer(
        self,
        grant: Grant,
        method: str,
        path: str,
        query: Mapping[str, Sequence[str]],
        raw_body: bytes,
    ) -> Reply:
        try:
            wait = self.limiter.acquire(grant.user)
            if wait is not None:
                raise ApiError.one(
                    429,
                    Code.RATE_LIMITED,
                    "Please wait and consider throttling your request speed",
                    headers={"Retry-After": str(wait)},
                )
            body = parse_body(raw_body)
            if path == "/graphql":
                return self._graphql(grant, method, body)
            handler, params, permission = route(method, path)
            tokens.require(grant, permission)
            request = Request(method, path, query, body, params)
            with self.store.lock:
                return handler(self.store, self.validators, request)
        except ApiError as exc:
            return failure(exc)
        except Exception:
            log.exception("emulator handler failed: %s %s", method, path)
            return failure(ApiError.one(500, Code.INTERNAL_ERROR, "Internal emulator error"))

    def _graphql(self, grant: Grant, method: str, body: Any) -> Reply:
        """The GraphQL Analytics API: its own answers (``analytics``), not the v4 envelope."""
        if method != "POST":
            raise ApiError.one(405, Code.METHOD_NOT_ALLOWED, f"Method {method} not allowed here")
        allowed = tokens.ANALYTICS_READ in grant.permissions
        with self.store.lock:
            status, answer = analytics.answer(
                self.store, self.traffic, body, grant.user, lambda zone: allowed
            )
        return Reply(status, answer)
