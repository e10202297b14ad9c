"""API tokens as Cloudflare has them: per-permission, owned by a user, format-checked.

The operator must see what a real account answers: a token lacking one permission gets a
403 on the calls needing it and nothing else; a token of the wrong shape is refused with
400 before anything else (code 6003, chained 6111); and the rate limit is counted per
*user*, across all of that user's tokens.

Where Cloudflare's behaviour is NOT CONFIRMED, the emulator takes the choice that is
hardest on a client: an ``Edit`` permission does not imply ``Read`` (the operator asks
for both); a well-formed token Cloudflare does not know answers 403 ``10000``, exactly
like a missing permission, so a client cannot tell the two apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sandbox.cloudflare_emulator.protocol import ApiError, Code, ErrorItem

ZONE_READ = "Zone Read"
ZONE_SETTINGS_READ = "Zone Settings Read"
ZONE_SETTINGS_EDIT = "Zone Settings Edit"
CACHE_RULES_READ = "Cache Rules Read"
CACHE_RULES_EDIT = "Cache Rules Edit"
DNS_READ = "DNS Read"
DNS_EDIT = "DNS Edit"
ANALYTICS_READ = "Analytics Read"
ALL_PERMISSIONS = frozenset(
    {
        ZONE_READ,
        ANALYTICS_READ,
        ZONE_SETTINGS_READ,
        ZONE_SETTINGS_EDIT,
        CACHE_RULES_READ,
        CACHE_RULES_EDIT,
        DNS_READ,
        DNS_EDIT,
    }
)
DEFAULT_USER = "user"
"""Tokens given without a user all belong to one (Cloudflare counts their requests
together)."""
TOKEN_FORMAT = re.compile(r"[A-Za-z0-9_-]{40}")
"""The shape of a Cloudflare API token; a token the emulator was given is accepted
whatever its shape (tests use readable ones)."""


@dataclass(frozen=True)
class Grant:
    """What a token may do, and whose requests it counts as."""

    permissions: frozenset[str] = ALL_PERMISSIONS
    user: str = DEFAULT_USER

    def __post_init__(self) -> None:
        unknown = set(self.permissions) - ALL_PERMISSIONS
        if unknown:
            raise ValueError(f"unknown permission(s) {sorted(unknown)}: {sorted(ALL_PERMISSIONS)}")
        object.__setattr__(self, "permissions", frozenset(self.permissions))


@dataclass
class Tokens:
    """The account's tokens."""

    grants: dict[str, Grant] = field(default_factory=dict)

    @classmethod
    def of(cls, tokens: str | Iterable[str] | Mapping[str, Grant]) -> Tokens:
        if isinstance(tokens, str):
            return cls({tokens: Grant()})
        if isinstance(tokens, Mapping):
            return cls(dict(tokens))
        return cls({t: Grant() for t in tokens})

    def add(
        self,
        token: str,
        permissions: Iterable[str] = ALL_PERMISSIONS,
        user: str = DEFAULT_USER,
    ) -> Grant:
        grant = Grant(frozenset(permissions), user)
        self.grants[token] = grant
        return grant

    def __bool__(self) -> bool:
        return bool(self.grants)


def malformed() -> ApiError:
    return ApiError(
        400,
        [
            ErrorItem(
                Code.INVALID_REQUEST_HEADERS,
                "Invalid request headers",
                chain=(
                    ErrorItem(Code.INVALID_AUTH_HEADER, "Invalid format for Authorization header"),
                ),
            )
        ],
    )


def check(token: str, grants: Mapping[str, Grant]) -> Grant:
    """The token's grant, or Cloudflare's refusal of the token itself."""
    grant = grants.get(token)
    if grant is not None:
        return grant
    if not TOKEN_FORMAT.fullmatch(token):
        raise malformed()
    raise ApiError.one(403, Code.AUTHENTICATION_ERROR, "Authentication error")


def require(grant: Grant, permission: str) -> None:
    """403 for a call the token has no permission for (that call only)."""
    if permission not in grant.permissions:
        raise ApiError.one(403, Code.AUTHENTICATION_ERROR, "Authentication error")
