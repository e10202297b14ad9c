"""One emulated Cloudflare account, served on loopback and steered from Python.

Tests start it, point the real SDK at ``base_url`` and then steer and inspect it through
this object: seed zones, records and other people's rules, inject faults, shrink the rate
limit, read the request log. The admin HTTP endpoint (``admin``) exposes the same
operations to other processes, such as the demo.

Usage::

    with CloudflareEmulator(token="t").running() as emu:
        zone = emu.add_zone(plan="enterprise")
        client = cloudflare.Cloudflare(api_token="t", base_url=emu.base_url)
        client.zones.settings.get("proxy_read_timeout", zone_id=zone)
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from sandbox.cloudflare_emulator import edge_cache, edge_serving, rulesets, server
from sandbox.cloudflare_emulator.analytics import Traffic
from sandbox.cloudflare_emulator.api import FrontDoor
from sandbox.cloudflare_emulator.faults import Fault, FaultQueue, Kind
from sandbox.cloudflare_emulator.protocol import JsonObject
from sandbox.cloudflare_emulator.ratelimit import (
    DEFAULT_LIMIT,
    DEFAULT_WINDOW_SECONDS,
    Clock,
    RateLimiter,
)
from sandbox.cloudflare_emulator.requestlog import Entry, RequestLog
from sandbox.cloudflare_emulator.state import (
    CACHE_SETTINGS_PHASE,
    DEFAULT_PROXY_READ_TIMEOUT,
    Plan,
    Store,
    ZoneSeed,
    new_id,
)
from sandbox.cloudflare_emulator.tokens import ALL_PERMISSIONS, DEFAULT_USER, Grant, Tokens
from sandbox.cloudflare_emulator.validation import Validators

# A test credential, not a secret: the emulator only listens on loopback.
DEFAULT_TOKEN = "emulator-token"  # noqa: S105


class CloudflareEmulator:
    """A local Cloudflare API for the endpoints the operator uses."""

    def __init__(
        self,
        token: str | Iterable[str] | Mapping[str, Grant] = DEFAULT_TOKEN,
        *,
        zones: Mapping[str, ZoneSeed | Plan | str] | None = None,
        rate_limit: int = DEFAULT_LIMIT,
        rate_window_seconds: float = DEFAULT_WINDOW_SECONDS,
        rate_limit_headers: bool = True,
        clock: Clock = time.monotonic,
        schema_dir: Path | str | None = None,
        port: int = 0,
    ) -> None:
        self.tokens = Tokens.of(token)
        """Tokens with their permissions and user (plain tokens: all permissions, one user)."""
        if not self.tokens:
            raise ValueError("the emulator needs at least one API token")
        self.store = Store()
        self.validators = Validators.load(schema_dir)
        self.limiter = RateLimiter(
            rate_limit, rate_window_seconds, clock, headers=rate_limit_headers
        )
        self.faults = FaultQueue()
        self.log = RequestLog()
        self.traffic = Traffic()
        """What the edge has seen, for the GraphQL Analytics API (``analytics``)."""
        self.bypass_by_default_keeps_read_timeout = False
        """How ``serve`` reads a ``bypass_by_default`` rule for a response it does not store
        (NOT CONFIRMED, ``edge_cache``): strict by default, the zone's timeout."""
        self.front_door = FrontDoor(
            self.store, self.validators, self.limiter, lambda: self.tokens.grants, self.traffic
        )
        self.stopping = threading.Event()
        self._initial_zones = {zid: ZoneSeed.of(seed) for zid, seed in (zones or {}).items()}
        self._port = port
        self._server: server.EmulatorServer | None = None
        self._thread: threading.Thread | None = None
        self._seed()

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> CloudflareEmulator:
        if self._server is None:
            self.stopping.clear()
            self._server, self._thread = server.serve(self, self._port)
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self.stopping.set()  # releases connections held by timeout faults
        self._server.shutdown()
        self._server.hang_up_all()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    @contextmanager
    def running(self) -> Iterator[CloudflareEmulator]:
        self.start()
        try:
            yield self
        finally:
            self.stop()

    def __enter__(self) -> CloudflareEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{server.HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        """What ``cloudflare.Cloudflare(base_url=...)`` expects: ends in ``/client/v4``."""
        return f"{self.url}/client/v4"

    @property
    def admin_url(self) -> str:
        return f"{self.url}{server.ADMIN_PREFIX}"

    # -- seeding -----------------------------------------------------------------------

    def add_zone(
        self,
        zone_id: str | None = None,
        plan: Plan | str = Plan.ENTERPRISE,
        *,
        name: str = "",
        proxy_read_timeout: float = DEFAULT_PROXY_READ_TIMEOUT,
    ) -> str:
        """Create (or replace with an empty one) a zone; returns its id."""
        zone_id = zone_id or new_id()
        self.store.put_zone(zone_id, plan, name=name, proxy_read_timeout=proxy_read_timeout)
        return zone_id

    def add_token(
        self,
        token: str,
        permissions: Iterable[str] = ALL_PERMISSIONS,
        *,
        user: str = DEFAULT_USER,
    ) -> Grant:
        """Accept ``token`` with only ``permissions``, counted against ``user``'s limit."""
        return self.tokens.add(token, permissions, user)

    def set_plan(self, zone_id: str, plan: Plan | str) -> None:
        with self.store.lock:
            self.store.zone(zone_id).plan = Plan(plan)

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
    ) -> JsonObject:
        return self.store.add_dns_record(
            zone_id, name, record_type, content, proxied=proxied, ttl=ttl, comment=comment
        )

    def add_rules(self, zone_id: str, rules: Sequence[Mapping[str, Any]]) -> JsonObject:
        """Append Cache Rules as another tool would have (validated like a PUT)."""
        return rulesets.seed_rules(self.store, self.validators, zone_id, [dict(r) for r in rules])

    # -- reading state -----------------------------------------------------------------

    def setting(self, zone_id: str) -> JsonObject:
        """The zone's ``proxy_read_timeout`` setting, as the API returns it."""
        with self.store.lock:
            return self.store.zone(zone_id).setting_json()

    def ruleset(self, zone_id: str) -> JsonObject | None:
        """The Cache Rules entry point, or None if the zone has none."""
        with self.store.lock:
            found = self.store.zone(zone_id).entrypoints.get(CACHE_SETTINGS_PHASE)
            return found.to_json() if found else None

    def rules(self, zone_id: str) -> list[JsonObject]:
        found = self.ruleset(zone_id)
        return list(found["rules"]) if found else []

    def edge_request(
        self,
        zone_id: str,
        method: str,
        host: str,
        path: str,
        *,
        cache_control: str | None = None,
        bypass_by_default_keeps_read_timeout: bool = False,
    ) -> edge_cache.Verdict:
        """What the edge does with a visitor's request under the zone's Cache Rules
        (``edge_cache``): the read timeout it gets, and why."""
        with self.store.lock:
            zone = self.store.zone(zone_id)
            ruleset = zone.entrypoints.get(CACHE_SETTINGS_PHASE)
            rules = list(ruleset.rules) if ruleset is not None else []
            timeout = zone.proxy_read_timeout
        return edge_cache.evaluate(
            rules,
            timeout,
            edge_cache.EdgeRequest(method, host, path, origin_cache_control=cache_control),
            bypass_by_default_keeps_read_timeout=bypass_by_default_keeps_read_timeout,
        )

    def serve(
        self,
        host: str,
        path: str,
        method: str,
        ttfb_seconds: float,
        status: int = 200,
        at: float | None = None,
        *,
        cache_control: str | None = None,
    ) -> int | None:
        """The edge's answer to one visitor request whose origin takes ``ttfb_seconds`` to
        the first byte (``edge_serving``): 524 past the read timeout in force, else
        ``status``; recorded for the analytics. ``None``: Cloudflare never sees it (no
        proxied record of the host), nothing is recorded."""
        request = edge_serving.VisitorRequest(
            host, path, method, ttfb_seconds, status, at, cache_control
        )
        return self.serve_many([request])[0]

    def serve_many(self, requests: Sequence[edge_serving.VisitorRequest]) -> list[int | None]:
        """``serve`` for a batch, in order (what ``POST /__emulator/edge-requests`` does)."""
        return edge_serving.serve(
            self.store,
            self.traffic,
            requests,
            bypass_by_default_keeps_read_timeout=self.bypass_by_default_keeps_read_timeout,
        )

    def dns_records(self, zone_id: str) -> list[JsonObject]:
        with self.store.lock:
            return copy.deepcopy(list(self.store.zone(zone_id).dns_records.values()))

    def effectively_proxied(self, zone_id: str, name: str) -> bool:
        return self.store.effectively_proxied(zone_id, name)

    def reachable(self, zone_id: str, name: str) -> bool:
        """Whether requests to ``name`` reach something (a grey-clouded Tunnel does not)."""
        return self.store.reachable(zone_id, name)

    def snapshot(self) -> JsonObject:
        return self.store.snapshot()

    # -- faults, rate limit, log -------------------------------------------------------

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 500,
        path_prefix: str | None = None,
        method: str | None = None,
        retry_after: float | None = 1,
    ) -> None:
        """Answer the next ``count`` matching API requests with ``status`` (a 429 carries
        ``Retry-After: retry_after``, none when ``None``)."""
        self.faults.add(
            Fault(Kind.STATUS, count, status, path_prefix, method, retry_after=retry_after)
        )

    def hang_next(
        self,
        count: int = 1,
        *,
        hold_seconds: float,
        path_prefix: str | None = None,
        method: str | None = None,
    ) -> None:
        """Hold the next ``count`` matching requests ``hold_seconds``, then hang up."""
        self.faults.add(
            Fault(
                Kind.TIMEOUT,
                count,
                path_prefix=path_prefix,
                method=method,
                hold_seconds=hold_seconds,
            )
        )

    def add_fault(self, spec: Mapping[str, Any]) -> None:
        """Queue a fault from its JSON form (what the admin endpoint accepts)."""
        self.faults.add(Fault(**dict(spec)))

    def clear_faults(self) -> None:
        self.faults.clear()

    def set_rate_limit(self, limit: int, window_seconds: float = DEFAULT_WINDOW_SECONDS) -> None:
        self.limiter.configure(limit, window_seconds)

    def requests(self, method: str | None = None, path_contains: str | None = None) -> list[Entry]:
        return self.log.entries(method, path_contains)

    def clear_requests(self) -> None:
        self.log.clear()

    def reset(self) -> None:
        """Back to the start: the zones given at construction (empty), no faults, an
        empty log and fresh rate-limit windows."""
        with self.store.lock:
            self.store.clear()
            self._seed()
        self.faults.clear()
        self.log.clear()
        self.limiter.reset()
        self.traffic.clear()

    def _seed(self) -> None:
        for zone_id, seed in self._initial_zones.items():
            self.store.put_zone(
                zone_id, seed.plan, name=seed.name, proxy_read_timeout=seed.proxy_read_timeout
            )
