"""Which DNS records a DNS-only reroute changes, and how the undo finds exactly those.

Cloudflare's advice for requests that outlive the Proxy Read Timeout is a DNS-only (grey
cloud) hostname. Traffic to a name goes through the proxy if *any* of its A/AAAA/CNAME
records is proxied, so a reroute switches every proxied one off. The undo must switch on
again only what the reroute switched off: a record someone keeps DNS-only on purpose
stays so, and a record of another tool is never touched.

DNS-only is refused where it cannot work, with what to change instead:

* a record pointing at a target only Cloudflare's proxy can reach (a Cloudflare Tunnel
  ``<uuid>.cfargotunnel.com``, the Workers placeholder ``100::``, a record Cloudflare
  manages): grey-clouded, it takes the hostname down;
* a CNAME to a name of the zone that is proxied: Cloudflare proxies a request when any
  hostname on its CNAME chain is proxied, so the name would stay proxied (and a status
  saying "DNS-only" would lie). ``in_force`` looks down the chain too.

The proof of ownership travels with the record itself, in the same PATCH that turns
``proxied`` off: a marker appended to the record's ``comment`` (a free-text field with no
effect on DNS answers, shown in the dashboard next to the grey cloud). It names the
TimeoutBudget and implies the original value (the operator only switches proxied records,
so the original was ``proxied: true``). The undo restores ``proxied: true`` and the
comment without the marker, byte for byte. Unlike a note in the CloudflareZone status, the
marker cannot be lost between two writes, survives an operator restart and tells a person
in the dashboard why the cloud is grey. It is found anywhere in the comment, so a person
adding to the comment keeps it working; the undo then keeps their words, marker removed.
Comments are limited to 100 characters on the Free plan and 500 on paid plans.

Purely computational: records are plain JSON objects as Cloudflare lists them.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PROXIABLE_TYPES = frozenset({"A", "AAAA", "CNAME"})
COMMENT_LIMIT = 100
"""Cloudflare's smallest comment limit (Free plan); longer comments are refused."""
PAID_COMMENT_LIMIT = 500
PAID_PLANS = frozenset({"pro", "business", "enterprise"})
CLOUDFLARE_ONLY_SUFFIXES = ("cfargotunnel.com",)
"""CNAME targets only Cloudflare's proxy can reach (Cloudflare Tunnel)."""
CLOUDFLARE_ONLY_NETWORKS = (ipaddress.ip_network("100::/64"),)
"""The discard prefix Cloudflare's docs use for proxied records of Workers without an
origin: grey, the name resolves to nothing that answers."""
_MANAGED_META = ("managed_by_argo_tunnel", "read_only", "origin_worker_id")
MAX_CHAIN = 8
"""CNAME steps followed inside the zone before giving up (a loop, a very long chain)."""
_MARKER = re.compile(r"\[DNS-only: timeout-budget ([^\]]+)\]")
_MAX_SPELLED_KEY = 32
"""Keeps the marker short: the record's own comment shares the 100 characters."""


class DnsOnlyRefused(ValueError):
    """The reroute cannot be made without touching what the operator does not own."""


def owner_token(key: str) -> str:
    """How the marker names the route ``namespace/name`` (a digest when very long)."""
    if len(key) <= _MAX_SPELLED_KEY:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()[:16]


def marker(key: str) -> str:
    return f"[DNS-only: timeout-budget {owner_token(key)}]"


def marked_by(record: Mapping[str, Any]) -> str | None:
    """The owner token in the record's marker, if it carries one."""
    comment = record.get("comment")
    if not isinstance(comment, str):
        return None
    found = _MARKER.search(comment)
    return found.group(1) if found else None


def is_marked_by(record: Mapping[str, Any], key: str) -> bool:
    return marked_by(record) == owner_token(key)


