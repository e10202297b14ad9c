"""The operator's Cache Rules inside a ruleset that other people write to as well.

A zone's Cache Rules live in one entry-point ruleset that the dashboard, Terraform and
other tools write to as well. The operator's own rules are told apart by two marks that
must both hold: a ``ref`` it derives from the TimeoutBudget's namespace and name (stable,
so the same route always finds the same rule), and a ``description`` that says who
manages it and names the resource for a person reading the dashboard.

The rule changes nothing but the read timeout, as far as Cloudflare lets it: a
``read_timeout`` only applies to requests that are eligible for cache (the 524 page), so
the rule sets ``cache: true``, but with Cloudflare's own "default TTLs off" edge TTL
(``bypass_by_default``: a response is stored only if its origin asked for it with
Cache-Control) and the browser TTL left to the origin. It goes *before* every foreign
rule: the last matching rule wins, so a user's own rule (a bypass, a read timeout of
its own) still wins; ``rule_overrides`` finds such rules so the status can say so.

Writes never replace the list: ``plan`` turns the wanted rules into per-rule creates,
edits and deletes of the operator's own rules only (see ``edge.cache_rules``),
each body holding only writable fields (``WRITABLE_FIELDS``).

Host and path prefix come from the user; they end up inside a Rules-language expression,
so they are quoted as string literals (``\\`` and ``"`` escaped, control characters
refused) and can never close the literal and add a clause. Purely computational.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from timeout_budget.decide import rule_overrides, rule_paths
from timeout_budget.decide.rule_overrides import Override

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
WRITABLE_FIELDS = frozenset(
    {
        "id",
        "action",
        "action_parameters",
        "description",
        "enabled",
        "exposed_credential_check",
        "expression",
        "logging",
        "ratelimit",
        "ref",
    }
)
"""The fields of the SDK's ``SetCacheSettingsRuleParam`` (cloudflare 5.9): what a client
may send. ``version``, ``last_updated`` and ``categories`` are read-only in the OpenAPI;
a unit test keeps this set equal to the SDK's."""
CACHE_PARAMETERS: dict[str, Any] = {
    "cache": True,
    "edge_ttl": {"mode": "bypass_by_default"},
    "browser_ttl": {"mode": "respect_origin"},
}
"""Eligible for cache only as far as ``read_timeout`` needs: no default edge TTLs (a
response is stored only when its origin says so), browser TTL as the origin says."""
CACHEABLE_METHODS = ("GET", "HEAD")
"""Cloudflare caches no other method, so no other method gets a Cache Rule read timeout."""

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
    """The route's requests: ``http.host`` exactly, and the path under the normalized
    prefix as whole segments (``/export`` and ``/export/...``, never ``/exports``)."""
    if not host:
        raise ValueError("a route needs a host")
    prefix = rule_paths.normalize(path_prefix)
    host_clause = f"http.host eq {quote(host.lower())}"
    path = "http.request.uri.path"
    if prefix == "/":
        return f"({host_clause})"
    if prefix.endswith("/"):
        return f"({host_clause} and starts_with({path}, {quote(prefix)}))"
    return (
        f"({host_clause} and ({path} eq {quote(prefix)} or "
        f"starts_with({path}, {quote(prefix + '/')})))"
    )


def desired_rule(namespace: str, name: str, host: str, path_prefix: str, read_timeout: int) -> Rule:
    """The route's Cache Rule: cacheable requests get ``read_timeout`` seconds."""
    return {
        "ref": rule_ref(namespace, name),
        "description": description(namespace, name),
        "expression": expression(host, path_prefix),
        "action": ACTION,
        "action_parameters": {**copy.deepcopy(CACHE_PARAMETERS), "read_timeout": read_timeout},
        "enabled": True,
    }


def writable(rule: Mapping[str, Any]) -> Rule:
    """A copy of ``rule`` holding only the fields a client may send."""
    return {k: copy.deepcopy(v) for k, v in rule.items() if k in WRITABLE_FIELDS}


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
    for name in OWNED_FIELDS:
        want = desired.get(name, True if name == "enabled" else None)
        have = existing.get(name, True if name == "enabled" else None)
        if name == "action_parameters" and isinstance(want, Mapping):
            if not isinstance(have, Mapping) or any(have.get(k) != v for k, v in want.items()):
                return False
        elif have != want:
            return False
    return True


