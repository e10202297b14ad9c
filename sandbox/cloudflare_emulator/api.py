"""The emulated API's front door: authenticate, count against the rate limit, route.

Every request under ``/client/v4`` passes the same gates Cloudflare puts first, in the
same order: a valid API token (``Authorization: Bearer``), then the per-token rate
limit, then a JSON body that parses, then a route. Only then does a handler run, under
the store's lock. The routes are exactly the endpoints the operator uses.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any
from urllib.parse import unquote

from sandbox.cloudflare_emulator import dns, rulesets, zone_settings
from sandbox.cloudflare_emulator.protocol import (
    ApiError,
    Code,
    ErrorItem,
    Reply,
    Request,
    failure,
)
from sandbox.cloudflare_emulator.ratelimit import RateLimiter
from sandbox.cloudflare_emulator.state import Store
from sandbox.cloudflare_emulator.validation import Validators

log = logging.getLogger(__name__)

Handler = Callable[[Store, Validators, Request], Reply]

_ZONE = r"/zones/(?P<zone_id>[^/]+)"
ROUTES: tuple[tuple[str, re.Pattern[str], Handler], ...] = tuple(
    (method, re.compile(pattern), handler)
    for method, pattern, handler in (
        ("GET", _ZONE + r"/settings/(?P<setting_id>[^/]+)", zone_settings.get_setting),
        ("PATCH", _ZONE + r"/settings/(?P<setting_id>[^/]+)", zone_settings.edit_setting),
        ("GET", _ZONE + r"/rulesets/phases/(?P<phase>[^/]+)/entrypoint", rulesets.get_entrypoint),
        ("PUT", _ZONE + r"/rulesets/phases/(?P<phase>[^/]+)/entrypoint", rulesets.put_entrypoint),
        ("POST", _ZONE + r"/rulesets/(?P<ruleset_id>[^/]+)/rules", rulesets.create_rule),
        (
            "PATCH",
            _ZONE + r"/rulesets/(?P<ruleset_id>[^/]+)/rules/(?P<rule_id>[^/]+)",
            rulesets.edit_rule,
        ),
        (
            "DELETE",
            _ZONE + r"/rulesets/(?P<ruleset_id>[^/]+)/rules/(?P<rule_id>[^/]+)",
            rulesets.delete_rule,
        ),
        ("GET", _ZONE + r"/dns_records", dns.list_records),
        ("GET", _ZONE + r"/dns_records/(?P<record_id>[^/]+)", dns.get_record),
        ("PATCH", _ZONE + r"/dns_records/(?P<record_id>[^/]+)", dns.edit_record),
    )
)


def authenticate(headers: Mapping[str, str], tokens: Collection[str]) -> str:
    """The caller's token, or the error Cloudflare answers without a valid one.

    ``headers`` must have lower-case names. The SDK sends ``X-Auth-Email`` /
    ``X-Auth-Key`` *instead of* the token when ``CLOUDFLARE_EMAIL`` or
    ``CLOUDFLARE_API_KEY`` are set: that is refused here with a message saying so.
    """
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        if token.strip() in tokens:
            return token.strip()
        raise ApiError.one(403, Code.AUTHENTICATION_ERROR, "Authentication error")
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


def route(method: str, path: str) -> tuple[Handler, dict[str, str]]:
    known_path = False
    for route_method, pattern, handler in ROUTES:
        match = pattern.fullmatch(path)
        if match is None:
            continue
        known_path = True
        if route_method == method:
            return handler, {k: unquote(v) for k, v in match.groupdict().items()}
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
        tokens: Callable[[], Collection[str]],
    ) -> None:
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
            token = authenticate(headers, self.tokens())
            wait = self.limiter.acquire(token)
            if wait is not None:
                raise ApiError.one(
                    429,
                    Code.RATE_LIMITED,
                    "Please wait and consider throttling your request speed",
                    headers={"Retry-After": str(wait)},
                )
            body = parse_body(raw_body)
            handler, params = route(method, path)
            request = Request(method, path, query, body, params)
            with self.store.lock:
                return handler(self.store, self.validators, request)
        except ApiError as exc:
            return failure(exc)
        except Exception:
            log.exception("emulator handler failed: %s %s", method, path)
            return failure(ApiError.one(500, Code.INTERNAL_ERROR, "Internal emulator error"))
