"""The timeout chain of a route: every hop between Cloudflare and the app, with its timeout.

A request to a proxied route crosses several hops, each with its own timeout, measured in
its own way (``measures``): the edge and ingress-nginx count the idle gap between two reads,
a Gateway API rule the total time, an app server like gunicorn the worker's silence. The
shortest one that fires decides what a visitor sees: a 504 at 60 s from the ingress long
before Cloudflare's 524. A hop whose timeout is not known is shown as unknown, never
guessed. ``decide.chain`` gives each hop its verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Literal

INGRESS_NGINX_READ_TIMEOUT = "nginx.ingress.kubernetes.io/proxy-read-timeout"
"""ingress-nginx's read timeout annotation: seconds, unitless (read by ``observe.chain``,
kept in line by ``actions.hop_timeout``)."""

Measures = Literal["idle", "total", "worker", "connect"]
"""What a hop's timeout counts: the gap between two reads (``idle``), the whole response
(``total``), a worker's silence (``worker``), the connection (``connect``)."""


class Verdict(StrEnum):
    OK = "Ok"
    """Allows at least the budget."""
    FIRES_FIRST = "FiresFirst"
    """The first hop to fire, before the budget: what a visitor gets."""
    SHORT = "Short"
    """Shorter than the budget, though another hop fires before it."""
    RETRIES_PAST_EDGE = "RetriesPastEdge"
    """Its retries of a timed-out request run past the edge's timeout: duplicate work."""
    UNKNOWN = "Unknown"


@dataclass(frozen=True, slots=True)
class Hop:
    hop: str
    """What it is: ``cloudflare``, ``ingress-nginx``, ``gateway``, ``tunnel``, ``app``."""
    object: str
    """Where its timeout lives: ``CloudflareZone shop/example-com``, ``spec.chain.appServer``."""
    timeout_seconds: float | None
    """``None``: not known; ``math.inf``: turned off (a Gateway API ``0s``)."""
    measures: Measures
    source: str
    """Where the value came from: ``spec``, ``zone``, ``cacheRule``, ``annotation``,
    ``configMap``, ``default``, ``budget``."""
    tries: int = 1
    """How many times the hop sends a timed-out request again, in all."""
    answers: str = "an error"
    """What a visitor gets when it fires, e.g. ``504``."""
    keep_alive_seconds: float | None = None
    """For a proxy, how long it keeps an idle connection to the hop behind it open (its
    upstream pool); for a server, how long it keeps an idle client connection open. Each
    server must keep it longer than the pool in front of it, or the pool reuses a
    connection the server is closing: 502s."""
    verdict: Verdict = Verdict.UNKNOWN
    writable: str | None = None
    """The object's name where the operator can keep the timeout in line (``chain.sync``)."""
    part: str | None = None
    """Which part of it holds the timeout: an HTTPRoute rule's name, or its index."""
    held: bool = False
    """The operator raised this hop's timeout for this route, and holds it."""
    original_seconds: float | None = None
    """While held: the value in force before (the hop's default where none was set;
    ``None``: unreadable)."""

    def judged(self, verdict: Verdict) -> Hop:
        return replace(self, verdict=verdict)

    def to_status(self) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "hop": self.hop,
            "object": self.object,
            "measures": self.measures,
            "source": self.source,
            "verdict": self.verdict.value,
        }
        if self.timeout_seconds is not None and math.isfinite(self.timeout_seconds):
            shown["timeoutSeconds"] = _number(self.timeout_seconds)
        if self.tries > 1:
            shown["tries"] = self.tries
        if self.keep_alive_seconds is not None:
            shown["keepAliveSeconds"] = _number(self.keep_alive_seconds)
        return shown


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value
