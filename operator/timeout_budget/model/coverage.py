"""What gives one group of a route's methods its read timeout at the Cloudflare edge
(computed by ``decide.coverage``; shown in ``status.edgeCoverage`` and a metric)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

CoveredBy = Literal["CacheRule", "ZoneTimeout", "DnsOnly", "None"]


@dataclass(frozen=True, slots=True)
class Coverage:
    methods: tuple[str, ...]
    by: CoveredBy
    timeout_seconds: int | None
    """The read timeout these methods get at the edge; ``None``: not known (no zone read
    yet), or no Cloudflare read timeout at all (DNS-only)."""

    @property
    def covered(self) -> bool:
        return self.by != "None"

    @property
    def group(self) -> str:
        """The metric label: ``GET,HEAD``, ``POST``."""
        return ",".join(self.methods)

    def words(self) -> str:
        methods = "/".join(self.methods)
        if self.by == "CacheRule":
            return f"{methods} covered by the route's Cache Rule ({self.timeout_seconds} s)"
        if self.by == "ZoneTimeout":
            known = f" ({self.timeout_seconds} s)" if self.timeout_seconds is not None else ""
            return f"{methods} get the zone's Proxy Read Timeout{known}"
        if self.by == "DnsOnly":
            return f"{methods} covered by the DNS-only hostname (no Cloudflare read timeout)"
        return (
            f"{methods} not covered: a Cache Rule covers GET/HEAD only and they keep the zone's "
            f"{self.timeout_seconds} s"
        )

    def to_status(self) -> dict[str, Any]:
        """Without ``timeoutSeconds`` when there is none: the API server drops a null, and
        the status compared with the stored one must not differ by it."""
        shown: dict[str, Any] = {"methods": list(self.methods), "by": self.by}
        if self.timeout_seconds is not None:
            shown["timeoutSeconds"] = self.timeout_seconds
        return shown
