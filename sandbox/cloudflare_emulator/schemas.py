"""Turn Cloudflare's OpenAPI extracts into JSON Schemas a validator can run on requests.

The emulator checks each request body against the official extracts in ``openapi/``
beside this module (or the folder ``$TBO_CLOUDFLARE_SCHEMAS`` names); ``openapi/README.md``
says where each file comes from and under which licence.
They are OpenAPI 3.0 documents from 2024, and read literally they would reject requests
the real API and SDK send every day. The conversion below allows for exactly the quirks
the design lists, and nothing more:

- ``rulesets_RuleAction`` has the pattern ``^[a-z]+$``, which rejects every real action
  with an underscore (``set_cache_settings``): the underscore is allowed.
- ``id``, ``version``, ``last_updated`` (and the other ``readOnly`` fields) are listed as
  required although the server assigns them: requests are validated in *write mode*, as
  OpenAPI's ``readOnly`` intends, so a read-only property is never required. It is still
  accepted, so rules read from Cloudflare can be sent back unchanged.
- OpenAPI's ``nullable`` becomes a JSON Schema ``null`` type, and a ``discriminator``
  over ``oneOf`` becomes an ``x-discriminator`` keyword that validates against the one
  mapped schema (what a discriminator means), which is fast and gives messages that
  name the offending field instead of "not valid under any of the given schemas".
- One more, found by running real requests: the rule ``position`` is a ``oneOf`` of
  ``before`` / ``after`` / ``index`` shapes none of which requires its key, so every
  position matches all three and ``oneOf`` fails. A ``oneOf`` whose branches require
  nothing is read as ``anyOf``; ``minimal-schemas.json`` keeps the exclusive check.
- The 2024 ``set_cache_settings`` parameters require ``default`` and ``status_code_ttl``
  inside ``edge_ttl``; the SDK (5.9, ``ActionParametersEdgeTTL``) requires only ``mode``,
  and Cloudflare's own "turn off default cache TTLs" rule sends ``{"mode":
  "bypass_by_default"}`` alone (EDGE-FACTS): only ``mode`` stays required.
- The DNS PATCH body (typed as a full record) and the zone-setting PATCH body (typed in
  an older ``{id, value}`` wrapper) are settled by ``minimal-schemas.json``; how they are
  applied is up to ``validation``.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.cloudflare_emulator.protocol import JsonObject

SCHEMAS_ENV = "TBO_CLOUDFLARE_SCHEMAS"
DEFAULT_DIR = Path(__file__).resolve().parent / "openapi"

OPENAPI_FILES = (
    "zone_setting_proxy_read_timeout.json",
    "rulesets_entrypoint.json",
    "rulesets_rules.json",
    "dns_records.json",
)
MINIMAL_FILE = "minimal-schemas.json"
# The generic action pattern of the 2024 extract, and the one real actions need.
RULE_ACTION_PATTERN = "^[a-z_]+$"
# The keyword an OpenAPI discriminator becomes (see ``validation``).
DISCRIMINATOR = "x-discriminator"


class SchemasUnavailable(FileNotFoundError):
    """The schema directory or one of its files is missing."""


def schema_dir(explicit: Path | str | None = None) -> Path:
    """Where the schemas are: the argument, else ``$TBO_CLOUDFLARE_SCHEMAS``, else the
    ``openapi`` folder shipped with the emulator."""
    if explicit is not None:
        return Path(explicit)
    from_env = os.environ.get(SCHEMAS_ENV)
    return Path(from_env) if from_env else DEFAULT_DIR


@dataclass(frozen=True)
class SchemaSet:
    """The loaded documents: OpenAPI extracts (converted) and the minimal schemas."""

    openapi: dict[str, JsonObject]
    minimal: JsonObject

    def component(self, document: str, name: str) -> JsonObject:
        """A root schema that validates against ``#/components/schemas/<name>``."""
        doc = self.openapi[document]
        if name not in doc["components"]["schemas"]:
            raise KeyError(f"{document} has no schema {name}")
        return {"components": doc["components"], "$ref": f"#/components/schemas/{name}"}

    def request_body(self, document: str, path: str, method: str) -> JsonObject:
        """A root schema for the JSON request body of one OpenAPI operation."""
        doc = self.openapi[document]
        body = doc["paths"][path][method.lower()]["requestBody"]
        if "$ref" in body:
            body = _resolve(doc, body["$ref"])
        schema = body["content"]["application/json"]["schema"]
        return {"components": doc["components"], **schema}

    def minimal_def(self, name: str) -> JsonObject:
        """A root schema for one definition of ``minimal-schemas.json``."""
        if name not in self.minimal["$defs"]:
            raise KeyError(f"{MINIMAL_FILE} has no definition {name}")
        return {"$defs": self.minimal["$defs"], "$ref": f"#/$defs/{name}"}


