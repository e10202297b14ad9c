"""Check each request body against Cloudflare's published schemas before it touches state.

A client that sends a body the real API would reject must fail against the emulator
too, with a message that names the field: otherwise tests pass on requests production
refuses. Each operation is checked against the OpenAPI extract (converted by
``schemas``) *and* the matching definition of ``minimal-schemas.json``; the violations of
both are reported together, each as a JSON pointer plus jsonschema's message.

How the two PATCH quirks are settled:
- zone setting: today's body is ``{"value": n}``; the extract's older wrapper is
  ``{"id", "value"}``, so the id from the path is added before checking it.
- DNS record: PATCH is partial, so the per-type record schema is applied without its
  top-level ``required``; ``minimal-schemas.json`` adds what the operator must send.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, relevance

from sandbox.cloudflare_emulator import schemas
from sandbox.cloudflare_emulator.protocol import JsonObject

MAX_MESSAGE = 240
PROXIABLE_TYPES = ("A", "AAAA", "CNAME")


@dataclass(frozen=True)
class Violation:
    """One reason a body is invalid: where (a JSON pointer) and why."""

    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.pointer}: {self.message}"


def _discriminator(
    validator: Any, spec: JsonObject, instance: Any, schema: JsonObject
) -> Iterator[ValidationError]:
    """OpenAPI's discriminator: validate against the schema mapped to the value."""
    del schema
    if not isinstance(instance, dict) or spec["propertyName"] not in instance:
        return  # `required` reports a missing property
    prop, mapping = spec["propertyName"], spec["mapping"]
    value = instance[prop]
    if not isinstance(value, str) or value not in mapping:
        yield ValidationError(f"{value!r} is not one of {sorted(mapping)}", path=[prop])
        return
    yield from validator.descend(instance, {"$ref": mapping[value]})


_Validator = validators.extend(Draft202012Validator, {schemas.DISCRIMINATOR: _discriminator})


class _Check:
    """One compiled schema, optionally ignoring the top-level ``required`` (partial)."""

    def __init__(self, root: JsonObject, *, partial: bool = False) -> None:
        Draft202012Validator.check_schema(root)
        self._validator = _Validator(root, format_checker=Draft202012Validator.FORMAT_CHECKER)
        self._partial = partial

    def run(self, instance: Any, prefix: str = "") -> list[Violation]:
        found = []
        for error in self._validator.iter_errors(instance):
            if self._partial and error.validator == "required" and not error.absolute_path:
                continue
            found.append(_violation(error, prefix))
        return found


def _violation(error: ValidationError, prefix: str) -> Violation:
    # In an anyOf/oneOf failure, the branch that got furthest explains it best.
    leaf = error
    while leaf.context:
        leaf = max(leaf.context, key=lambda e: (len(e.absolute_path), relevance(e)))
    pointer = prefix + "".join(f"/{part}" for part in leaf.absolute_path)
    message = leaf.message
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 3] + "..."
    return Violation(pointer or "/", message)


def _unique(violations: Iterable[Violation]) -> list[Violation]:
    seen: dict[tuple[str, str], Violation] = {}
    for v in violations:
        seen.setdefault((v.pointer, v.message), v)
    return sorted(seen.values(), key=lambda v: v.pointer)


class Validators:
    """The request validators of every emulated write operation."""

    def __init__(self, schema_set: schemas.SchemaSet) -> None:
        s = schema_set
        self._setting = _Check(
            s.component("zone_setting_proxy_read_timeout.json", "zones_proxy_read_timeout")
        )
        self._setting_min = _Check(s.minimal_def("zone_setting_proxy_read_timeout_edit_request"))
        self._entrypoint = _Check(
            s.request_body(
                "rulesets_entrypoint.json",
                "/zones/{zone_id}/rulesets/phases/{ruleset_phase}/entrypoint",
                "put",
            )
        )
        rules_path = "/zones/{zone_id}/rulesets/{ruleset_id}/rules"
        self._rule_create = _Check(s.request_body("rulesets_rules.json", rules_path, "post"))
        self._rule_edit = _Check(
            s.request_body("rulesets_rules.json", rules_path + "/{rule_id}", "patch")
        )
        self._cache_rule_min = _Check(s.minimal_def("cache_rule_request"))
        self._dns_min = _Check(s.minimal_def("dns_record_patch_proxied_request"))
        self._dns_by_type = {
            name[len("dns-records_") : -len("Record")]: _Check(
                s.component("dns_records.json", name), partial=True
            )
            for name in s.openapi["dns_records.json"]["components"]["schemas"]
            if name.startswith("dns-records_") and name.endswith("Record")
        }

    @classmethod
    def load(cls, directory: Path | str | None = None) -> Validators:
        """Validators for a schema folder, compiled once per process (they are
        stateless, so emulators share them)."""
        return _compiled(str(schemas.schema_dir(directory).resolve()))

    def zone_setting_edit(self, setting_id: str, body: Any) -> list[Violation]:
        found = self._setting_min.run(body)
        if isinstance(body, dict):
            found += self._setting.run({"id": setting_id, **body})
        return _unique(found)

    def entrypoint_put(self, body: Any) -> list[Violation]:
        found = self._entrypoint.run(body)
        rules = body.get("rules") if isinstance(body, dict) else None
        if isinstance(rules, list):
            for i, rule in enumerate(rules):
                found += self._cache_rule_min.run(rule, f"/rules/{i}")
        return _unique(found)

    def rule_create(self, body: Any) -> list[Violation]:
        return _unique([*self._rule_create.run(body), *self._cache_rule_min.run(body)])

    def rule_edit(self, merged_rule: Any) -> list[Violation]:
        """Check a PATCHed rule as it will be stored (the existing rule plus the patch)."""
        return _unique([*self._rule_edit.run(merged_rule), *self._cache_rule_min.run(merged_rule)])

    def dns_record_edit(self, body: Any, current_type: str) -> list[Violation]:
        found = self._dns_min.run(body)
        record_type = current_type
        if isinstance(body, dict) and isinstance(body.get("type"), str):
            record_type = body["type"]
        check = self._dns_by_type.get(record_type)
        if check is not None:
            found += check.run(body)
        return _unique(found)


@functools.lru_cache(maxsize=4)
def _compiled(directory: str) -> Validators:
    return Validators(schemas.load(directory))
