"""The operator's Cache Rules inside a ruleset that other people write to as well.

A zone's Cache Rules live in one entry-point ruleset, and Cloudflare's PUT replaces the
whole list: a rule left out is deleted. The dashboard, Terraform and other tools keep
their own rules there, so every write must send every rule the operator does not own back
exactly as it was read, in its place. The operator's own rules are told apart by two
marks that must both hold: a ``ref`` it derives from the TimeoutBudget's namespace and
name (stable, so the same route always finds the same rule), and a ``description`` that
says who manages it and names the resource for a person reading the dashboard.

Host and path prefix come from the user; they end up inside a Rules-language expression,
so they are quoted as string literals (``\\`` and ``"`` escaped, control characters
refused) and can never close the literal and add a clause.

Purely computational: no I/O, rules are plain JSON objects as Cloudflare returns them.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Rule = dict[str, Any]
"""One rule as Cloudflare's JSON has it (``id``, ``ref``, ``expression``, ``action``...)."""

PHASE = "http_request_cache_settings"
ACTION = "set_cache_settings"
REF_PREFIX = "tbo_"
"""Readable refs: ``tbo_<namespace>_<name>`` (dots of the name become ``_``)."""
HASHED_REF_PREFIX = "tbo-h-"
"""Refs of keys too long to spell out: a digest of ``namespace/name``."""
MAX_REF_LENGTH = 64
DESCRIPTION_PREFIX = "managed by timeout-budget-operator: TimeoutBudget "
OWNED_FIELDS = ("ref", "description", "expression", "action", "action_parameters", "enabled")
"""What the operator sets on its rules; Cloudflare adds ``id``, ``version``, ``last_updated``."""

_REF_SAFE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class RefConflict(ValueError):
    """A rule carries the operator's ref but not its description: someone else's now."""


def rule_ref(namespace: str, name: str) -> str:
    """A stable, unique ref for the route ``namespace/name``.

    Kubernetes names never contain ``_``, so ``tbo_<ns>_<name with . as _>`` is
    unambiguous; past ``MAX_REF_LENGTH`` (or for unexpected characters) the ref becomes
    a digest, under a prefix no readable ref can have.
    """
    readable = f"{REF_PREFIX}{namespace}_{name.replace('.', '_')}"
    if len(readable) <= MAX_REF_LENGTH and _REF_SAFE.match(readable):
        return readable
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:24]
    hint = re.sub(r"[^a-z0-9-]", "", namespace.lower())[:20]
    return f"{HASHED_REF_PREFIX}{hint}-{digest}"


def description(namespace: str, name: str) -> str:
    return f"{DESCRIPTION_PREFIX}{namespace}/{name}"


def quote(value: str) -> str:
    """A Rules-language string literal holding exactly ``value``."""
    bad = [c for c in value if ord(c) < 0x20 or ord(c) == 0x7F]
    if bad:
        raise ValueError(f"control character {bad[0]!r} is not allowed in a rule expression")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def expression(host: str, path_prefix: str) -> str:
    """``(http.host eq "h" and starts_with(http.request.uri.path, "/p"))``; the whole host
    when the prefix is ``/``."""
    if not host:
        raise ValueError("a route needs a host")
    if not path_prefix.startswith("/"):
        raise ValueError(f"path prefix {path_prefix!r} must start with '/'")
    host_clause = f"http.host eq {quote(host.lower())}"
    if path_prefix == "/":
        return f"({host_clause})"
    return f"({host_clause} and starts_with(http.request.uri.path, {quote(path_prefix)}))"


def desired_rule(namespace: str, name: str, host: str, path_prefix: str, read_timeout: int) -> Rule:
    """The route's Cache Rule: cacheable requests get ``read_timeout`` seconds."""
    return {
        "ref": rule_ref(namespace, name),
        "description": description(namespace, name),
        "expression": expression(host, path_prefix),
        "action": ACTION,
        "action_parameters": {"cache": True, "read_timeout": read_timeout},
        "enabled": True,
    }


