"""Which DNS records a DNS-only reroute changes, and how the undo finds exactly those.

Cloudflare's advice for requests that outlive the Proxy Read Timeout is a DNS-only (grey
cloud) hostname. Traffic to a name goes through the proxy if *any* of its A/AAAA/CNAME
records is proxied, so a reroute switches every proxied one off. The undo must switch on
again only what the reroute switched off: a record someone keeps DNS-only on purpose
stays so, and a record of another tool is never touched.

The proof of ownership travels with the record itself, in the same PATCH that turns
``proxied`` off: a marker appended to the record's ``comment`` (a free-text field with no
effect on DNS answers, shown in the dashboard next to the grey cloud). It names the
TimeoutBudget and implies the original value (the operator only switches proxied records,
so the original was ``proxied: true``). The undo restores ``proxied: true`` and the
comment without the marker, byte for byte. Unlike a note in the CloudflareZone status, the
marker cannot be lost between two writes, survives an operator restart and tells a person
in the dashboard why the cloud is grey.

Purely computational: records are plain JSON objects as Cloudflare lists them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PROXIABLE_TYPES = frozenset({"A", "AAAA", "CNAME"})
COMMENT_LIMIT = 100
"""Cloudflare's smallest comment limit (Free plan); longer comments are refused."""
_MARKER = re.compile(r"(?:^| )\[DNS-only: timeout-budget ([^\]]+)\]$")
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


def mark(comment: str | None, key: str) -> str:
    """The comment with the ownership marker appended."""
    text = f"{comment} {marker(key)}" if comment else marker(key)
    if len(text) > COMMENT_LIMIT:
        raise DnsOnlyRefused(
            f"the record's comment is too long to carry the operator's ownership marker "
            f"(Cloudflare allows {COMMENT_LIMIT} characters): shorten it to "
            f"{COMMENT_LIMIT - len(marker(key)) - 1} characters"
        )
    return text


def unmark(comment: str | None) -> str:
    """The comment as it was before ``mark``."""
    if not comment:
        return ""
    found = _MARKER.search(comment)
    return comment[: found.start()] if found else comment


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


def in_force(records: Sequence[Mapping[str, Any]], key: str) -> bool:
    """DNS-only by this route: some record carries its marker and none is proxied."""
    candidates = proxiable(records)
    return any(is_marked_by(r, key) for r in candidates) and not any(
        r.get("proxied") is True for r in candidates
    )


def switch_off(records: Sequence[Mapping[str, Any]], hostname: str, key: str) -> list[Edit]:
    """The PATCHes that make ``hostname`` DNS-only for route ``key`` (may be empty when
    it already is, by this route). Raises ``DnsOnlyRefused`` with the reason otherwise."""
    candidates = proxiable(records)
    if not candidates:
        raise DnsOnlyRefused(f"no A, AAAA or CNAME record named {hostname} in the zone")
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
            comment=mark(_comment(r), key),
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
