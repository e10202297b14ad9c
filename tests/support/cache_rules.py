"""Cache Rules that someone other than the operator wrote."""

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
