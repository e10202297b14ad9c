"""What the emulated Cloudflare account holds: zones with a plan, their settings, Cache
Rules entry points and DNS records.

Tests and the demo need a Cloudflare whose answers depend on the zone's plan (can the
Proxy Read Timeout be edited? how many rules fit?) and that remembers what was written.
One lock guards the whole store: every API call and admin action runs under it, so
requests are applied one at a time, in arrival order.
"""

from __future__ import annotations

import copy
import enum
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sandbox.cloudflare_emulator.protocol import ApiError, Code, JsonObject

CACHE_SETTINGS_PHASE = "http_request_cache_settings"
PROXY_READ_TIMEOUT = "proxy_read_timeout"
# The 2024 OpenAPI extract's default for zones_proxy_read_timeout_value.
DEFAULT_PROXY_READ_TIMEOUT = 100.0
PROXIABLE_TYPES = frozenset({"A", "AAAA", "CNAME"})
CLOUDFLARE_ONLY_SUFFIX = ".cfargotunnel.com"
"""A Cloudflare Tunnel: reachable only through the proxy."""
CLOUDFLARE_ONLY_ADDRESSES = frozenset({"100::"})
"""The Workers placeholder: nothing answers there without the proxy."""


class Plan(enum.StrEnum):
    FREE = "free"
    PRO = "pro"
    BUSINESS = "business"
    ENTERPRISE = "enterprise"

    @property
    def rule_quota(self) -> int:
        """Rules allowed in one phase entry point (Cache Rules quotas)."""
        return {"free": 10, "pro": 25, "business": 50, "enterprise": 300}[self.value]

    @property
    def comment_limit(self) -> int:
        """Characters a DNS record comment may hold (Free 100, paid plans 500)."""
        return 100 if self is Plan.FREE else 500

    @property
    def can_raise_timeouts(self) -> bool:
        """Only Enterprise may edit ``proxy_read_timeout`` or set a rule ``read_timeout``."""
        return self is Plan.ENTERPRISE


@dataclass(frozen=True)
class ZoneSeed:
    """A zone the emulator starts with (and returns to on reset)."""

    plan: Plan
    proxy_read_timeout: float = DEFAULT_PROXY_READ_TIMEOUT
    name: str = ""

    @classmethod
    def of(cls, value: ZoneSeed | Plan | str) -> ZoneSeed:
        return value if isinstance(value, ZoneSeed) else cls(Plan(value))


def new_id() -> str:
    """A Cloudflare-style identifier: 32 lowercase hex digits."""
    return secrets.token_hex(16)


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Ruleset:
    id: str
    phase: str
    name: str = "default"
    description: str = ""
    version: int = 1
    last_updated: str = field(default_factory=now_iso)
    rules: list[JsonObject] = field(default_factory=list)

    def to_json(self) -> JsonObject:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "kind": "zone",
            "phase": self.phase,
            "version": str(self.version),
            "last_updated": self.last_updated,
            "rules": copy.deepcopy(self.rules),
        }


@dataclass
class Zone:
    id: str
    plan: Plan
    name: str = ""
    proxy_read_timeout: float = DEFAULT_PROXY_READ_TIMEOUT
    proxy_read_timeout_modified_on: str | None = None
    entrypoints: dict[str, Ruleset] = field(default_factory=dict)
    dns_records: dict[str, JsonObject] = field(default_factory=dict)

    def setting_json(self) -> JsonObject:
        return {
            "id": PROXY_READ_TIMEOUT,
            "value": self.proxy_read_timeout,
            "editable": self.plan.can_raise_timeouts,
            "modified_on": self.proxy_read_timeout_modified_on,
        }

    def ruleset_by_id(self, ruleset_id: str) -> Ruleset | None:
        return next((rs for rs in self.entrypoints.values() if rs.id == ruleset_id), None)

    def to_json(self) -> JsonObject:
        return {
            "id": self.id,
            "name": self.name,
            "plan": self.plan.value,
            "settings": {PROXY_READ_TIMEOUT: self.setting_json()},
            "rulesets": {phase: rs.to_json() for phase, rs in self.entrypoints.items()},
            "dns_records": copy.deepcopy(list(self.dns_records.values())),
        }


