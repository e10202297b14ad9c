"""Keeping an HTTPRoute rule's timeouts in line with the budget (``spec.chain.sync``).

The Gateway API keeps ``spec.rules`` as one atomic list, so no field manager can own one
rule's ``timeouts`` alone: the operator writes the whole list (read afresh, only that
rule's ``timeouts`` changed) by server-side apply under its own field manager, and
``managedFields`` then shows it owning ``spec.rules`` while it holds the timeouts (README:
what GitOps tools should ignore). ``request`` is set to the wanted value, and so is
``backendRequest`` where the rule has one below it (the API's own rule: ``backendRequest``
never longer than ``request``). The rule's own ``timeouts`` are recorded on the HTTPRoute
first and given back exactly, in one merge patch. An HTTPRoute held for another route, or
a rule that is gone, is refused.
"""

from __future__ import annotations

import json
from typing import Any

from timeout_budget.actions.target import ClusterTarget, RestoreTarget
from timeout_budget.clients.kube import Kube, NotFound
from timeout_budget.model import ownership
from timeout_budget.model.actions import RuleTimeout
from timeout_budget.model.spec import RouteKey

MANAGER = ownership.FIELD_MANAGER


class RuleHeld(RuntimeError):
    """The rule is held for another route, or is not there any more."""


async def execute(target: ClusterTarget, action: RuleTimeout) -> None:
    kube, ns, key = target.kube, target.namespace, target.key
    found = await kube.get_httproute(ns, action.httproute)
    notes = _annotations(found)
    held = _original(notes)
    if held is not None and notes.get(ownership.OWNER) != key:
        raise RuleHeld(f"HTTPRoute {action.httproute} is held for {notes.get(ownership.OWNER)}")
    if action.seconds is None:
        if held is not None:
            await give_back(kube, ns, found, held)
        return
    rules = _rules(found)
    index = _index(rules, action.rule)
    original = (
        held
        if held is not None
        else {"rule": action.rule, "timeouts": rules[index].get("timeouts") or {}}
    )
    timeouts = dict(rules[index].get("timeouts") or {})
    wanted = f"{action.seconds}s"
    timeouts["request"] = wanted
    if "backendRequest" in timeouts:
        timeouts["backendRequest"] = wanted
    rules[index] = {**rules[index], "timeouts": timeouts}
    marks: dict[str, str | None] = {
        **ownership.ours(found),  # the same manager's apply without them would remove them
        ownership.ORIGINAL_RULE_TIMEOUTS: json.dumps(original, sort_keys=True),
        ownership.OWNER: key,
    }
    version = found.get("metadata", {}).get("resourceVersion")
    await kube.write_httproute(
        ns, action.httproute, rules, marks, MANAGER, apply=True, resource_version=version
    )


async def give_back(kube: Kube, ns: str, found: dict[str, Any], original: dict[str, Any]) -> str:
    name = str(found["metadata"]["name"])
    rules = _rules(found)
    part = str(original.get("rule"))
    try:
        index = _index(rules, part)
    except RuleHeld:
        index = None  # the rule is gone: only the bookkeeping goes
    if index is not None:
        rule = {k: v for k, v in rules[index].items() if k != "timeouts"}
        if original.get("timeouts"):
            rule["timeouts"] = original["timeouts"]
        rules[index] = rule
    marks: dict[str, str | None] = {ownership.ORIGINAL_RULE_TIMEOUTS: None, ownership.OWNER: None}
    await kube.write_httproute(ns, name, rules, marks, MANAGER, apply=False)
    shown = original.get("timeouts") or "none"
    return f"gave back the timeouts of HTTPRoute {ns}/{name} rule {part}: {shown}"


async def restore(target: RestoreTarget) -> list[str]:
    """The finalizer's undo: every HTTPRoute of the namespace held for this route."""
    return await restore_held(target.kube, target.namespace, target.key)


async def restore_held(kube: Kube, ns: str, key: RouteKey) -> list[str]:
    try:
        httproutes = await kube.list_httproutes(ns)
    except NotFound:
        return []  # no Gateway API in this cluster
    done: list[str] = []
    for listed in httproutes:
        notes = _annotations(listed)
        if notes.get(ownership.OWNER) == key and _original(notes) is not None:
            found = await kube.get_httproute(ns, str(listed["metadata"]["name"]))
            original = _original(_annotations(found))
            if original is not None:
                done.append(await give_back(kube, ns, found, original))
    return done


def _index(rules: list[dict[str, Any]], part: str) -> int:
    for index, rule in enumerate(rules):
        if rule.get("name") == part or (not rule.get("name") and str(index) == part):
            return index
    raise RuleHeld(f"the HTTPRoute has no rule {part} any more")


def _rules(found: dict[str, Any]) -> list[dict[str, Any]]:
    rules = found.get("spec", {}).get("rules") or []
    return [dict(r) for r in rules if isinstance(r, dict)]


def _original(notes: dict[str, str]) -> dict[str, Any] | None:
    raw = notes.get(ownership.ORIGINAL_RULE_TIMEOUTS)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _annotations(obj: dict[str, Any]) -> dict[str, str]:
    notes = obj.get("metadata", {}).get("annotations") or {}
    return {str(k): str(v) for k, v in notes.items()}
