"""Rules a spec must keep, each written once for the two places that enforce it.

The API server checks a resource against the CRD's ``openAPIV3Schema``; the operator parses
the same body with the models in ``spec``. A rule only the model has lets the API server
store a resource the operator can only report as ``InvalidSpec``; a rule only the CRD has
lets the operator act on a body nobody checked (a unit test, a dry run, a CRD edited by
hand). So each rule here carries both forms: the check the model runs, and the CEL rule and
message the CRD states (put into the model's JSON schema as ``x-kubernetes-validations``).
``tests/unit/test_crd_model_agreement.py`` walks the model's JSON schema and the CRD side by
side and lists every bound, pattern or rule found on one side only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, SchemaValidator, core_schema

VALIDATIONS = "x-kubernetes-validations"
"""The CRD keyword holding CEL rules; the model's JSON schema uses the same one."""

M = TypeVar("M")


def refusal(message: str) -> PydanticCustomError:
    """A validation error whose text is ``message`` as it is (no "Value error, " in front),
    so the operator's ``InvalidSpec`` condition reads as the API server's refusal does."""
    return PydanticCustomError("spec_rule", "{message}", {"message": message})


def with_rule(schema: dict[str, Any], rule: str, message: str) -> dict[str, Any]:
    """``schema`` with one more CEL rule, in the shape the CRD writes it."""
    schema.setdefault(VALIDATIONS, []).append({"rule": rule, "message": message})
    return schema


@dataclass(frozen=True)
class Text:
    """A rule for one string, used as ``Annotated[str, Field(max_length=...), Text(...)]``.

    The string matches ``pattern``, an anchored regular expression in the syntax RE2 (the
    API server's CEL) and pydantic-core's Rust engine (used here) read alike: both run in
    linear time and both take ``$`` as the end of the text, so "name\\n" is refused on both
    sides (Python's ``re`` would accept it). Optionally it does not start with
    ``not_prefix``, does not end with ``not_suffix``, and has at most ``prefix_max_length``
    characters before its '/' (the DNS prefix of a label key).
    """

    pattern: str
    message: str
    not_prefix: str = ""
    not_suffix: str = ""
    prefix_max_length: int | None = None
    _matcher: SchemaValidator = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        matcher = SchemaValidator(core_schema.str_schema(pattern=self.pattern))
        object.__setattr__(self, "_matcher", matcher)

    def holds(self, value: str) -> bool:
        return (
            self._matcher.isinstance_python(value)
            and not (self.not_prefix and value.startswith(self.not_prefix))
            and not (self.not_suffix and value.endswith(self.not_suffix))
            and (self.prefix_max_length is None or value.find("/") <= self.prefix_max_length)
        )

    def cel(self, var: str = "self") -> str:
        """The CEL rule stating the same check on the string named ``var``: the pattern is
        written inside a single-quoted CEL string, whose escapes double the backslashes;
        ``indexOf`` is -1 without a '/', as ``str.find`` is."""
        parts = [f"{var}.matches('{self.pattern.replace(chr(92), chr(92) * 2)}')"]
        if self.not_prefix:
            parts.append(f"!{var}.startsWith('{self.not_prefix}')")
        if self.not_suffix:
            parts.append(f"!{var}.endsWith('{self.not_suffix}')")
        if self.prefix_max_length is not None:
            parts.append(f"{var}.indexOf('/') <= {self.prefix_max_length}")
        return " && ".join(parts)

    def check(self, value: str) -> str:
        if not self.holds(value):
            raise refusal(self.message)
        return value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return with_rule(handler(schema), self.cel(), self.message)


@dataclass(frozen=True)
class Keys:
    """A ``Text`` rule for every key of a map. A CRD can constrain map keys only through
    CEL (``self.all(k, ...)``); its maxProperties keeps the rule within the cost budget."""

    rule: Text

    def check(self, value: Mapping[str, Any]) -> Mapping[str, Any]:
        for key in value:
            self.rule.check(key)
        return value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return with_rule(handler(schema), f"self.all(k, {self.rule.cel('k')})", self.rule.message)


@dataclass(frozen=True)
class Check(Generic[M]):
    """A rule the CRD states in CEL, with its message, and the same test in Python, written
    side by side: on an object across its fields (listed in a model's ``checks``), or on one
    field (in ``Annotated``). The two forms cannot be derived from each other, so each check
    has a counter-example that the model must refuse (``tests/unit/test_spec_model.py``)
    and the API server too (``tests/integration/test_crds.py``)."""

    cel: str
    message: str
    holds: Callable[[M], bool]

    def check(self, value: M) -> M:
        if not self.holds(value):
            raise refusal(self.message)
        return value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return with_rule(handler(schema), self.cel, self.message)
