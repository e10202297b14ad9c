"""What Cloudflare's refusals mean: the error hierarchy, the token permissions, and the
translation of the SDK's exceptions into errors the caller can act on.

    CloudflareError
    ├── RateLimited             429, or the budget refused (nothing sent): retry after
    │   │                       ``retry_after`` seconds, never sooner
    │   └── BudgetExhausted     the operator's own per-token budget is spent
    ├── CloudflareUnavailable   5xx, timeout, connection error: back off, retry next cycle
    ├── CloudflareRefused       4xx: plan, quota or validation; Cloudflare's message says
    │   │                       what; retrying the same request will not help
    │   └── NotFound            404
    ├── AuthFailed              401, or 400 with 6003/6111 (a malformed token): the token
    │                           itself is rejected; stop until the Secret changes
    └── PermissionMissing       403: the token lacks ``permission`` (or Cloudflare does not
                                know it at all); only the feature needing it stops

Every message is rebuilt from Cloudflare's error list and is safe to show; a 403 names the
permission (as the dashboard names it) the request needed (``permission_for``).
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Sequence

import cloudflare

from timeout_budget.clients.request_budget import RequestBudget


class CloudflareError(Exception):
    """Something Cloudflare (or the budget) said no to; the message is safe to show."""


class RateLimited(CloudflareError):
    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BudgetExhausted(RateLimited):
    pass


class CloudflareUnavailable(CloudflareError):
    pass


class CloudflareRefused(CloudflareError):
    def __init__(self, message: str, status: int, codes: Sequence[int] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.codes = tuple(codes)


class NotFound(CloudflareRefused):
    pass


class AuthFailed(CloudflareError):
    pass


class DatasetUnavailable(CloudflareRefused):
    """GraphQL Analytics: the zone's plan has no access to the dataset asked for."""


class PermissionMissing(CloudflareError):
    """403 on one call: the token lacks ``permission`` for it. Cloudflare answers an
    unknown token the same way, so the message says both."""

    def __init__(self, message: str, permission: str) -> None:
        super().__init__(message)
        self.permission = permission


ZONE_READ = "Zone Read"
ZONE_SETTINGS_READ = "Zone Settings Read"
ZONE_SETTINGS_EDIT = "Zone Settings Edit"
CACHE_RULES_READ = "Cache Rules Read"
CACHE_RULES_EDIT = "Cache Rules Edit"
DNS_READ = "DNS Read"
DNS_EDIT = "DNS Edit"
ANALYTICS_READ = "Analytics Read"
_PERMISSIONS = {
    "graphql": ANALYTICS_READ,
    "get_zone": ZONE_READ,
    "get_zone_setting": ZONE_SETTINGS_READ,
    "edit_zone_setting": ZONE_SETTINGS_EDIT,
    "get_cache_rules": CACHE_RULES_READ,
    "list_dns_records": DNS_READ,
    "edit_dns_record": DNS_EDIT,
}
MALFORMED_TOKEN_CODES = frozenset({6003, 6111})
"""400 "Invalid request headers" / "Invalid format for Authorization header"."""


def permission_for(operation: str) -> str:
    """The token permission (as the dashboard names it) a kind of request needs; every
    Cache Rules write needs Cache Rules Edit."""
    if operation in _PERMISSIONS:
        return _PERMISSIONS[operation]
    return CACHE_RULES_EDIT if "cache_rule" in operation else ZONE_READ


def translate(
    exc: cloudflare.APIError, what: str, permission: str, budget: RequestBudget
) -> CloudflareError:
    """What an SDK exception means for the caller, rebuilt from Cloudflare's error list
    only (the SDK exception holds the request and its ``Authorization`` header)."""
    if isinstance(exc, cloudflare.APITimeoutError):
        return CloudflareUnavailable(f"{what}: Cloudflare did not answer in time")
    if isinstance(exc, cloudflare.APIConnectionError):
        return CloudflareUnavailable(f"{what}: could not connect to Cloudflare")
    if not isinstance(exc, cloudflare.APIStatusError):
        return CloudflareUnavailable(f"{what}: unexpected answer from Cloudflare")
    status = exc.status_code
    codes, text = _errors(exc.body)
    said = f"{status} {text}" if text else f"HTTP {status}"
    if status == 429:
        wait = budget.rate_limited(_retry_after(exc.response.headers.get("Retry-After")))
        return RateLimited(
            f"{what}: Cloudflare rate limit (429): retry after {wait:g}s", retry_after=wait
        )
    if status == 401:
        return AuthFailed(
            f"{what}: Cloudflare rejected the API token ({said}); check the token in the "
            "Secret (revoked or expired?)"
        )
    if status == 400 and MALFORMED_TOKEN_CODES & set(codes):
        return AuthFailed(
            f"{what}: Cloudflare rejected the API token as malformed ({said}); check the "
            "Secret holds the token alone (an API token, not a Global API Key)"
        )
    if status == 403:
        return PermissionMissing(
            f"{what}: Cloudflare refused the API token ({said}): it needs the permission "
            f"{permission} on this zone (or Cloudflare does not know the token at all)",
            permission,
        )
    if status >= 500:
        return CloudflareUnavailable(f"{what}: Cloudflare error {said}")
    kind = NotFound if status == 404 else CloudflareRefused
    return kind(f"{what}: Cloudflare refused: {said}", status, codes)


