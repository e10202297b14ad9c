"""The CRDs and the spec models agree: every bound, pattern, enum, default and CEL rule of a
spec field is stated alike in the CRD's ``openAPIV3Schema`` (what the API server enforces)
and in the model's JSON schema (what the operator enforces; ``rules.Text`` and
``rules.Check`` put their CEL rules there). One walk over both trees lists every
disagreement, so a bound added on one side only fails here, saying where and what."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pydantic
import pytest
import yaml

from tests.support.kube import CRDS
from timeout_budget.model import spec

pytestmark = pytest.mark.unit

PAIRS: list[tuple[str, type[pydantic.BaseModel]]] = [
    ("timeoutbudgets.timeoutbudget.io.yaml", spec.TimeoutBudgetSpec),
    ("cloudflarezones.timeoutbudget.io.yaml", spec.CloudflareZoneSpec),
]

COMPARED = (
    "type",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "enum",
    "default",
    "required",
    "x-kubernetes-validations",
)
"""Every keyword that refuses a value or supplies one; descriptions and titles differ."""

Bounds = dict[str, dict[str, Any]]
"""Field path (``spec.reroute.longRunningSelector{}`` for map values, ``[]`` for items) to
its compared keywords."""


def crd_spec(filename: str) -> dict[str, Any]:
    crd = yaml.safe_load((CRDS / filename).read_text())
    (version,) = crd["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


def model_spec(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with every ``$ref`` replaced by its definition."""
    schema = model.model_json_schema(by_alias=True)
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def crd_keywords(node: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI v3.0 writes an exclusive bound as ``minimum`` plus ``exclusiveMinimum:
    true``; JSON Schema (the model's) as ``exclusiveMinimum: <bound>``: the latter here."""
    out = dict(node)
    for side in ("Minimum", "Maximum"):
        if out.pop(f"exclusive{side}", False):
            out[f"exclusive{side}"] = out.pop(side.lower())
    return out


def model_keywords(node: dict[str, Any]) -> dict[str, Any]:
    """An optional field is ``anyOf: [<schema>, {type: null}]`` with a null default: the
    schema itself. A default of nothing (None, an empty list or map) is what leaving the
    field out means in both places, so it is no default."""
    out = dict(node)
    branches = [b for b in out.pop("anyOf", []) if b != {"type": "null"}]
    if len(branches) == 1:
        out = {**branches[0], **out}
    if out.get("default", 0) in (None, [], {}):
        del out["default"]
    return out


def bounds(node: dict[str, Any], path: str, keywords: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    node = keywords(node)
    found = {k: node[k] for k in COMPARED if k in node}
    if isinstance(found.get("default"), dict):  # an object's default is its fields' defaults
        del found["default"]
    if "required" in found:
        found["required"] = sorted(found["required"])
    rules = found.pop("x-kubernetes-validations", [])
    found["x-kubernetes-validations"] = {(r["rule"], r.get("message")) for r in rules}
    yield path, found
    for name, child in node.get("properties", {}).items():
        yield from bounds(child, f"{path}.{name}", keywords)
    if isinstance(node.get("items"), dict):
        yield from bounds(node["items"], f"{path}[]", keywords)
    if isinstance(node.get("additionalProperties"), dict):
        yield from bounds(node["additionalProperties"], f"{path}{{}}", keywords)


def disagreements(crd: dict[str, Any], model: dict[str, Any]) -> list[str]:
    ours: Bounds = dict(bounds(crd, "spec", crd_keywords))
    theirs: Bounds = dict(bounds(model, "spec", model_keywords))
    found = [f"{p}: in the CRD only" for p in ours if p not in theirs]
    found += [f"{p}: in the model only" for p in theirs if p not in ours]
    for path in (p for p in ours if p in theirs):
        for key in COMPARED:
            a, b = ours[path].get(key), theirs[path].get(key)
            if key == "x-kubernetes-validations":
                found += [f"{path}: rule in the CRD only: {r} ({m})" for r, m in sorted(a - b)]
                found += [f"{path}: rule in the model only: {r} ({m})" for r, m in sorted(b - a)]
            elif a != b:
                found.append(f"{path}: {key}: CRD {a!r}, model {b!r}")
    return found


@pytest.mark.parametrize(("filename", "model"), PAIRS, ids=[m.__name__ for _, m in PAIRS])
def test_the_crd_and_the_model_state_the_same_bounds(
    filename: str, model: type[pydantic.BaseModel]
) -> None:
    found = disagreements(crd_spec(filename), model_spec(model))
    assert not found, "CRD and model disagree:\n" + "\n".join(found)


def test_the_walk_sees_every_kind_of_bound() -> None:
    """Not a vacuous pass: the walk reaches numbers, lengths, map keys and values, items,
    and cross-field rules, on both sides."""
    crd = dict(bounds(crd_spec(PAIRS[0][0]), "spec", crd_keywords))
    model = dict(bounds(model_spec(spec.TimeoutBudgetSpec), "spec", model_keywords))
    for side in (crd, model):
        assert side["spec.budget.recoverRatio"]["minimum"] == 0.05
        assert side["spec.latency.quantile"]["exclusiveMaximum"] == 1
        assert side["spec.edge.zoneRef.name"]["maxLength"] == 253
        assert side["spec.latency.matchers[].label"]["maxLength"] == 128
        for path, rules in [
            ("spec.reroute.longRunningSelector", 1),  # its keys
            ("spec.reroute.longRunningSelector{}", 1),  # its values
            ("spec.budget", 2),
            ("spec", 2),
            ("spec.reroute.httpRoute", 2),
        ]:
            assert len(side[path]["x-kubernetes-validations"]) == rules, path
    assert len(crd) == len(model) > 40


@pytest.mark.parametrize(
    ("path", "change", "listed"),
    [
        (
            ("properties", "budget", "properties", "recoverRatio"),
            {"minimum": 0},
            "spec.budget.recoverRatio: minimum: CRD 0, model 0.05",
        ),
        (
            ("properties", "edge", "properties", "zoneRef", "properties", "name"),
            {"x-kubernetes-validations": []},
            "spec.edge.zoneRef.name: rule in the model only: self.matches(",
        ),
        (
            ("properties", "reroute", "properties", "longRunningSelector"),
            {"maxProperties": 17},
            "spec.reroute.longRunningSelector: maxProperties: CRD 17, model 16",
        ),
        (
            ("properties", "origin", "properties"),
            {"surplus": {"type": "string"}},
            "spec.origin.surplus: in the CRD only",
        ),
    ],
)
def test_a_disagreement_is_listed(
    path: tuple[str, ...], change: dict[str, Any], listed: str
) -> None:
    crd = copy.deepcopy(crd_spec(PAIRS[0][0]))
    node = crd
    for key in path:
        node = node[key]
    node.update(change)
    found = disagreements(crd, model_spec(spec.TimeoutBudgetSpec))
    assert [f for f in found if f.startswith(listed)], found
