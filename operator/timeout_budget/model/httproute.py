"""An HTTPRoute's rules as the operator reads and shifts them (gateway.networking.k8s.io/v1).

Which rule serves a route (the Gateway API's precedence: ``observe.gateway`` for the
timeout chain, ``actions.weights`` for the weighted reroute), and how the weighted reroute
moves a share of the rule's traffic to the long-running backend through
``backendRefs[].weight`` without changing anything else: the other backends keep their
relative weights (each is multiplied by the same factor), their filters and order; the
long-running backend is added at the end when the rule did not list it. A backend's
``weight`` defaults to 1 and may be 0 (no traffic); the API allows at most 1,000,000.

What the operator wrote is kept on the HTTPRoute (``Record``, in the annotation
``ownership.REROUTE_WEIGHTS``) with the rule's original ``backendRefs`` and ``timeouts``,
so the exact original comes back on undo and on delete, and a rule someone else changed
since (its ``backendRefs`` or ``timeouts`` no longer what the operator wrote) is seen and
not overwritten. Pure: dictionaries in, dictionaries out.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_WEIGHT = 1_000_000
"""The Gateway API's bound on ``backendRefs[].weight``."""
_DURATION = re.compile(r"^(?:[0-9]{1,5}(?:h|m|s|ms)){1,4}$")
_PART = re.compile(r"([0-9]{1,5})(h|ms|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def duration_seconds(text: str) -> float | None:
    """A Gateway API Duration (``1h30m``, ``500ms``; GEP-2257) in seconds."""
    if not _DURATION.match(text):
        return None
    return sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(text))


def raised_timeouts(timeouts: Mapping[str, Any], seconds: int) -> dict[str, Any]:
    """A rule's ``timeouts`` that let a request run ``seconds``: ``request`` (and a
    ``backendRequest`` it has, never longer than ``request``) raised where shorter; ``0s``
    (no timeout) and longer values are kept."""
    out = dict(timeouts)
    for key in ("request", "backendRequest"):
        if key == "backendRequest" and key not in out:
            continue
        current = duration_seconds(str(out.get(key, "")))
        if current is None or (0 < current < seconds):
            out[key] = f"{seconds}s"
    return out


def takes_host(httproute: Mapping[str, Any], host: str) -> bool:
    """Whether the HTTPRoute's ``hostnames`` take ``host`` (none listed: every host)."""
    names = httproute.get("spec", {}).get("hostnames") or []
    if not names:
        return True
    for name in (str(n) for n in names):
        if name == host or (name.startswith("*.") and host.endswith(name[1:])):
            return True
    return False


def rule_rank(
    rule: Mapping[str, Any], prefix: str, methods: Sequence[str]
) -> tuple[int, int] | None:
    """How precisely the rule matches the route (Exact first, then path length), or
    ``None`` when none of its matches covers the route's path and a method it serves."""
    best: tuple[int, int] | None = None
    for match in rules_of(rule.get("matches")) or [{}]:
        method = match.get("method")
        if method is not None and str(method) not in methods:
            continue
        path = match.get("path") or {}
        kind = str(path.get("type", "PathPrefix"))
        value = str(path.get("value", "/"))
        if kind == "Exact" and value == prefix:
            rank = (1, len(value))
        elif kind == "PathPrefix" and covers(value, prefix):
            rank = (0, len(value.rstrip("/")))
        else:
            continue  # RegularExpression (implementation-specific) is not taken
        best = rank if best is None else max(best, rank)
    return best


def covers(path: str, prefix: str) -> bool:
    base = path.rstrip("/")
    return base == "" or prefix == base or prefix.startswith(base + "/")


def precedence(rank: tuple[int, int], httproute: Mapping[str, Any], index: int) -> tuple[Any, ...]:
    """Smaller wins: an Exact match, the longest path, the oldest HTTPRoute, then
    ``namespace/name``, then the first rule (the Gateway API's precedence)."""
    meta = httproute.get("metadata", {})
    created = str(meta.get("creationTimestamp", ""))
    return (-rank[0], -rank[1], created, f"{meta.get('namespace')}/{meta.get('name')}", index)


def rules_of(value: object) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def part_of(rules: Sequence[Mapping[str, Any]], index: int) -> str:
    """How a rule is named in status and records: its ``name``, else its index."""
    return str(rules[index].get("name") or index)


def find_rule(
    httproute: Mapping[str, Any],
    rule_name: str | None,
    host: str,
    path: str,
    methods: Sequence[str],
) -> int | str:
    """The index of the rule that carries the route, or why there is none to shift.

    By name when given; else the rule whose match serves the route's path best (the
    Gateway API's precedence), refused when two rules serve it alike (only a name or a
    more precise match tells them apart)."""
    name = httproute.get("metadata", {}).get("name", "?")
    rules = rules_of(httproute.get("spec", {}).get("rules"))
    if rule_name is not None:
        for index, rule in enumerate(rules):
            if rule.get("name") == rule_name:
                return index
        return f"HTTPRoute {name} has no rule named {rule_name}"
    if not takes_host(httproute, host):
        return f"HTTPRoute {name} does not serve the host {host}"
    ranked = [(r, i) for i, rule in enumerate(rules) if (r := rule_rank(rule, path, methods))]
    if not ranked:
        return f"no rule of HTTPRoute {name} serves {path}"
    best = max(r for r, _ in ranked)
    tied = [i for r, i in ranked if r == best]
    if len(tied) > 1:
        shown = ", ".join(part_of(rules, i) for i in tied)
        return (
            f"rules {shown} of HTTPRoute {name} serve {path} alike: name the rule "
            "(reroute.httpRoute.ruleName)"
        )
    return tied[0]


