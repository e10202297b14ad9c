"""The chart's files that must agree with the rest of the repository: its CRDs are the
repository's (one source), its values are what its schema accepts, every value is
documented, and the dashboard is well-formed Grafana JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "timeout-budget-operator"
SOURCES = [*sorted((REPO / "crds").glob("*.yaml")), REPO / "crds" / "peering" / "kopf-peering.yaml"]


def test_the_charts_crds_are_copies_of_the_repository_crds() -> None:
    copies = sorted(p.name for p in (CHART / "crds").glob("*.yaml"))
    assert copies == sorted(p.name for p in SOURCES), "run charts/sync-crds.sh"
    for source in SOURCES:
        copy = CHART / "crds" / source.name
        assert copy.read_bytes() == source.read_bytes(), f"{copy} differs: run charts/sync-crds.sh"


def schema_validator() -> jsonschema.Draft7Validator:
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


@pytest.mark.parametrize("values", ["", "all-options-values.yaml", "namespaced-values.yaml"])
def test_the_schema_accepts_the_shipped_values(values: str) -> None:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    override = yaml.safe_load((CHART / "ci" / values).read_text()) if values else {}
    errors = sorted(schema_validator().iter_errors(merged(defaults, override)), key=str)
    assert errors == []


FREE_FORM = {"labels", "annotations", "resources", "podSecurityContext", "securityContext"}
"""Maps passed to Kubernetes as they are: documented as a whole, not key by key."""


def leaf_keys(values: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and key not in FREE_FORM:
            yield from leaf_keys(value, path + ".")
        else:
            yield path


def test_every_value_is_documented() -> None:
    docs = (REPO / "docs" / "helm.md").read_text()
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    missing = [key for key in leaf_keys(defaults) if f"`{key}`" not in docs]
    assert missing == [], "document these in docs/helm.md's values reference"


def test_the_dashboard_is_grafana_json() -> None:
    dashboard = json.loads((CHART / "files" / "dashboard.json").read_text())
    assert dashboard["uid"] == "timeout-budget-operator"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        assert all(t["expr"] for t in panel["targets"])