def load(directory: Path | str | None = None) -> SchemaSet:
    """Load and convert every schema file the emulator validates with."""
    where = schema_dir(directory)
    if not where.is_dir():
        raise SchemasUnavailable(
            f"Cloudflare API schemas not found in {where} (set {SCHEMAS_ENV} to their folder)"
        )
    openapi = {name: to_write_mode(_read(where / name)) for name in OPENAPI_FILES}
    return SchemaSet(openapi=openapi, minimal=_read(where / MINIMAL_FILE))


def _read(path: Path) -> JsonObject:
    if not path.is_file():
        raise SchemasUnavailable(f"Cloudflare API schema file missing: {path}")
    data: JsonObject = json.loads(path.read_text(encoding="utf-8"))
    return data


def to_write_mode(document: JsonObject) -> JsonObject:
    """A copy of an OpenAPI document whose schemas validate *requests* as JSON Schema."""
    doc = copy.deepcopy(document)
    action = doc.get("components", {}).get("schemas", {}).get("rulesets_RuleAction")
    if action is not None:
        action["pattern"] = RULE_ACTION_PATTERN
    edge_ttl = _edge_ttl(doc)
    if edge_ttl is not None and isinstance(edge_ttl.get("required"), list):
        edge_ttl["required"] = [p for p in edge_ttl["required"] if p == "mode"]
    converted: JsonObject = _convert(doc, doc)
    return converted


def _edge_ttl(doc: JsonObject) -> JsonObject | None:
    """The ``edge_ttl`` schema of ``set_cache_settings``, where the extract has it."""
    rule = doc.get("components", {}).get("schemas", {}).get("rulesets_SetCacheSettingsRule")
    for member in rule.get("allOf", []) if isinstance(rule, dict) else []:
        params = member.get("properties", {}).get("action_parameters", {})
        found = params.get("properties", {}).get("edge_ttl")
        if isinstance(found, dict):
            return found
    return None


def _convert(node: Any, doc: JsonObject) -> Any:
    if isinstance(node, list):
        return [_convert(item, doc) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _convert(value, doc) for key, value in node.items()}
    if out.get("nullable") is True:
        _allow_null(out)
    if "discriminator" in out and "oneOf" in out:
        _discriminate(out)
    elif "oneOf" in out and not any(_requires(b, doc, 0) for b in out["oneOf"]):
        out["anyOf"] = out.pop("oneOf")
    if isinstance(out.get("required"), list):
        out["required"] = [p for p in out["required"] if not _property_read_only(out, p, doc)]
    return out


def _allow_null(schema: JsonObject) -> None:
    kind = schema.get("type")
    if isinstance(kind, str):
        schema["type"] = [kind, "null"]
    if isinstance(schema.get("enum"), list) and None not in schema["enum"]:
        schema["enum"] = [*schema["enum"], None]


def _discriminate(schema: JsonObject) -> None:
    """Replace ``oneOf`` + ``discriminator`` with the ``x-discriminator`` keyword, which
    ``validation`` implements: pick the schema mapped to the property's value."""
    disc = schema.pop("discriminator")
    schema.pop("oneOf")
    prop = disc["propertyName"]
    schema.setdefault("required", [])
    if prop not in schema["required"]:
        schema["required"].append(prop)
    schema[DISCRIMINATOR] = {"propertyName": prop, "mapping": dict(disc.get("mapping", {}))}


def _requires(schema: Any, doc: JsonObject, depth: int) -> bool:
    """Whether a schema (through ``$ref`` and ``allOf``) requires any property."""
    if not isinstance(schema, dict) or depth > 8:
        return False
    if schema.get("required"):
        return True
    if "$ref" in schema and _requires(_resolve(doc, schema["$ref"]), doc, depth + 1):
        return True
    return any(_requires(m, doc, depth + 1) for m in schema.get("allOf", []))


def _property_read_only(schema: JsonObject, prop: str, doc: JsonObject) -> bool:
    found = _find_property(schema, prop, doc, depth=0)
    return found is not None and _read_only(found, doc, depth=0)


def _find_property(schema: JsonObject, prop: str, doc: JsonObject, depth: int) -> Any:
    if depth > 8:
        return None
    if "$ref" in schema:
        schema = _resolve(doc, schema["$ref"])
    props = schema.get("properties")
    if isinstance(props, dict) and prop in props:
        return props[prop]
    for member in schema.get("allOf", []):
        if isinstance(member, dict):
            found = _find_property(member, prop, doc, depth + 1)
            if found is not None:
                return found
    return None


def _read_only(schema: Any, doc: JsonObject, depth: int) -> bool:
    if not isinstance(schema, dict) or depth > 8:
        return False
    if schema.get("readOnly") is True:
        return True
    if "$ref" in schema and _read_only(_resolve(doc, schema["$ref"]), doc, depth + 1):
        return True
    return any(_read_only(m, doc, depth + 1) for m in schema.get("allOf", []))


def _resolve(doc: JsonObject, ref: str) -> JsonObject:
    if not ref.startswith("#/"):
        raise ValueError(f"only local references are supported, got {ref}")
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    if not isinstance(node, dict):
        raise ValueError(f"reference {ref} does not point to an object")
    return node
