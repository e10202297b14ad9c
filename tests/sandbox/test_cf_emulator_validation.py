"""Request bodies are judged by Cloudflare's schemas, with violations that name the field."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.cloudflare_emulator.validation import Validators, Violation

pytestmark = pytest.mark.unit

RULE: dict[str, Any] = {
    "ref": "tbo-api",
    "expression": '(http.host eq "api.example.com")',
    "action": "set_cache_settings",
    "action_parameters": {"cache": True, "read_timeout": 300},
}


@pytest.fixture(scope="module")
def validators() -> Validators:
    return Validators.load()


def pointers(found: list[Violation]) -> list[str]:
    return [v.pointer for v in found]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"value": 300}, []),
        ({"value": 1}, []),
        ({"value": 6000.5}, ["/value"]),
        ({"value": 0}, ["/value"]),
        ({"value": "300"}, ["/value"]),
        ({}, ["/"]),
        ({"id": "proxy_read_timeout", "value": 300}, ["/"]),  # today's body is {"value": n}
    ],
)
def test_zone_setting_patch_body(validators: Validators, body: Any, expected: list[str]) -> None:
    assert pointers(validators.zone_setting_edit("proxy_read_timeout", body)) == expected


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (RULE, []),
        ({**RULE, "id": "a" * 32, "version": "3", "last_updated": "2024-08-06T00:00:00Z"}, []),
        ({**RULE, "enabled": False, "description": "owned by tbo"}, []),
        (
            {**RULE, "action_parameters": {"read_timeout": 99}},
            ["/rules/0/action_parameters/read_timeout"],
        ),
        (
            {**RULE, "action_parameters": {"read_timeout": 6001}},
            ["/rules/0/action_parameters/read_timeout"],
        ),
        (
            {**RULE, "action_parameters": {"read_timeout": 300.5}},
            ["/rules/0/action_parameters/read_timeout"],
        ),
        ({**RULE, "action": "block"}, ["/rules/0/action"]),
        ({**RULE, "action": "not_an_action"}, ["/rules/0/action"]),
        ({**RULE, "expression": ""}, ["/rules/0/expression"]),
        ({**RULE, "ref": ""}, ["/rules/0/ref"]),
        ({**RULE, "id": "not-hex"}, ["/rules/0/id"]),
        ({k: v for k, v in RULE.items() if k != "expression"}, ["/rules/0"]),
    ],
)
def test_entrypoint_put_rules(validators: Validators, rule: Any, expected: list[str]) -> None:
    assert sorted(set(pointers(validators.entrypoint_put({"rules": [rule]})))) == expected


def test_entrypoint_put_needs_a_rules_list(validators: Validators) -> None:
    found = validators.entrypoint_put({"name": "default"})
    assert [str(v) for v in found] == ["/: 'rules' is a required property"]


def test_violation_messages_name_field_and_reason(validators: Validators) -> None:
    found = validators.entrypoint_put(
        {"rules": [{**RULE, "action_parameters": {"cache": "yes", "read_timeout": "300"}}]}
    )
    assert [str(v) for v in found] == [
        "/rules/0/action_parameters/cache: 'yes' is not of type 'boolean'",
        "/rules/0/action_parameters/read_timeout: '300' is not of type 'integer'",
    ]


@pytest.mark.parametrize(
    ("position", "valid"),
    [
        ({"index": 1}, True),
        ({"before": ""}, True),
        ({"after": "a" * 32}, True),
        ({"index": 0}, False),
    ],
)
def test_rule_create_position(validators: Validators, position: Any, valid: bool) -> None:
    assert (validators.rule_create({**RULE, "position": position}) == []) is valid


def test_rule_create_needs_an_action(validators: Validators) -> None:
    found = validators.rule_create({"expression": "true"})
    assert "/: 'action' is a required property" in [str(v) for v in found]


@pytest.mark.parametrize(
    ("body", "current_type", "expected"),
    [
        ({"proxied": False}, "A", []),  # PATCH is partial
        ({"proxied": False, "name": "api.example.com", "ttl": 1, "type": "A"}, "A", []),
        ({"proxied": True, "ttl": 3600, "type": "CNAME"}, "CNAME", []),
        ({"proxied": True, "content": "192.0.2.7"}, "A", []),
        ({"proxied": True, "content": "not-an-ip"}, "A", ["/content"]),
        ({"proxied": "no"}, "A", ["/proxied"]),
        ({"proxied": False, "ttl": 10}, "A", ["/ttl"]),
        ({"proxied": False, "type": "TXT"}, "TXT", ["/type"]),
        ({"ttl": 1}, "A", ["/"]),  # the operator's PATCH always says `proxied`
    ],
)
def test_dns_record_patch_body(
    validators: Validators, body: Any, current_type: str, expected: list[str]
) -> None:
    assert sorted(set(pointers(validators.dns_record_edit(body, current_type)))) == expected