def _weight(ref: Mapping[str, Any]) -> int:
    value = ref.get("weight", 1)
    return value if isinstance(value, int) and not isinstance(value, bool) else 1


def is_backend(ref: Mapping[str, Any], name: str, port: int) -> bool:
    """Whether a ``backendRef`` is the Service ``name`` on ``port`` in the same namespace."""
    return (
        ref.get("name") == name
        and ref.get("port") == port
        and ref.get("group", "") in ("", None)
        and ref.get("kind", "Service") == "Service"
        and ref.get("namespace") is None
    )


def shifted(
    refs: Sequence[Mapping[str, Any]], name: str, port: int, percent: int
) -> list[dict[str, Any]] | str:
    """The rule's ``backendRefs`` with ``percent`` % of its traffic on the long-running
    backend, or why that cannot be done exactly.

    Each other backend's weight ``w`` becomes ``w x (100 - percent)`` and the long-running
    one ``W x percent`` (``W``: their sum), divided by the common factor: the shares are
    exact and the others keep their relative weights."""
    others = [dict(r) for r in refs if not is_backend(r, name, port)]
    if not others:
        return "the rule has no other backend to shift traffic from"
    total = sum(_weight(r) for r in others)
    if total == 0:
        return "the rule's other backends carry no traffic (all weights 0)"
    weights = [_weight(r) * (100 - percent) for r in others]
    long_weight = total * percent
    factor = math.gcd(long_weight, *weights)
    weights = [w // factor for w in weights]
    long_weight //= factor
    if max(long_weight, *weights) > MAX_WEIGHT:
        return f"the rule's weights are too large to split exactly (at most {MAX_WEIGHT})"
    out: list[dict[str, Any]] = []
    placed = False
    for ref in refs:
        if is_backend(ref, name, port):
            out.append({**ref, "weight": long_weight})
            placed = True
        else:
            out.append({**ref, "weight": weights.pop(0)})
    if not placed:
        out.append({"name": name, "port": port, "weight": long_weight})
    return out


def share(refs: Sequence[Mapping[str, Any]], name: str, port: int) -> int | None:
    """The long-running backend's share of the rule's traffic in whole percent, if any."""
    total = sum(_weight(r) for r in refs)
    mine = sum(_weight(r) for r in refs if is_backend(r, name, port))
    return round(100 * mine / total) if total else None


@dataclass(frozen=True, slots=True)
class Record:
    """What the operator keeps on an HTTPRoute it shifted (``ownership.REROUTE_WEIGHTS``)."""

    owner: str
    """The TimeoutBudget (``namespace/name``) that shifted it."""
    rule: str
    """The rule's name, or its index when it has none."""
    percent: int
    """The long-running backend's share the operator last wrote."""
    original: Mapping[str, Any]
    """The rule's own ``backendRefs`` and ``timeouts`` (a key absent: the rule had none)."""
    written: Mapping[str, Any]
    """The rule's ``backendRefs`` and ``timeouts`` as the operator last wrote them."""

    def to_json(self) -> str:
        return json.dumps(
            {
                "owner": self.owner,
                "rule": self.rule,
                "percent": self.percent,
                "original": self.original,
                "written": self.written,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, raw: str | None) -> Record | None:
        """The record, or ``None`` when absent or not one (a hand-edited annotation)."""
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        owner, rule, percent = data.get("owner"), data.get("rule"), data.get("percent")
        original, written = data.get("original"), data.get("written")
        if not (
            isinstance(owner, str)
            and isinstance(rule, str)
            and isinstance(percent, int)
            and isinstance(original, dict)
            and isinstance(written, dict)
        ):
            return None
        return cls(owner, rule, percent, original, written)

    def changed_by_others(self, rule: Mapping[str, Any]) -> str | None:
        """What someone else changed in the rule since the operator wrote it, if anything:
        only the parts it wrote count (``timeouts`` only when it set them)."""
        changed = [
            key
            for key in self.written
            if _as_kept(key, rule.get(key)) != _as_kept(key, self.written[key])
        ]
        return " and ".join(changed) + " changed" if changed else None

    def restored(self, rule: Mapping[str, Any]) -> dict[str, Any]:
        """The rule with what the operator wrote replaced by the original, exactly (a part
        the rule did not have is taken out again); everything else as it is now."""
        out = dict(rule)
        for key in self.written:
            if key in self.original:
                out[key] = self.original[key]
            else:
                out.pop(key, None)
        return out


def _as_kept(key: str, value: Any) -> Any:
    """A rule's part as the API server keeps it: a ``backendRef`` gets the CRD's defaults
    (``group: ""``, ``kind: Service``, ``weight: 1``), so what the operator wrote and what
    it reads back compare equal."""
    if key != "backendRefs" or not isinstance(value, list):
        return value
    defaults = {"group": "", "kind": "Service", "weight": 1}
    return [{**defaults, **r} if isinstance(r, Mapping) else r for r in value]


OWNED = ("backendRefs", "timeouts")
"""The parts of a rule the weighted reroute may write (``timeouts`` only with setTimeouts)."""


def owned_parts(rule: Mapping[str, Any]) -> dict[str, Any]:
    """The rule's ``backendRefs`` and ``timeouts`` as they are (absent keys left out)."""
    return {key: rule[key] for key in OWNED if key in rule}


def find_recorded(rules: Sequence[Mapping[str, Any]], part: str) -> int | None:
    """The index of the rule a record names (by name, else by index), if it is still there."""
    for index, rule in enumerate(rules):
        if rule.get("name") == part or (not rule.get("name") and str(index) == part):
            return index
    return None