def _shadowing(rules: Sequence[Mapping[str, Any]], index: int, host: str, prefix: str) -> bool:
    """A foreign rule before the operator's one (at ``index``) can match the route: the
    operator's rule, being later, would win over it. It must move in front."""
    return any(not is_owned(r) and rule_overrides.may_match(r, host, prefix) for r in rules[:index])


@dataclass(frozen=True)
class InForce:
    """What the route's own rule does at Cloudflare, as far as the rule list tells."""

    seconds: int
    """The read timeout of the route's rule."""
    overridden_by: tuple[Override, ...] = ()
    """Later foreign rules that take it away from (some of) the route's requests."""


def in_force(
    rules: Sequence[Mapping[str, Any]], namespace: str, name: str, host: str, path_prefix: str
) -> InForce | None:
    """The route's own rule as Cloudflare has it, or ``None`` when it is missing, edited
    (expression, description, parameters, disabled) or placed after a foreign rule that
    can match the route: ``None`` makes the diff ask for the rule again, which repairs it.
    """
    ref = rule_ref(namespace, name)
    index = next((i for i, r in enumerate(rules) if r.get("ref") == ref), None)
    if index is None or not is_owned(rules[index]):
        return None
    rule = rules[index]
    params = rule.get("action_parameters")
    seconds = params.get("read_timeout") if isinstance(params, Mapping) else None
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        return None
    try:
        prefix = rule_paths.normalize(path_prefix)
        canonical = desired_rule(namespace, name, host, prefix, seconds)
    except ValueError:
        return None
    if not matches(rule, canonical) or _shadowing(rules, index, host.lower(), prefix):
        return None
    found = rule_overrides.overrides(rules, index, host.lower(), prefix, seconds)
    return InForce(seconds, tuple(found))


def read_timeout_in_force(
    rules: Sequence[Mapping[str, Any]], namespace: str, name: str, host: str, path_prefix: str
) -> int | None:
    """The read timeout of the route's own rule as Cloudflare has it, or ``None``."""
    found = in_force(rules, namespace, name, host, path_prefix)
    return found.seconds if found is not None else None


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


FIRST: dict[str, Any] = {"index": 1}
"""Where the operator's rules go: in front, so every foreign rule comes later and wins."""


@dataclass(frozen=True)
class Create:
    ref: str
    body: Rule


@dataclass(frozen=True)
class Edit:
    ref: str
    rule_id: str
    body: Rule
    """The owned fields, sent whole (a PATCH must not leave an old parameter behind)."""
    move: bool = False
    """Also move the rule in front (``FIRST``)."""


@dataclass(frozen=True)
class Delete:
    ref: str
    rule_id: str


Write = Create | Edit | Delete


@dataclass(frozen=True)
class Plan:
    writes: list[Write] = field(default_factory=list)
    conflicts: dict[str, str] = field(default_factory=dict)
    """Refs left alone because a foreign rule holds them, with the reason."""


def plan(
    current: Sequence[Mapping[str, Any]], desired: Mapping[str, Mapping[str, Any] | None]
) -> Plan:
    """The per-rule writes that make the operator's rules in ``desired`` (by ref;
    ``None``: remove) true on ``current``, touching no other rule.

    A wanted rule that exists after a foreign rule is moved in front while it is edited
    anyway; ``in_force`` asks for that edit when the foreign rule can match the route.
    """
    held = conflicts(current, desired)
    writes: list[Write] = []
    for ref in sorted(desired):
        if ref in held:
            continue
        wanted = desired[ref]
        index = next((i for i, r in enumerate(current) if r.get("ref") == ref), None)
        existing = current[index] if index is not None else None
        if existing is None or not isinstance(existing.get("id"), str):
            if wanted is not None:
                writes.append(Create(ref, writable(wanted)))
            continue
        rule_id = str(existing["id"])
        if wanted is None:
            writes.append(Delete(ref, rule_id))
            continue
        move = any(not is_owned(r) for r in current[:index])
        if move or not matches(existing, wanted):
            body = writable({k: v for k, v in wanted.items() if k in OWNED_FIELDS})
            writes.append(Edit(ref, rule_id, body, move=move))
    return Plan(writes, held)