class Store:
    """All zones of the emulated account, behind one re-entrant lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.zones: dict[str, Zone] = {}

    def zone(self, zone_id: str, path: str = "") -> Zone:
        """The zone, or the API's answer for an unknown identifier."""
        found = self.zones.get(zone_id)
        if found is None:
            raise ApiError.one(
                404,
                Code.UNKNOWN_OBJECT,
                f"Could not route to /zones/{zone_id}{path}, "
                "perhaps your object identifier is invalid?",
            )
        return found

    def put_zone(
        self,
        zone_id: str,
        plan: Plan | str,
        *,
        name: str = "",
        proxy_read_timeout: float = DEFAULT_PROXY_READ_TIMEOUT,
    ) -> Zone:
        """Create a zone, or replace one with an empty zone of that id."""
        with self.lock:
            zone = Zone(zone_id, Plan(plan), name, proxy_read_timeout)
            self.zones[zone_id] = zone
            return zone

    def add_dns_record(
        self,
        zone_id: str,
        name: str,
        record_type: str,
        content: str,
        *,
        proxied: bool = False,
        ttl: float = 1,
        comment: str | None = None,
        record_id: str | None = None,
    ) -> JsonObject:
        """Seed a DNS record the way Cloudflare would list it; returns a copy."""
        kind = record_type.upper()
        if proxied and kind not in PROXIABLE_TYPES:
            raise ValueError(f"a {kind} record cannot be proxied")
        stamp = now_iso()
        record: JsonObject = {
            "id": record_id or new_id(),
            "name": name.rstrip(".").lower(),
            "type": kind,
            "content": content,
            "proxiable": kind in PROXIABLE_TYPES,
            "proxied": proxied,
            "ttl": 1 if proxied else ttl,
            "comment": comment,
            "tags": [],
            "settings": {},
            "meta": {},
            "created_on": stamp,
            "modified_on": stamp,
        }
        with self.lock:
            self.zone(zone_id).dns_records[record["id"]] = record
            return copy.deepcopy(record)

    def effectively_proxied(self, zone_id: str, name: str) -> bool:
        """Whether traffic to ``name`` goes through Cloudflare: if any A/AAAA/CNAME
        record of the name is proxied, all of them are; and a request is proxied when any
        hostname on its CNAME chain (inside the zone) is."""
        with self.lock:
            return any(r["proxied"] for r in self._chain(zone_id, name))

    def reachable(self, zone_id: str, name: str) -> bool:
        """Whether requests to ``name`` reach an origin: a name whose records lead to a
        Cloudflare-only target (a Tunnel, ``100::``) answers only when proxied."""
        with self.lock:
            chain = self._chain(zone_id, name)
            if not chain:
                return False
            only = any(_cloudflare_only(r) for r in chain)
            return not only or any(r["proxied"] for r in chain)

    def _chain(self, zone_id: str, name: str) -> list[JsonObject]:
        """The proxiable records of ``name`` and of the names its CNAMEs lead to."""
        records = self.zone(zone_id).dns_records.values()
        found: list[JsonObject] = []
        todo, seen = [name.rstrip(".").lower()], set()
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            for record in records:
                if record["name"] == current and record["type"] in PROXIABLE_TYPES:
                    found.append(record)
                    if record["type"] == "CNAME":
                        todo.append(str(record["content"]).rstrip(".").lower())
        return found

    def snapshot(self) -> JsonObject:
        with self.lock:
            return {"zones": {zid: z.to_json() for zid, z in self.zones.items()}}

    def clear(self) -> None:
        with self.lock:
            self.zones.clear()


def _cloudflare_only(record: JsonObject) -> bool:
    content = str(record.get("content", "")).rstrip(".").lower()
    if record["type"] == "CNAME":
        return content.endswith(CLOUDFLARE_ONLY_SUFFIX)
    return content in CLOUDFLARE_ONLY_ADDRESSES
