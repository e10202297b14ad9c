"""Cache Rules: the zone entry point of phase ``http_request_cache_settings`` and its rules.

The operator keeps one Cache Rule per route (action ``set_cache_settings`` with
``read_timeout``) in a ruleset other people write to as well. What makes that hard is
what the emulator reproduces: a PUT replaces the *whole* list (forgetting a foreign rule
deletes it), rules without an ``id`` are new rules with new ids, every change makes a new
ruleset version, refs must be unique, ``read_timeout`` needs an Enterprise zone and the
plan caps the number of rules. Single-rule POST/PATCH/DELETE answer with the whole
ruleset, as Cloudflare does. ``?dry_run=true`` checks a write without applying it.

Strict where the real answer is NOT CONFIRMED (EDGE-FACTS), so a client that relies on
leniency fails here rather than in production:
- read-only rule fields (``version``, ``last_updated``, ``categories``: ``readOnly`` in the
  OpenAPI) in a written rule are refused, as a request validated in write context is;
- creating an entry point (``POST /zones/{z}/rulesets``) for a phase that has one is
  refused (Cloudflare's exact code and message for it are the emulator's choice);
- every written expression is parsed by Cloudflare's own parser (wirefilter, through the
  ``octorules-wirefilter`` package) and refused with its message when it does not parse;
  over 4,096 characters is refused too (DOCS).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import octorules_wirefilter

from sandbox.cloudflare_emulator.protocol import (
    ApiError,
    Code,
    ErrorItem,
    JsonObject,
    Reply,
    Request,
    ok,
)
from sandbox.cloudflare_emulator.state import (
    CACHE_SETTINGS_PHASE,
    Ruleset,
    Store,
    Zone,
    new_id,
    now_iso,
)
from sandbox.cloudflare_emulator.validation import Validators, Violation

SERVER_FIELDS = frozenset({"id", "version", "last_updated"})
READ_ONLY_FIELDS = ("version", "last_updated", "categories")
"""``readOnly`` in the OpenAPI's ``rulesets_Rule``: a client must not send them."""
MAX_EXPRESSION = 4096


def _read_only(rule: Any, pointer: str) -> list[ErrorItem]:
    if not isinstance(rule, dict):
        return []
    return [
        _item(f"{pointer}/{name}", f"'{name}' is read-only: it is set by Cloudflare, not sent")
        for name in READ_ONLY_FIELDS
        if name in rule
    ]


def _expression(rule: Mapping[str, Any], pointer: str) -> list[ErrorItem]:
    """Cloudflare's parser on the rule's expression (wirefilter, the HTTP scheme)."""
    text = rule.get("expression")
    if not isinstance(text, str) or not text.strip():
        return []  # the schema, or the blank check, says why
    if len(text) > MAX_EXPRESSION:
        return [_item(f"{pointer}/expression", f"the expression is longer than {MAX_EXPRESSION}")]
    parsed = octorules_wirefilter.parse_expression(text)
    error = parsed.get("error")
    if error:
        return [_item(f"{pointer}/expression", f"filter parsing error: {error.strip()}")]
    return []


def _invalid(errors: Sequence[ErrorItem]) -> ApiError:
    return ApiError(400, errors)


def _schema_errors(violations: Sequence[Violation]) -> ApiError:
    return _invalid(
        [ErrorItem(Code.RULESET_VALIDATION, str(v), pointer=v.pointer) for v in violations]
    )


def _phase(req: Request) -> str:
    phase = req.params["phase"]
    if phase != CACHE_SETTINGS_PHASE:
        raise ApiError.one(
            404,
            Code.NO_ROUTE,
            f"No route for that URI (the emulator implements only the "
            f"{CACHE_SETTINGS_PHASE} phase, not {phase})",
        )
    return phase


def _ruleset(zone: Zone, ruleset_id: str) -> Ruleset:
    found = zone.ruleset_by_id(ruleset_id)
    if found is None:
        raise ApiError.one(404, Code.RULESET_NOT_FOUND, f"could not find ruleset {ruleset_id}")
    return found


def _rule_index(ruleset: Ruleset, rule_id: str) -> int:
    for i, rule in enumerate(ruleset.rules):
        if rule["id"] == rule_id:
            return i
    raise ApiError.one(
        404, Code.RULESET_NOT_FOUND, f"could not find rule {rule_id} in ruleset {ruleset.id}"
    )


def _content(rule: Mapping[str, Any], rule_id: str) -> JsonObject:
    """A rule's user-owned fields, with Cloudflare's defaults filled in."""
    given = {k: copy.deepcopy(v) for k, v in rule.items() if k not in SERVER_FIELDS}
    given.pop("position", None)
    return {"description": "", "enabled": True, "ref": rule_id, **given}


def _build(body: Mapping[str, Any], previous: JsonObject | None, rule_id: str) -> JsonObject:
    """The stored rule: unchanged rules keep version and timestamp, changed ones bump."""
    content = _content(body, rule_id)
    if previous is not None and _content(previous, rule_id) == content:
        return copy.deepcopy(previous)
    version = int(previous["version"]) + 1 if previous is not None else 1
    return {"id": rule_id, "version": str(version), **content, "last_updated": now_iso()}


