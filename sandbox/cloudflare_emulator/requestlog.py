"""A record of every API request the emulator answered, for tests to assert on.

"Did the operator write only the rules it changed, one request each?", "did it read the
setting before patching it?", "how many calls did one reconcile cost?": these are
questions about traffic, not state. The log keeps method, path, query, body, status,
error codes and timing of each API request (never headers: the token stays out).
"""

from __future__ import annotations

import copy
import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sandbox.cloudflare_emulator.protocol import JsonObject


@dataclass(frozen=True)
class Entry:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    status: int
    started_at: float  # seconds since the epoch
    duration_seconds: float
    error_codes: tuple[int, ...] = ()
    fault: str | None = None  # the injected fault's kind, if one answered
    token: str | None = None  # ``token_fingerprint`` of the bearer token it carried
    replica: str | None = None  # the operator replica that sent it (X-Timeout-Budget-Replica)

    def to_json(self) -> JsonObject:
        return {
            "method": self.method,
            "path": self.path,
            "query": copy.deepcopy(self.query),
            "body": copy.deepcopy(self.body),
            "status": self.status,
            "started_at": self.started_at,
            "duration_seconds": self.duration_seconds,
            "error_codes": list(self.error_codes),
            "token": self.token,
            "replica": self.replica,
            "fault": self.fault,
        }


def token_fingerprint(token: str) -> str:
    """Which token a request carried, without the token: its SHA-256, shortened."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()[:12]


class RequestLog:
    """Thread-safe, append-only (until cleared) list of entries."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[Entry] = []

    def append(self, entry: Entry) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self, method: str | None = None, path_contains: str | None = None) -> list[Entry]:
        with self._lock:
            chosen: Sequence[Entry] = list(self._entries)
        if method:
            chosen = [e for e in chosen if e.method == method.upper()]
        if path_contains:
            chosen = [e for e in chosen if path_contains in e.path]
        return list(chosen)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
