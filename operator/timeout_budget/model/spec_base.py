"""What every spec model is built from: the Kubernetes and Prometheus name patterns, the
object-name and fraction rules, and the base model that keeps its cross-field checks (in
the JSON schema, as the CRD states them, and on every parse)."""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

from timeout_budget.model.rules import Check, Text, with_rule

DNS_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
OBJECT_NAME = rf"^{DNS_LABEL}(\.{DNS_LABEL})*$"
"""A Kubernetes object name (DNS-1123 subdomain, at most 253 characters with maxLength),
as the API server checks the names of Deployments, Secrets and custom resources."""
HOSTNAME = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)+$"
LABEL_KEY = rf"^({DNS_LABEL}(\.{DNS_LABEL})*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{{0,61}}[A-Za-z0-9])?$"
"""A Kubernetes label key: an optional DNS prefix (at most 253 characters, checked apart)
and '/', then a name of at most 63 characters."""
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
"""A Kubernetes label value (at most 63 characters with maxLength; may be empty)."""
PROMETHEUS_LABEL = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
PROMETHEUS_METRIC = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"


def object_name_rule(field: str, what: str) -> Text:
    """The rule of an object name field: what the API server would refuse as the name of
    ``what`` (empty, a path, control characters) can never name one, so it is refused."""
    return Text(
        OBJECT_NAME,
        f"{field} must be a Kubernetes object name, the name of {what} in the same namespace "
        "(lowercase letters, digits, '-' and '.', starting and ending with a letter or "
        "digit; at most 253 characters)",
    )


def fraction_rule(field: str, low: float, high: float) -> Check[float]:
    """A ratio's bounds once more in CEL: the API server checks a whole number against a
    ``minimum`` cast to a whole number, so 0 passed ``minimum: 0.05`` (and then the model
    refused it as ``InvalidSpec``); the rule refuses it at the API server, saying why."""
    return Check(
        f"self >= {low} && self <= {float(high)}",
        f"{field} must be between {low} and {high} (a fraction of the budget)",
        lambda ratio: low <= ratio <= high,
    )


def _checks_in_schema(schema: JsonDict, cls: type[Any]) -> None:
    """The model's JSON schema states its cross-field checks as the CRD does."""
    for check in getattr(cls, "checks", ()):
        with_rule(schema, check.cel, check.message)


class SpecModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="ignore",
        json_schema_extra=_checks_in_schema,
    )
    checks: ClassVar[tuple[Check[Any], ...]] = ()
    """Rules across this object's fields (``rules.Check``), in the CRD on the same object."""

    @model_validator(mode="after")
    def _keep_checks(self) -> Self:
        for check in self.checks:
            check.check(self)
        return self