def _check(
    zone: Zone, rules: Sequence[JsonObject], written: Mapping[int, str], list_pointer: str
) -> None:
    """Rules Cloudflare enforces beyond the schemas. ``written`` maps the index of each
    rule this request wrote to the JSON pointer that names it in the request body;
    ``list_pointer`` names the list as a whole (for the quota)."""
    errors: list[ErrorItem] = []
    first_by_ref: dict[str, int] = {}
    for i, rule in enumerate(rules):
        ref = rule["ref"]
        if ref in first_by_ref and i in written:
            errors.append(_item(f"{written[i]}/ref", f"duplicate rule ref '{ref}'"))
        elif ref in first_by_ref and first_by_ref[ref] in written:
            where = written[first_by_ref[ref]]
            errors.append(_item(f"{where}/ref", f"duplicate rule ref '{ref}'"))
        first_by_ref.setdefault(ref, i)
        if i not in written:
            continue
        if not str(rule.get("expression", "")).strip():
            errors.append(_item(f"{written[i]}/expression", "the expression must not be blank"))
        errors.extend(_expression(rule, written[i]))
        params = rule.get("action_parameters")
        has_timeout = isinstance(params, dict) and "read_timeout" in params
        if has_timeout and not zone.plan.can_raise_timeouts:
            errors.append(
                _item(
                    f"{written[i]}/action_parameters/read_timeout",
                    f"read_timeout is only available on Enterprise zones "
                    f"(this zone's plan is {zone.plan.value})",
                )
            )
    quota = zone.plan.rule_quota
    if len(rules) > quota:
        errors.append(
            _item(
                list_pointer,
                f"exceeded maximum number of rules in the {CACHE_SETTINGS_PHASE} phase: "
                f"{len(rules)} rules, the {zone.plan.value} plan allows {quota}",
            )
        )
    if errors:
        raise _invalid(errors)


def _item(pointer: str, message: str) -> ErrorItem:
    return ErrorItem(Code.RULESET_VALIDATION, f"{pointer}: {message}", pointer=pointer)


def _place(rules: list[JsonObject], rule: JsonObject, position: Any) -> int:
    """Insert ``rule`` where ``position`` says (default: last); returns its index."""
    index = len(rules)
    if isinstance(position, dict) and position:
        if "index" in position:
            index = min(max(int(position["index"]) - 1, 0), len(rules))
        else:
            key = "before" if "before" in position else "after"
            target = position[key]
            if target == "":
                index = 0 if key == "before" else len(rules)
            else:
                found = [i for i, r in enumerate(rules) if r["id"] == target]
                if not found:
                    raise _invalid([_item(f"/position/{key}", f"rule {target} not found")])
                index = found[0] + (1 if key == "after" else 0)
    rules.insert(index, rule)
    return index


def _commit(
    zone: Zone, phase: str, rules: list[JsonObject], body: Mapping[str, Any], dry_run: bool
) -> Reply:
    if dry_run:
        return ok(None)
    ruleset = zone.entrypoints.get(phase)
    if ruleset is None:
        ruleset = Ruleset(id=new_id(), phase=phase)
        zone.entrypoints[phase] = ruleset
    else:
        ruleset.version += 1
    if isinstance(body.get("name"), str):
        ruleset.name = body["name"]
    if isinstance(body.get("description"), str):
        ruleset.description = body["description"]
    ruleset.rules = rules
    ruleset.last_updated = now_iso()
    return ok(ruleset.to_json())


def replace_rules(zone: Zone, validators: Validators, body: Any, *, dry_run: bool = False) -> Reply:
    """PUT semantics: the body's rules become the entry point's whole list."""
    violations = validators.entrypoint_put(body)
    if violations:
        raise _schema_errors(violations)
    read_only = [e for i, r in enumerate(body["rules"]) for e in _read_only(r, f"/rules/{i}")]
    if read_only:
        raise _invalid(read_only)
    current = zone.entrypoints.get(CACHE_SETTINGS_PHASE)
    by_id = {r["id"]: r for r in (current.rules if current else [])}
    rules: list[JsonObject] = []
    errors: list[ErrorItem] = []
    for i, rule in enumerate(body["rules"]):
        rule_id = rule.get("id")
        if rule_id is not None and rule_id not in by_id:
            errors.append(_item(f"/rules/{i}/id", f"rule {rule_id} is not in this ruleset"))
        elif rule_id is not None and any(r["id"] == rule_id for r in rules):
            errors.append(_item(f"/rules/{i}/id", f"duplicate rule id {rule_id}"))
        rules.append(_build(rule, by_id.get(rule_id or ""), rule_id or new_id()))
    if errors:
        raise _invalid(errors)
    _check(zone, rules, {i: f"/rules/{i}" for i in range(len(rules))}, "/rules")
    return _commit(zone, CACHE_SETTINGS_PHASE, rules, body, dry_run)