def is_owned(rule: Mapping[str, Any]) -> bool:
    """Both marks: an operator ref and the ``managed by`` description."""
    ref, text = rule.get("ref"), rule.get("description")
    if not isinstance(ref, str) or not isinstance(text, str):
        return False
    return ref.startswith((REF_PREFIX, HASHED_REF_PREFIX)) and text.startswith(DESCRIPTION_PREFIX)


def owned_refs(rules: Sequence[Mapping[str, Any]]) -> list[str]:
    return sorted(str(r["ref"]) for r in rules if is_owned(r))


def find(rules: Sequence[Mapping[str, Any]], ref: str) -> Mapping[str, Any] | None:
    return next((r for r in rules if r.get("ref") == ref), None)


def matches(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """The existing rule already says what ``desired`` says. Server fields aside, and
    action parameters compared on the keys the operator sets, so a default Cloudflare
    adds to them does not make every cycle rewrite the rule."""
    for field in OWNED_FIELDS:
        want = desired.get(field, True if field == "enabled" else None)
        have = existing.get(field, True if field == "enabled" else None)
        if field == "action_parameters" and isinstance(want, Mapping):
            if not isinstance(have, Mapping) or any(have.get(k) != v for k, v in want.items()):
                return False
        elif have != want:
            return False
    return True


def read_timeout_in_force(
    rules: Sequence[Mapping[str, Any]], namespace: str, name: str, host: str, path_prefix: str
) -> int | None:
    """The route's own read timeout as Cloudflare has it, or ``None``.

    A rule someone edited (expression, description, disabled) does not count: reporting
    ``None`` makes the diff ask for the rule again, which repairs the drift.
    """
    rule = find(rules, rule_ref(namespace, name))
    if rule is None or not is_owned(rule):
        return None
    params = rule.get("action_parameters")
    seconds = params.get("read_timeout") if isinstance(params, Mapping) else None
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        return None
    canonical = desired_rule(namespace, name, host, path_prefix, seconds)
    return seconds if matches(rule, canonical) else None


def conflicts(current: Sequence[Mapping[str, Any]], refs: Iterable[str]) -> dict[str, str]:
    """Of ``refs``, those held by a rule that is not the operator's, with the reason."""
    wanted = set(refs)
    return {
        str(r["ref"]): (
            f"a Cache Rule with ref {r['ref']} exists but its description is not "
            f"'{DESCRIPTION_PREFIX}...' (edited by someone?): left as it is"
        )
        for r in current
        if r.get("ref") in wanted and not is_owned(r)
    }


def merge(
    current: Sequence[Mapping[str, Any]], desired: Mapping[str, Mapping[str, Any] | None]
) -> list[Rule]:
    """The list to PUT: ``current`` with the operator's rules in ``desired`` (by ref)
    updated in place, removed (``None``) or appended, and every other rule untouched.

    An owned rule that already matches is kept as read (same id and version), so an
    unchanged list compares equal to ``current``. Raises ``RefConflict`` when a rule that
    is not the operator's carries one of the refs in ``desired``.
    """
    merged: list[Rule] = []
    seen: set[str] = set()
    for rule in current:
        ref = rule.get("ref")
        if not isinstance(ref, str) or ref not in desired:
            merged.append(copy.deepcopy(dict(rule)))
            continue
        if not is_owned(rule):
            raise RefConflict(conflicts([rule], [ref])[ref])
        seen.add(ref)
        wanted = desired[ref]
        if wanted is None:
            continue
        if matches(rule, wanted):
            merged.append(copy.deepcopy(dict(rule)))
        else:
            keep_id = {"id": rule["id"]} if "id" in rule else {}
            merged.append({**keep_id, **copy.deepcopy(dict(wanted))})
    for ref in sorted(set(desired) - seen):
        wanted = desired[ref]
        if wanted is not None:
            merged.append(copy.deepcopy(dict(wanted)))
    return merged


def needs_write(current: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]) -> bool:
    """Whether ``new`` differs from what Cloudflare has: no PUT for a no-op."""
    return [dict(r) for r in current] != [dict(r) for r in new]