def outcome_of(failure: CloudflareError) -> str:
    """The ``outcome`` label a failed request is counted under."""
    if isinstance(failure, RateLimited):
        return "rate_limited"
    if isinstance(failure, AuthFailed | PermissionMissing):
        return "auth_failed"
    if isinstance(failure, NotFound):
        return "not_found"
    if isinstance(failure, CloudflareRefused):
        return "refused"
    return "unavailable"


def _errors(body: object) -> tuple[list[int], str]:
    """Cloudflare's ``errors[{code, message, error_chain?}]`` as codes (chained ones
    included: a malformed token is 6003 with 6111 in its chain) and one line."""
    items = body.get("errors") if isinstance(body, dict) else None
    codes: list[int] = []
    parts: list[str] = []
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict):
            continue
        code, message = item.get("code"), item.get("message")
        if isinstance(code, int):
            codes.append(code)
        chained, chain_text = _errors({"errors": item.get("error_chain")})
        codes.extend(chained)
        text = f"{code}: {message}" if code is not None else str(message)
        parts.append(f"{text} ({chain_text})" if chain_text else text)
    return codes, "; ".join(parts)


def _retry_after(header: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (a number or an HTTP date)."""
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


GRAPHQL_BUDGET_DEPLETED = "budget depleted"
"""In the message of the GraphQL API's 429 for its own budget (300 per 5 minutes per
user), which is not the REST API's limit: it stops analytics only."""
NO_ACCESS = "does not have access"
"""In the message of the GraphQL API's 403 for a plan without the dataset."""


def graphql_failure(
    exc: cloudflare.APIError, what: str, budget: RequestBudget, analytics: RequestBudget
) -> CloudflareError:
    """``translate`` for the GraphQL Analytics API, whose refusals mean other things: its
    429 is its own query budget (only analytics wait), a 403 is either the plan (no
    access to the dataset) or the token (no Analytics Read)."""
    if isinstance(exc, cloudflare.APIStatusError):
        text = graphql_errors(exc.body)
        if exc.status_code == 429 and GRAPHQL_BUDGET_DEPLETED in text:
            wait = analytics.rate_limited(_retry_after(exc.response.headers.get("Retry-After")))
            return RateLimited(
                f"{what}: Cloudflare's GraphQL budget is depleted ({text}): retry after {wait:g}s",
                retry_after=wait,
            )
        if exc.status_code == 429:
            return CloudflareRefused(f"{what}: Cloudflare refused: 429 {text}", 429)
        if exc.status_code == 403 and NO_ACCESS in text:
            return DatasetUnavailable(f"{what}: not available for this zone's plan: {text}", 403)
        if exc.status_code == 403:
            return PermissionMissing(
                f"{what}: Cloudflare refused the API token (403 {text}): it needs the "
                f"permission {ANALYTICS_READ} on this zone",
                ANALYTICS_READ,
            )
        if exc.status_code == 400:
            return CloudflareRefused(f"{what}: Cloudflare refused the query: {text}", 400)
    return translate(exc, what, ANALYTICS_READ, budget)


def graphql_errors(body: object) -> str:
    """A GraphQL answer's ``errors[{message, path}]`` as one line."""
    items = body.get("errors") if isinstance(body, dict) else None
    parts = []
    for item in items if isinstance(items, list) else ():
        if isinstance(item, dict) and item.get("message"):
            where = item.get("path")
            at = f" (at {'.'.join(str(p) for p in where)})" if isinstance(where, list) else ""
            parts.append(f"{item['message']}{at}")
    return "; ".join(parts) or "no error message"
