"""The values the Cloudflare client takes and hands back: the API token (never shown),
the zone's ``proxy_read_timeout`` and the Cache Rules entry point."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any


class ApiToken:
    """A Cloudflare API token that never shows itself in a repr, a log line or a message."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        value = value.strip()
        if not value:
            raise ValueError("the Cloudflare API token is empty")
        self._value = value

    def reveal(self) -> str:
        return self._value

    @property
    def fingerprint(self) -> str:
        """Tells tokens apart in memory (budgets, auth failures); never shown anywhere."""
        return hashlib.sha256(self._value.encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return "ApiToken(<redacted>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ApiToken) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class ZoneTimeout:
    """The zone setting ``proxy_read_timeout``."""

    seconds: int
    editable: bool


@dataclass(frozen=True)
class Entrypoint:
    """The zone's Cache Rules entry point, its rules exactly as Cloudflare sent them."""

    id: str
    version: str
    rules: list[dict[str, Any]]