class CommentTooLong(DnsOnlyRefused):
    """The record's comment leaves no room for the marker within ``limit``."""

    def __init__(self, message: str, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


def comment_limit(plan: str | None) -> int:
    """Cloudflare's comment limit for the zone's plan (the Free one when unknown)."""
    return PAID_COMMENT_LIMIT if plan in PAID_PLANS else COMMENT_LIMIT


def mark(comment: str | None, key: str, limit: int = COMMENT_LIMIT) -> str:
    """The comment with the ownership marker appended (once, whatever it held)."""
    own = unmark(comment)
    text = f"{own} {marker(key)}" if own else marker(key)
    if len(text) > limit:
        raise CommentTooLong(
            f"the record's comment is too long to carry the operator's ownership marker "
            f"(Cloudflare allows {limit} characters on this zone's plan): shorten it to "
            f"{limit - len(marker(key)) - 1} characters",
            limit,
        )
    return text


def unmark(comment: str | None) -> str:
    """The comment without the marker, wherever it is: what ``mark`` was given, plus
    whatever a person wrote since."""
    if not comment:
        return ""
    found = _MARKER.search(comment)
    if found is None:
        return comment
    before, after = comment[: found.start()], comment[found.end() :]
    if before.endswith(" "):
        before = before[:-1]
    elif not before and after.startswith(" "):
        after = after[1:]
    return before + after


@dataclass(frozen=True)
class Edit:
    """One record PATCH: Cloudflare 5.x wants name, type and ttl alongside."""

    record_id: str
    name: str
    type: str
    ttl: float
    proxied: bool
    comment: str


def proxiable(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in records if r.get("type") in PROXIABLE_TYPES]


def in_force(
    records: Sequence[Mapping[str, Any]], key: str, chain: Sequence[Mapping[str, Any]] = ()
) -> bool:
    """DNS-only by this route: some record carries its marker and none is proxied, nor
    any record down its CNAME chain (``chain``: the records of the names it leads to)."""
    candidates = proxiable(records)
    return any(is_marked_by(r, key) for r in candidates) and not any(
        r.get("proxied") is True for r in (*candidates, *proxiable(chain))
    )


def cname_target(records: Sequence[Mapping[str, Any]]) -> str | None:
    """Where the name's CNAME points (lower case, no trailing dot), if it has one."""
    for record in records:
        content = record.get("content")
        if record.get("type") == "CNAME" and isinstance(content, str) and content:
            return content.rstrip(".").lower()
    return None


def cloudflare_only(record: Mapping[str, Any]) -> str | None:
    """Why the record only works proxied, if it does."""
    content = record.get("content")
    content = content.rstrip(".").lower() if isinstance(content, str) else ""
    if record.get("type") == "CNAME" and any(
        content == s or content.endswith("." + s) for s in CLOUDFLARE_ONLY_SUFFIXES
    ):
        return f"it is a CNAME to Cloudflare Tunnel {content}, which only answers through the proxy"
    if record.get("type") in ("A", "AAAA"):
        try:
            address = ipaddress.ip_address(content)
        except ValueError:
            address = None
        if address is not None and any(address in n for n in CLOUDFLARE_ONLY_NETWORKS):
            return f"it points at {content}, a placeholder only Cloudflare's proxy answers for"
    meta = record.get("meta")
    if isinstance(meta, Mapping) and any(meta.get(k) for k in _MANAGED_META):
        return "Cloudflare manages the record (a Tunnel, a Worker): it only works proxied"
    return None


def switch_off(
    records: Sequence[Mapping[str, Any]],
    hostname: str,
    key: str,
    *,
    chain: Sequence[Mapping[str, Any]] = (),
    comment_limit: int = COMMENT_LIMIT,
) -> list[Edit]:
    """The PATCHes that make ``hostname`` DNS-only for route ``key`` (may be empty when
    it already is, by this route). ``chain`` holds the records of the names its CNAME
    leads to in the zone. Raises ``DnsOnlyRefused`` with the reason otherwise."""
    candidates = proxiable(records)
    if not candidates:
        raise DnsOnlyRefused(f"no A, AAAA or CNAME record named {hostname} in the zone")
    for record in candidates:
        why = cloudflare_only(record) if record.get("proxied") is True else None
        if why is not None:
            raise DnsOnlyRefused(
                f"{hostname} cannot be DNS-only: {why}; grey-clouded, the hostname goes down. "
                "Give the DNS-only hostname its own record pointing at the origin's public "
                "address (or a CNAME to a DNS-only name)"
            )
    proxied_on_chain = [r for r in proxiable(chain) if r.get("proxied") is True]
    if proxied_on_chain:
        target = cname_target(records)
        name = str(proxied_on_chain[0].get("name"))
        raise DnsOnlyRefused(
            f"{hostname} is a CNAME to {target}, and {name} further down that chain is "
            "proxied: Cloudflare proxies a request when any name on its CNAME chain is, so "
            f"{hostname} would stay proxied. Point {hostname} at the origin directly (A/AAAA, "
            f"or a CNAME to a name that is not proxied), or make {name} DNS-only"
        )
    mine = owner_token(key)
    for record in candidates:
        other = marked_by(record)
        if other is not None and other != mine:
            raise DnsOnlyRefused(
                f"{hostname} is already DNS-only for TimeoutBudget {other}: one route per "
                "DNS-only hostname"
            )
    edits = [
        Edit(
            str(r["id"]),
            str(r["name"]),
            str(r["type"]),
            _ttl(r),
            proxied=False,
            comment=mark(_comment(r), key, comment_limit),
        )
        for r in candidates
        if r.get("proxied") is True
    ]
    if not edits and not any(is_marked_by(r, key) for r in candidates):
        raise DnsOnlyRefused(
            f"{hostname} is already DNS-only and the operator did not make it so: "
            "nothing to switch, nothing it would restore"
        )
    return edits


def switch_back(records: Sequence[Mapping[str, Any]], key: str) -> list[Edit]:
    """The PATCHes that undo route ``key``'s reroute: only records carrying its marker."""
    return [
        Edit(
            str(r["id"]),
            str(r["name"]),
            str(r["type"]),
            1,  # a proxied record's TTL is automatic
            proxied=True,
            comment=unmark(_comment(r)),
        )
        for r in proxiable(records)
        if is_marked_by(r, key)
    ]


def _comment(record: Mapping[str, Any]) -> str | None:
    value = record.get("comment")
    return value if isinstance(value, str) else None


def _ttl(record: Mapping[str, Any]) -> float:
    value = record.get("ttl")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 1
