"""What the operator knows about one CloudflareZone between two reads of Cloudflare.

Every route of a zone asks about it every cycle (what is the zone's timeout? is my rule
there? is my hostname grey?), and Cloudflare allows only so many requests. So each zone
keeps a cache: the ``proxy_read_timeout`` setting, the Cache Rules entry point and the DNS
records of the hostnames its routes use (and of the names their CNAMEs lead to),
refreshed when the operator writes (from
Cloudflare's answer) and every ``syncIntervalSeconds`` (to see drift). It also remembers
the last thing that went wrong and until when to hold back: for the whole zone (a
rejected token, a 429, an outage), or for one permission the token lacks, which stops
only the feature needing it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from timeout_budget.clients.cloudflare import CloudflareClient
from timeout_budget.clients.cloudflare_errors import (
    ZONE_SETTINGS_READ,
    AuthFailed,
    BudgetExhausted,
    CloudflareError,
    CloudflareUnavailable,
    PermissionMissing,
    RateLimited,
)
from timeout_budget.clients.cloudflare_values import ApiToken, Entrypoint, ZoneTimeout
from timeout_budget.decide import rules
from timeout_budget.decide.rules import InForce
from timeout_budget.decide.zone_raise import ZoneRaise
from timeout_budget.model.spec import CloudflareZoneSpec

BACKOFF_BASE_SECONDS = 15.0
BACKOFF_MAX_SECONDS = 300.0
AUTH_RETRY_SECONDS = 300.0


@dataclass(frozen=True)
class Problem:
    """The last failure, as a condition reason and a message a person can act on."""

    reason: str
    message: str
    retry_at: float | None = None
    """No request before this moment (``None``: retry whenever asked)."""


@dataclass
class ZoneState:
    namespace: str
    name: str
    spec: CloudflareZoneSpec
    token: ApiToken
    client: CloudflareClient
    timeout: ZoneTimeout | None = None
    entrypoint: Entrypoint | None = None
    rules_read: bool = False
    """The entry point was read (``entrypoint`` may still be ``None``: the zone has none)."""
    dns: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Records by hostname, for the DNS-only hostnames of the zone's routes."""
    chains: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """By DNS-only hostname: the records of the names its CNAME chain leads to in the zone
    (a proxied one keeps the hostname proxied)."""
    denied: dict[str, Problem] = field(default_factory=dict)
    """By permission: Cloudflare's 403, and until when the feature needing it holds
    back. Only those the client still sees refused count (``denials``)."""
    synced_at: float | None = None
    """When everything was last read successfully."""
    attempted_at: float | None = None
    enforce_note: Problem | None = None
    """Why ``proxyReadTimeoutSeconds`` is not in force (plan, refusal), if it is not."""
    raised: ZoneRaise | None = None
    """The operator's zone-wide raise in force (``spec.raiseProxyReadTimeout``), kept in
    the CloudflareZone's status too, so a restarted operator still gives the value back."""
    raised_for: tuple[str, ...] = ()
    """The routes whose methods needed the raise."""
    raise_note: str | None = None
    """Why the routes' need is not (fully) met at the zone, or what someone else changed."""
    problem: Problem | None = None
    auth_failed: str | None = None
    """Fingerprint of the token Cloudflare rejected: nothing is sent with it until the
    Secret changes or the problem's ``retry_at`` (its permissions may have been fixed)."""
    unavailable_streak: int = 0
    """5xx/timeouts in a row: the backoff doubles with each."""
    _rules_seen: dict[tuple[str, str, str, str], InForce | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """``in_force`` by (namespace, name, host, path prefix), for ``_rules_seen_in``."""
    _rules_seen_in: Entrypoint | None = field(default=None, init=False, repr=False, compare=False)
    """The entry point ``_rules_seen`` was found in: a read or a write replaces it (its
    rules are never changed in place), and the answers with it."""

    @property
    def label(self) -> str:
        return f"CloudflareZone {self.namespace}/{self.name}"

    @property
    def base_seconds(self) -> int | None:
        """The zone's own read timeout: its value without the operator's zone-wide raise
        (the default budget of its routes, and what they are compared with)."""
        if self.timeout is None:
            return None
        if self.raised is not None and self.timeout.seconds == self.raised.to_seconds:
            return self.raised.from_seconds
        return self.timeout.seconds

    @property
    def rules(self) -> list[dict[str, Any]]:
        return self.entrypoint.rules if self.entrypoint is not None else []

    def rule_in_force(self, namespace: str, name: str, host: str, prefix: str) -> InForce | None:
        """``decide.rules.in_force`` for one route in this zone's rules, found once per
        entry point: every pass (the cycle's, the fast lane's) asks it of each edge route,
        and it reads the zone's whole rule list (routes x rules)."""
        if self._rules_seen_in is not self.entrypoint:
            self._rules_seen = {}
            self._rules_seen_in = self.entrypoint
        key = (namespace, name, host, prefix)
        if key not in self._rules_seen:
            self._rules_seen[key] = rules.in_force(self.rules, namespace, name, host, prefix)
        return self._rules_seen[key]

    def failed(self, exc: CloudflareError, now: float) -> None:
        """Remember what went wrong and how long to hold back."""
        text = str(exc)
        if isinstance(exc, PermissionMissing):
            wait = max(AUTH_RETRY_SECONDS, self.spec.sync_interval_seconds)
            self.denied[exc.permission] = Problem("PermissionMissing", text, retry_at=now + wait)
            if exc.permission == ZONE_SETTINGS_READ:  # nothing about the zone is known
                self.problem = self.denied[exc.permission]
        elif isinstance(exc, AuthFailed):
            # Tried again when the Secret changes, or after a while (permissions fixed).
            self.auth_failed = self.token.fingerprint
            wait = max(AUTH_RETRY_SECONDS, self.spec.sync_interval_seconds)
            self.problem = Problem("AuthFailed", text, retry_at=now + wait)
        elif isinstance(exc, RateLimited):
            reason = "BudgetExhausted" if isinstance(exc, BudgetExhausted) else "RateLimited"
            self.problem = Problem(reason, text, retry_at=now + exc.retry_after)
        elif isinstance(exc, CloudflareUnavailable):
            self.problem = Problem("CloudflareUnavailable", text, retry_at=self.unavailable(now))
        else:
            self.problem = Problem("Refused", text)

    def succeeded(self) -> None:
        self.problem = None
        self.auth_failed = None
        self.available()

    def held_back(self, now: float) -> bool:
        """Cloudflare said to wait (429), is down (backoff) or rejected the token."""
        retry_at = self.problem.retry_at if self.problem is not None else None
        return retry_at is not None and now < retry_at

    def token_rejected(self) -> bool:
        return self.auth_failed == self.token.fingerprint

    def denials(self) -> dict[str, Problem]:
        """The permissions the token lacks, as far as the last request needing each one
        knows (a later success, or a new token, clears one)."""
        return {p: d for p, d in sorted(self.denied.items()) if p in self.client.denied}

    def denial(self, permissions: Iterable[str], now: float) -> Problem | None:
        """Why a feature needing ``permissions`` must hold back now, if it must."""
        current = self.denials()
        for permission in permissions:
            found = current.get(permission)
            if found is not None and found.retry_at is not None and now < found.retry_at:
                return found
        return None

    def unavailable(self, now: float) -> float:
        """Count one more 5xx/timeout; returns the moment to hold back until."""
        self.unavailable_streak += 1
        delay = min(
            BACKOFF_BASE_SECONDS * 2.0 ** (self.unavailable_streak - 1), BACKOFF_MAX_SECONDS
        )
        return now + delay

    def available(self) -> None:
        self.unavailable_streak = 0
