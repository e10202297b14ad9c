"""The weighted reroute on an HTTPRoute rule (``reroute.httpRoute``): each step, and the
exact undo.

A step sets the long-running backend's share of the rule's traffic through
``backendRefs[].weight`` (``model.httproute.shifted``: the other backends keep their
relative weights), and with ``setTimeouts`` the rule's ``timeouts`` that let the budget
run. The Gateway API keeps ``spec.rules`` as one atomic list, so the whole list is written
(read afresh, only that rule's ``backendRefs`` and ``timeouts`` changed) by server-side
apply under the operator's field manager, on the ``resourceVersion`` it was read at (a
write in between is a 409 and the step is tried again on a fresh read). The rule's own
``backendRefs`` and ``timeouts`` and what the operator wrote are recorded on the HTTPRoute
in the same write (``ownership.REROUTE_WEIGHTS``).

Before each write the rule is compared with that record: a rule someone else changed since
(a GitOps sync put the weights back, a person edited them) is not overwritten; the step is
refused with what changed, in status and as a Warning Event, until the rule is as the
operator left it again or the record is removed. The undo restores the recorded original
exactly and takes the record off, in one merge patch; the finalizer does the same, and
leaves a changed rule as it is (taking only the record off).
"""

from __future__ import annotations

from typing import Any

from timeout_budget.actions.target import ClusterTarget, RestoreTarget
from timeout_budget.clients.kube import Kube, NotFound
from timeout_budget.model import ownership
from timeout_budget.model.actions import Reroute
from timeout_budget.model.httproute import (
    Record,
    find_recorded,
    find_rule,
    part_of,
    raised_timeouts,
    rules_of,
    shifted,
)

MANAGER = ownership.FIELD_MANAGER


class ShiftRefused(RuntimeError):
    """The HTTPRoute is not the operator's to change now (another route holds it, someone
    else changed the rule, no rule carries the route, the weights cannot be split)."""


async def execute(target: ClusterTarget, action: Reroute) -> None:
    name = action.target.name
    found = await _get(target.kube, target.namespace, name)
    record = _record(found)
    if record is not None and record.owner != target.key:
        raise ShiftRefused(f"HTTPRoute {name} is shifted by TimeoutBudget {record.owner}")
    if not action.apply:
        if record is not None:
            await give_back(target.kube, target.namespace, found, record)
        return
    await _step(target, action, found, record)


async def _step(
    target: ClusterTarget, action: Reroute, found: dict[str, Any], record: Record | None
) -> None:
    shift = target.spec.reroute.http_route if target.spec.reroute is not None else None
    name = action.target.name
    if shift is None or action.percent is None:
        raise ShiftRefused(f"HTTPRoute {name}: no weighted reroute in spec.reroute")
    rules = _rules(found)
    if record is None:
        route = target.spec.route
        index = find_rule(found, shift.rule_name, route.host, route.path_prefix, route.methods)
        if isinstance(index, str):
            raise ShiftRefused(index)
        part = part_of(rules, index)
        keys = ("backendRefs", "timeouts") if action.rule_timeout_seconds else ("backendRefs",)
        original = {k: rules[index][k] for k in keys if k in rules[index]}
    else:
        found_index = find_recorded(rules, record.rule)
        if found_index is None:
            raise ShiftRefused(_not_overwritten(name, f"rule {record.rule} was taken out"))
        index, part, original = found_index, record.rule, dict(record.original)
        changed = record.changed_by_others(rules[index])
        if changed is not None:
            raise ShiftRefused(_not_overwritten(name, f"rule {part}: {changed}"))
    refs = shifted(
        original.get("backendRefs") or [], shift.backend.name, shift.backend.port, action.percent
    )
    if isinstance(refs, str):
        raise ShiftRefused(f"HTTPRoute {name} rule {part}: {refs}")
    written: dict[str, Any] = {"backendRefs": refs}
    if action.rule_timeout_seconds is not None:
        written["timeouts"] = raised_timeouts(
            original.get("timeouts") or {}, action.rule_timeout_seconds
        )
    rules[index] = {**rules[index], **written}
    kept = Record(target.key, part, action.percent, original, written)
    # The same field manager's apply without its other annotations would remove them.
    marks = {**ownership.ours(found), ownership.REROUTE_WEIGHTS: kept.to_json()}
    await target.kube.write_httproute(
        target.namespace, name, rules, marks, MANAGER, apply=True, resource_version=_version(found)
    )


def _not_overwritten(name: str, what: str) -> str:
    return (
        f"HTTPRoute {name} {what} by someone else since the operator wrote it: not "
        "overwritten (put the rule back as the operator left it, or remove the annotation "
        f"{ownership.REROUTE_WEIGHTS} to hand it over)"
    )


async def give_back(kube: Kube, ns: str, found: dict[str, Any], record: Record) -> str:
    """The rule's recorded original back, exactly, and the record off; refused when
    someone else changed the rule since the operator wrote it."""
    name = str(found["metadata"]["name"])
    rules = _rules(found)
    index = find_recorded(rules, record.rule)
    if index is None:
        raise ShiftRefused(_not_overwritten(name, f"rule {record.rule} was taken out"))
    changed = record.changed_by_others(rules[index])
    if changed is not None:
        raise ShiftRefused(_not_overwritten(name, f"rule {record.rule}: {changed}"))
    rules[index] = record.restored(rules[index])
    marks: dict[str, str | None] = {ownership.REROUTE_WEIGHTS: None}
    await kube.write_httproute(
        ns, name, rules, marks, MANAGER, apply=False, resource_version=_version(found)
    )
    return f"restored the weights of HTTPRoute {ns}/{name} rule {record.rule}"


async def restore(target: RestoreTarget) -> list[str]:
    """The finalizer's undo: every HTTPRoute of the namespace this route shifted. A rule
    someone else changed since is left as they made it; only the record goes."""
    kube, ns = target.kube, target.namespace
    try:
        listed = await kube.list_httproutes(ns)
    except NotFound:
        return []  # no Gateway API in this cluster
    done: list[str] = []
    for item in listed:
        record = _record(item)
        if record is None or record.owner != target.key:
            continue
        found = await kube.get_httproute(ns, str(item["metadata"]["name"]))
        record = _record(found)
        if record is None or record.owner != target.key:
            continue
        try:
            done.append(await give_back(kube, ns, found, record))
        except ShiftRefused as exc:
            name = str(found["metadata"]["name"])
            marks: dict[str, str | None] = {ownership.REROUTE_WEIGHTS: None}
            await kube.write_httproute(
                ns,
                name,
                _rules(found),
                marks,
                MANAGER,
                apply=False,
                resource_version=_version(found),
            )
            done.append(f"left HTTPRoute {ns}/{name} as it is: {exc}")
    return done


async def _get(kube: Kube, ns: str, name: str) -> dict[str, Any]:
    try:
        return await kube.get_httproute(ns, name)
    except NotFound as exc:
        raise ShiftRefused(f"HTTPRoute {name} not found") from exc


def _record(found: dict[str, Any]) -> Record | None:
    notes = found.get("metadata", {}).get("annotations") or {}
    return Record.from_json(notes.get(ownership.REROUTE_WEIGHTS))


def _rules(found: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(r) for r in rules_of(found.get("spec", {}).get("rules"))]


def _version(found: dict[str, Any]) -> str | None:
    value = found.get("metadata", {}).get("resourceVersion")
    return str(value) if value else None