def get_entrypoint(store: Store, validators: Validators, req: Request) -> Reply:
    del validators
    phase = _phase(req)
    zone = store.zone(req.params["zone_id"], f"/rulesets/phases/{phase}/entrypoint")
    ruleset = zone.entrypoints.get(phase)
    if ruleset is None:
        raise ApiError.one(
            404, Code.RULESET_NOT_FOUND, f"could not find entrypoint ruleset in the {phase} phase"
        )
    return ok(ruleset.to_json())


def create_ruleset(store: Store, validators: Validators, req: Request) -> Reply:
    """``POST /zones/{z}/rulesets``: a zone entry point for the cache phase, refused when
    the phase has one already (unlike a PUT, it never replaces a list)."""
    zone = store.zone(req.params["zone_id"], "/rulesets")
    body = req.body
    if not isinstance(body, dict):
        raise _schema_errors([Violation("/", f"{body!r} is not of type 'object'")])
    errors = []
    if body.get("kind") != "zone":
        errors.append(_item("/kind", "the emulator creates only rulesets of kind 'zone'"))
    if body.get("phase") != CACHE_SETTINGS_PHASE:
        errors.append(_item("/phase", f"the emulator implements only {CACHE_SETTINGS_PHASE}"))
    if not isinstance(body.get("name"), str):
        errors.append(_item("/name", "a ruleset needs a name"))
    if errors:
        raise _invalid(errors)
    if zone.entrypoints.get(CACHE_SETTINGS_PHASE) is not None:
        raise _invalid(
            [
                _item(
                    "/phase",
                    f"a ruleset of kind zone for phase {CACHE_SETTINGS_PHASE} already exists "
                    "(the entry point): add rules to it instead",
                )
            ]
        )
    return replace_rules(zone, validators, body, dry_run=req.flag("dry_run"))


def put_entrypoint(store: Store, validators: Validators, req: Request) -> Reply:
    phase = _phase(req)
    zone = store.zone(req.params["zone_id"], f"/rulesets/phases/{phase}/entrypoint")
    return replace_rules(zone, validators, req.body, dry_run=req.flag("dry_run"))


def create_rule(store: Store, validators: Validators, req: Request) -> Reply:
    zone = store.zone(req.params["zone_id"], "/rulesets")
    ruleset = _ruleset(zone, req.params["ruleset_id"])
    violations = validators.rule_create(req.body)
    if violations:
        raise _schema_errors(violations)
    if _read_only(req.body, ""):
        raise _invalid(_read_only(req.body, ""))
    rule_id = req.body.get("id") or new_id()
    if any(r["id"] == rule_id for r in ruleset.rules):
        raise _invalid([_item("/id", f"a rule with id {rule_id} already exists")])
    rules = copy.deepcopy(ruleset.rules)
    index = _place(rules, _build(req.body, None, rule_id), req.body.get("position"))
    _check(zone, rules, {index: ""}, "/")
    return _commit(zone, ruleset.phase, rules, {}, req.flag("dry_run"))


def edit_rule(store: Store, validators: Validators, req: Request) -> Reply:
    zone = store.zone(req.params["zone_id"], "/rulesets")
    ruleset = _ruleset(zone, req.params["ruleset_id"])
    index = _rule_index(ruleset, req.params["rule_id"])
    if not isinstance(req.body, dict):
        raise _schema_errors([Violation("/", f"{req.body!r} is not of type 'object'")])
    if _read_only(req.body, ""):
        raise _invalid(_read_only(req.body, ""))
    rules = copy.deepcopy(ruleset.rules)
    previous = rules.pop(index)
    kept = {k: v for k, v in previous.items() if k not in READ_ONLY_FIELDS}
    merged = {**kept, **req.body}
    violations = validators.rule_edit(merged)
    if violations:
        raise _schema_errors(violations)
    rule = _build(merged, previous, previous["id"])
    position = req.body.get("position")
    if position:
        index = _place(rules, rule, position)
    else:
        rules.insert(index, rule)
    _check(zone, rules, {index: ""}, "/")
    return _commit(zone, ruleset.phase, rules, {}, req.flag("dry_run"))


def delete_rule(store: Store, validators: Validators, req: Request) -> Reply:
    del validators
    zone = store.zone(req.params["zone_id"], "/rulesets")
    ruleset = _ruleset(zone, req.params["ruleset_id"])
    index = _rule_index(ruleset, req.params["rule_id"])
    rules = copy.deepcopy(ruleset.rules)
    del rules[index]
    return _commit(zone, ruleset.phase, rules, {}, req.flag("dry_run"))


def seed_rules(store: Store, validators: Validators, zone_id: str, rules: Any) -> JsonObject:
    """Append rules as another tool would have written them (admin seeding); the
    entry point is created if needed. Returns the ruleset."""
    with store.lock:
        zone = store.zone(zone_id)
        current = zone.entrypoints.get(CACHE_SETTINGS_PHASE)
        existing = current.rules if current else []
        if not isinstance(rules, list):
            raise _schema_errors([Violation("/rules", "rules must be a list")])
        as_sent = [{k: v for k, v in r.items() if k not in READ_ONLY_FIELDS} for r in existing]
        reply = replace_rules(zone, validators, {"rules": [*as_sent, *rules]})
        assert reply.body is not None
        result: JsonObject = reply.body["result"]
        return result
