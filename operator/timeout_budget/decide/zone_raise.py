"""The zone-wide read timeout: what the zone's ``proxy_read_timeout`` should be now.

A Cache Rule's read timeout covers only requests Cloudflare could cache (GET and HEAD);
every other method keeps the zone's ``proxy_read_timeout``. A CloudflareZone may let the
operator raise it (``spec.raiseProxyReadTimeout``: an opt-in with a ceiling, since the
raise applies to every hostname of the zone) while one of its routes that serves such
methods needs more than the zone gives. What a route needs is what its own Cache Rule
gives its GETs (a declared ``requiredSeconds`` + 1, or the ladder's raise), so the zone's
raise comes and goes with the routes' rules and inherits their hysteresis: a raise made
because a route is at risk is given back only after the route has recovered.

The rules, in order:

* the value to give back is the spec's ``proxyReadTimeoutSeconds`` when set (the operator
  owns the setting then), else the value found before the operator's first raise;
* the operator's raise is remembered (``ZoneRaise``: from, to). When the zone's value is
  no longer the one it set, someone else changed it: that value stays, and the memory goes;
* a raise never lowers a value the operator did not set: a zone already at or above what
  the routes need is left alone;
* the raise is bounded by the ceiling and by what the plan allows, and needs an editable
  zone (Enterprise): otherwise nothing is sent, and the note says why.

Pure: the zone's current value, the spec's wishes, the routes' need and the memory in; the
value to send (if any), the new memory and a note out.
"""

from __future__ import annotations

from dataclasses import dataclass

from timeout_budget.model.spec import MAX_EDGE_TIMEOUT_SECONDS, CloudflareZoneSpec


@dataclass(frozen=True, slots=True)
class ZoneRaise:
    """The operator's raise in force: the zone's value before it, and the value it set."""

    from_seconds: int
    to_seconds: int


@dataclass(frozen=True, slots=True)
class Need:
    """The longest read timeout the zone's routes need for their non-cacheable methods, and
    the routes that need it (``namespace/name``)."""

    seconds: int
    routes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ZoneTimeoutPlan:
    send: int | None
    """The value to PATCH; ``None``: leave the zone's value as it is."""
    memory: ZoneRaise | None
    """The raise in force once ``send`` (if any) has landed."""
    note: str | None = None
    """Why the routes' need is not (fully) met, or what someone else changed."""


def plan(
    spec: CloudflareZoneSpec,
    current: int,
    editable: bool,
    need: Need | None,
    memory: ZoneRaise | None,
    max_seconds: int = MAX_EDGE_TIMEOUT_SECONDS,
) -> ZoneTimeoutPlan:
    notes: list[str] = []
    static = spec.proxy_read_timeout_seconds
    if memory is not None and current != memory.to_seconds:
        if static is None:  # with a spec value, the operator owns the setting anyway
            notes.append(
                f"proxy_read_timeout is {current}s, not the {memory.to_seconds}s the operator "
                f"set: changed by someone else, so it stays as it is and is not given back"
            )
        memory = None
    base = static if static is not None else (memory.from_seconds if memory else current)
    wanted = _wanted(spec, base, need, min(max_seconds, MAX_EDGE_TIMEOUT_SECONDS), notes)
    owned = static is not None or memory is not None
    target = wanted if wanted is not None else (base if owned else None)
    if target is None or (not owned and current >= target):
        return ZoneTimeoutPlan(None, None, _join(notes))
    if not editable:
        if target != current:
            notes.append(
                f"the zone's plan does not allow changing proxy_read_timeout (Enterprise "
                f"only): it stays at {current}s, not {target}s"
            )
        return ZoneTimeoutPlan(None, None, _join(notes))
    raised = ZoneRaise(base, target) if target > base else None
    return ZoneTimeoutPlan(target if target != current else None, raised, _join(notes))


def _wanted(
    spec: CloudflareZoneSpec, base: int, need: Need | None, limit: int, notes: list[str]
) -> int | None:
    """The raised value the routes' need asks for, if the opt-in allows one above ``base``."""
    opt = spec.raise_proxy_read_timeout
    if need is None or need.seconds <= base:
        return None
    who = ", ".join(need.routes)
    if opt is None or not opt.enabled:
        notes.append(
            f"{who} need(s) {need.seconds}s for methods a Cache Rule cannot cover; "
            f"spec.raiseProxyReadTimeout is off, so the zone stays at {base}s"
        )
        return None
    ceiling = min(opt.ceiling_seconds, limit)
    if need.seconds > ceiling:
        notes.append(f"{who} need(s) {need.seconds}s; the raise stops at its ceiling of {ceiling}s")
    wanted = min(need.seconds, ceiling)
    return wanted if wanted > base else None


def _join(notes: list[str]) -> str | None:
    return "; ".join(notes) or None
