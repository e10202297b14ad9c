"""Cache Rules that someone other than the operator wrote, and rule bodies for the emulator's
own tests."""

from __future__ import annotations

from typing import Any


def user_rule(expression: str, rule_id: str, **params: Any) -> dict[str, Any]:
    """An enabled ``set_cache_settings`` rule ``user_rule`` written "by hand", with
    ``params`` as its action parameters."""
    return {
        "id": rule_id,
        "ref": "user_rule",
        "description": "by hand",
        "expression": expression,
        "action": "set_cache_settings",
        "action_parameters": params,
        "enabled": True,
    }


def cache_settings_rule(
    ref: str, expression: str, read_timeout: int | None = None, **fields: Any
) -> dict[str, Any]:
    """A ``set_cache_settings`` rule ``ref`` caching what ``expression`` matches, with
    ``read_timeout`` when given; ``fields`` (a description) go after the ref."""
    params: dict[str, Any] = {"cache": True}
    if read_timeout is not None:
        params["read_timeout"] = read_timeout
    return {
        "ref": ref,
        **fields,
        "expression": expression,
        "action": "set_cache_settings",
        "action_parameters": params,
    }
