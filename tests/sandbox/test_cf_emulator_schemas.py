"""The OpenAPI extracts become request validators that allow for their known quirks."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from sandbox.cloudflare_emulator import schemas

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def schema_set() -> schemas.SchemaSet:
    return schemas.load()


def component(schema_set: schemas.SchemaSet, document: str, name: str) -> Any:
    return schema_set.openapi[document]["components"]["schemas"][name]


def test_rule_action_pattern_admits_underscores(schema_set: schemas.SchemaSet) -> None:
    action = component(schema_set, "rulesets_entrypoint.json", "rulesets_RuleAction")
    assert action["pattern"] == "^[a-z_]+$"


@pytest.mark.parametrize(
    ("document", "name"),
    [
        ("rulesets_entrypoint.json", "rulesets_Ruleset"),
        ("rulesets_entrypoint.json", "rulesets_Rule"),
        ("rulesets_rules.json", "rulesets_Rule"),
    ],
)
def test_read_only_fields_are_not_required_in_write_mode(
    schema_set: schemas.SchemaSet, document: str, name: str
) -> None:
    required = component(schema_set, document, name).get("required", [])
    assert not {"id", "version", "last_updated"} & set(required)


def test_discriminator_becomes_a_keyword_mapping_action_to_schema(
    schema_set: schemas.SchemaSet,
) -> None:
    request_rule = component(schema_set, "rulesets_entrypoint.json", "rulesets_RequestRule")
    assert "oneOf" not in request_rule
    assert "action" in request_rule["required"]
    mapping = request_rule[schemas.DISCRIMINATOR]["mapping"]
    assert mapping["set_cache_settings"] == "#/components/schemas/rulesets_SetCacheSettingsRule"


def test_nullable_becomes_a_null_type(schema_set: schemas.SchemaSet) -> None:
    base = component(schema_set, "zone_setting_proxy_read_timeout.json", "zones_base")
    assert base["properties"]["modified_on"]["type"] == ["string", "null"]


def test_to_write_mode_leaves_the_source_document_untouched() -> None:
    source = {
        "components": {
            "schemas": {
                "Thing": {
                    "type": "object",
                    "required": ["id", "name"],
                    "properties": {"id": {"type": "string", "readOnly": True}, "name": {}},
                }
            }
        }
    }
    converted = schemas.to_write_mode(source)
    assert converted["components"]["schemas"]["Thing"]["required"] == ["name"]
    assert source["components"]["schemas"]["Thing"]["required"] == ["id", "name"]


def test_one_of_whose_branches_require_nothing_becomes_any_of() -> None:
    shapes: dict[str, Any] = {
        "oneOf": [{"properties": {"before": {}}}, {"properties": {"after": {}}}]
    }
    exclusive: dict[str, Any] = {"oneOf": [{"required": ["a"]}, {"required": ["b"]}]}
    converted = schemas.to_write_mode({"components": {"schemas": {"P": shapes, "E": exclusive}}})
    assert "anyOf" in converted["components"]["schemas"]["P"]
    assert "oneOf" in converted["components"]["schemas"]["E"]


def test_schema_folder_comes_from_the_environment_when_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "schemas"
    shutil.copytree(schemas.schema_dir(), copy)
    monkeypatch.setenv(schemas.SCHEMAS_ENV, str(copy))
    assert schemas.schema_dir() == copy
    assert schemas.load().minimal["$defs"]


def test_default_schema_folder_ships_with_the_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(schemas.SCHEMAS_ENV, raising=False)
    folder = schemas.schema_dir()
    assert folder == Path(schemas.__file__).resolve().parent / "openapi"
    assert {*schemas.OPENAPI_FILES, schemas.MINIMAL_FILE} <= {p.name for p in folder.iterdir()}


def test_missing_schema_folder_names_the_override(tmp_path: Path) -> None:
    with pytest.raises(schemas.SchemasUnavailable, match=schemas.SCHEMAS_ENV):
        schemas.load(tmp_path / "nowhere")
