"""The admin endpoint ``/__emulator/...``: steer the emulator from another process.

The demo runs the emulator as its own process and still has to seed zones, DNS records
and other people's rules, inject faults and read the request log. These endpoints map
one to one onto ``CloudflareEmulator``'s Python API and answer in the same envelope as
the API (``{"success", "errors", "messages", "result"}``). They need no token: the
server only listens on loopback.

=========================================  =========================================
``GET    /``                               this list
``GET    /state``                          zones with settings, rulesets, DNS records
``POST   /zones``                          ``{"id"?, "plan", "name"?, "proxy_read_timeout"?}``
``PATCH  /zones/{id}``                     ``{"plan"}``
``POST   /zones/{id}/dns_records``         ``{"name", "type", "content", "proxied"?, "ttl"?,
                                           "comment"?}``
``POST   /zones/{id}/rules``               ``{"rules": [...]}`` appended to the entry point
``GET|POST|DELETE /faults``                list / queue one (``Fault`` fields) / clear
``GET|DELETE /requests``                   the request log (``?method=&path_contains=``)
``GET|PUT|DELETE /rate_limit``             show / ``{"limit", "window_seconds"?}`` / reset
``POST   /tokens``                         ``{"token", "permissions"?, "user"?}``
``POST   /traffic``                        ``{"hits": [...]?, "delaySeconds"?}`` raw edge hits
``POST   /edge-requests``                  ``{"requests": [{"host", "path", "method",
                                           "ttfbSeconds", "status"?, "at"?,
                                           "cacheControl"?}]}`` -> ``{"statuses": [...]}``
                                           (``edge_serving``; see the handler)
``GET    /edge-requests/summary``          counts per window by host, path, method, status
                                           (``?windowSeconds=1&since=&host=``)
``POST   /reset``                          back to the start
=========================================  =========================================
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sandbox.cloudflare_emulator import edge_serving
from sandbox.cloudflare_emulator.analytics import Hit
from sandbox.cloudflare_emulator.api import parse_body
from sandbox.cloudflare_emulator.protocol import ApiError, Reply, failure, ok
from sandbox.cloudflare_emulator.state import DEFAULT_PROXY_READ_TIMEOUT
from sandbox.cloudflare_emulator.tokens import ALL_PERMISSIONS, DEFAULT_USER

if TYPE_CHECKING:
    from sandbox.cloudflare_emulator.emulator import CloudflareEmulator

# Not a Cloudflare code: admin requests the emulator cannot carry out.
ADMIN_ERROR = 1000

AdminHandler = Callable[
    ["CloudflareEmulator", Mapping[str, str], Any, Mapping[str, Sequence[str]]], Any
]

_ROUTES: list[tuple[str, re.Pattern[str], AdminHandler]] = []


def _route(method: str, pattern: str) -> Callable[[AdminHandler], AdminHandler]:
    def register(handler: AdminHandler) -> AdminHandler:
        _ROUTES.append((method, re.compile(pattern), handler))
        return handler

    return register


def _obj(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValueError("the request body must be a JSON object")
    return body


@_route("GET", r"/?")
def _index(emu: CloudflareEmulator, p: Mapping[str, str], body: Any, q: Any) -> Any:
    return {
        "base_url": emu.base_url,
        "endpoints": [f"{m} {r.pattern}" for m, r, _ in _ROUTES],
    }


@_route("GET", r"/state")
def _state(emu: CloudflareEmulator, p: Mapping[str, str], body: Any, q: Any) -> Any:
    return emu.snapshot()


@_route("POST", r"/zones")
def _add_zone(emu: CloudflareEmulator, p: Mapping[str, str], body: Any, q: Any) -> Any:
    spec = _obj(body)
    zone_id = emu.add_zone(
        spec.get("id"),
        spec.get("plan", "enterprise"),
        name=spec.get("name", ""),
        proxy_read_timeout=spec.get("proxy_read_timeout", DEFAULT_PROXY_READ_TIMEOUT),
    )
    return emu.snapshot()["zones"][zone_id]


@_route("PATCH", r"/zones/(?P<zone_id>[^/]+)")
def _set_plan(emu: CloudflareEmulator, p: Mapping[str, str], body: Any, q: Any) -> Any:
    emu.set_plan(p["zone_id"], _obj(body)["plan"])
    return emu.snapshot()["zones"][p["zone_id"]]


@_route("POST", r"/zones/(?P<zone_id>[^/]+)/dns_records")
def _add_record(emu: CloudflareEmulator, p: Mapping[str, str], body: Any, q: Any) -> Any:
    spec = _obj(body)
    return emu.add_dns_record(
        p["zone_id"],
        spec["name"],
        spec["type"],
        spec["content"],
        proxied=bool(spec.get("proxied", False)),
        ttl=spec.get("ttl", 1),
        comment=spec.get("comment"),
    )


@_route("POST", r"/zones/(?P<zone_id>[^/]+)/rules")
def _add_rules(emu: CloudflareEmulator, p: Mapping[str, str], body: Any, q: Any) -> Any:
    rules = _obj(body).get("rules")
    if not isinstance(rules, list):
        raise ValueError('the body must be {"rules": [...]}')
    return emu.add_rules(p["zone_id"], rules)


@_route("GET", r"/faults")
def _faults(emu: CloudflareEmulator, p: Mapping[str, str], body: Any, q: Any) -> Any:
    return emu.faults.pending()


@_route("POST", r"/faults")
def _add_fault(emu: CloudflareEmulator, p: Mapping[str, str], body: Any, q: Any) -> Any:
    emu.add_fault(_obj(body))
    return emu.faults.pending()


@_route("DELETE", r"/faults")
def _clear_faults(emu: CloudflareEmulator, p: Mapping[str, str], body: Any, q: Any) -> Any:
    emu.clear_faults()
    return []


@_route("GET", r"/requests")
def _requests(
    emu: CloudflareEmulator, p: Mapping[str, str], body: Any, q: Mapping[str, Sequence[str]]
) -> Any:
    method = q["method"][-1] if q.get("method") else None
    contains = q["path_contains"][-1] if q.get("path_contains") else None
    return [e.to_json() for e in emu.requests(method, contains)]


@_route("DELETE", r"/requests")
def _clear_requests(emu: CloudflareEmulator, p: Mapping[str, str], body: Any, q: Any) -> Any:
    emu.clear_requests()
    return []


@_route("GET", r"/rate_limit")
def _rate_limit(emu: CloudflareEmulator, p: Mapping[str, str], body: Any, q: Any) -> Any:
    return {"limit": emu.limiter.limit, "window_seconds": emu.limiter.window_seconds}


@_route("PUT", r"/rate_limit")
def _set_rate_limit(emu: CloudflareEmulator, p: Mapping[str, str], body: Any, q: Any) -> Any:
    spec = _obj(body)
    emu.set_rate_limit(int(spec["limit"]), float(spec.get("window_seconds", 300.0)))
    return _rate_limit(emu, p, body, q)


@_route("DELETE", r"/rate_limit")
def _reset_rate_limit(emu: CloudflareEmulator, p: Mapping[str, str], body: Any, q: Any) -> Any:
    emu.limiter.reset()
    return _rate_limit(emu, p, body, q)


@_route("POST", r"/tokens")
def _add_token(emu: CloudflareEmulator, p: Mapping[str, str], body: Any, q: Any) -> Any:
    spec = _obj(body)
    grant = emu.add_token(
        str(spec["token"]),
        spec.get("permissions", sorted(ALL_PERMISSIONS)),
        user=str(spec.get("user", DEFAULT_USER)),
    )
    return {"permissions": sorted(grant.permissions), "user": grant.user}


@_route("POST", r"/traffic")
def _add_traffic(emu: CloudflareEmulator, p: Mapping[str, str], body: Any, q: Any) -> Any:
    """Requests the edge saw: ``{"hits": [{"at", "zone_id", "host", "path", "method",
    "status", "origin_ms"}]}``; ``{"delaySeconds": n}`` sets how late they show."""
    data = _obj(body)
    for hit in data.get("hits") or []:
        emu.traffic.record(Hit(**hit))
    if "delaySeconds" in data:
        emu.traffic.delay_seconds = float(data["delaySeconds"])
    return {"hits": len(emu.traffic.hits), "delaySeconds": emu.traffic.delay_seconds}


@_route("POST", r"/edge-requests")
def _edge_requests(emu: CloudflareEmulator, p: Mapping[str, str], body: Any, q: Any) -> Any:
    """Visitor requests an origin served: what the edge answered each (``edge_serving``),
    ``null`` for one Cloudflare never saw. ``bypassByDefaultKeepsReadTimeout`` sets how the
    edge reads a ``bypass_by_default`` rule from now on (``edge_cache``)."""
    data = _obj(body)
    items = data.get("requests")
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ValueError('the body must be {"requests": [{"host", "path", ...}]}')
    requests = [edge_serving.VisitorRequest.from_json(i) for i in items]  # all or none
    keeps = data.get("bypassByDefaultKeepsReadTimeout")
    if keeps is not None:
        if not isinstance(keeps, bool):
            raise ValueError("bypassByDefaultKeepsReadTimeout must be true or false")
        emu.bypass_by_default_keeps_read_timeout = keeps
    return {"statuses": emu.serve_many(requests)}


@_route("GET", r"/edge-requests/summary")
def _edge_summary(
    emu: CloudflareEmulator, p: Mapping[str, str], body: Any, q: Mapping[str, Sequence[str]]
) -> Any:
    """What the edge answered, now (not ``delaySeconds`` late, no GraphQL budget)."""
    window = float(q["windowSeconds"][-1]) if q.get("windowSeconds") else 1.0
    since = float(q["since"][-1]) if q.get("since") else None
    host = q["host"][-1] if q.get("host") else None
    counts = edge_serving.summary(emu.traffic, window, since=since, host=host)
    return {"windowSeconds": window, "counts": counts}


@_route("POST", r"/reset")
def _reset(emu: CloudflareEmulator, p: Mapping[str, str], body: Any, q: Any) -> Any:
    emu.reset()
    return emu.snapshot()


def handle(
    emu: CloudflareEmulator,
    method: str,
    path: str,
    query: Mapping[str, Sequence[str]],
    raw_body: bytes,
) -> Reply:
    """Answer one admin request; ``path`` is relative to ``/__emulator``."""
    try:
        body = parse_body(raw_body)
        for route_method, pattern, handler in _ROUTES:
            match = pattern.fullmatch(path)
            if match and route_method == method:
                return ok(handler(emu, match.groupdict(), body, query))
        raise ApiError.one(404, ADMIN_ERROR, f"no admin endpoint {method} {path or '/'}")
    except ApiError as exc:
        return failure(exc)
    except (KeyError, TypeError, ValueError) as exc:
        return failure(ApiError.one(400, ADMIN_ERROR, f"bad admin request: {exc!r}"))
