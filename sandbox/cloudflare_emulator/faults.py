"""Injected failures: make the next N API requests fail with 429, 5xx or a hang.

The operator must survive Cloudflare misbehaving: rate limits it did not cause (the
limit is shared with the dashboard), 5xx during an incident, and connections that hang
past its own timeout. Tests queue faults, optionally only for one method or path prefix;
each matching request consumes one, in the order they were queued.
"""

from __future__ import annotations

import enum
import threading
from dataclasses import asdict, dataclass

from sandbox.cloudflare_emulator.protocol import ApiError, Code, JsonObject

API_PREFIX = "/client/v4"


class Kind(enum.StrEnum):
    STATUS = "status"  # answer with an HTTP error status
    TIMEOUT = "timeout"  # hold the connection, then drop it without an answer


@dataclass
class Fault:
    kind: Kind
    count: int = 1
    status: int = 500
    path_prefix: str | None = None
    method: str | None = None
    hold_seconds: float = 0.0
    retry_after: float | None = 1
    """Seconds (fractions let tests watch SDK retries quickly); ``None``: a 429 without
    ``Retry-After``."""

    def __post_init__(self) -> None:
        self.kind = Kind(self.kind)
        if self.count < 1:
            raise ValueError("a fault must apply to at least one request")
        if self.kind is Kind.STATUS and not 400 <= self.status <= 599:
            raise ValueError("an injected status must be 4xx or 5xx")
        if self.kind is Kind.TIMEOUT and self.hold_seconds <= 0:
            raise ValueError("a timeout fault needs hold_seconds > 0")
        if self.retry_after is not None and self.retry_after <= 0:
            raise ValueError("retry_after must be > 0 seconds (or None: no header)")
        if self.path_prefix and not self.path_prefix.startswith("/"):
            raise ValueError("path_prefix must start with '/'")

    def matches(self, method: str, path: str) -> bool:
        """``path_prefix`` may be given with or without the ``/client/v4`` prefix."""
        if self.method and self.method.upper() != method.upper():
            return False
        if not self.path_prefix:
            return True
        relative = path[len(API_PREFIX) :] if path.startswith(API_PREFIX) else path
        return path.startswith(self.path_prefix) or relative.startswith(self.path_prefix)

    def error(self) -> ApiError:
        """The Cloudflare-style answer of a STATUS fault."""
        if self.status == 429:
            return ApiError.one(
                429,
                Code.RATE_LIMITED,
                "Please wait and consider throttling your request speed",
                headers={"Retry-After": f"{self.retry_after:g}"} if self.retry_after else {},
            )
        return ApiError.one(
            self.status, Code.INTERNAL_ERROR, f"Internal server error (injected {self.status})"
        )

    def to_json(self) -> JsonObject:
        data = asdict(self)
        data["kind"] = self.kind.value
        return data


class FaultQueue:
    """Faults waiting for requests, consumed first-queued first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, method: str, path: str) -> Fault | None:
        """The first fault matching the request, with one use consumed."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.count -= 1
                    if fault.count == 0:
                        self._faults.remove(fault)
                    return fault
            return None

    def pending(self) -> list[JsonObject]:
        with self._lock:
            return [f.to_json() for f in self._faults]
