"""Reading a CloudflareZone's API token from its Secret, and saying clearly when it cannot.

A missing Secret or key is the user's to fix, and the most common first mistake: it must
end up as a readable condition on the CloudflareZone, never as a crash or a retry loop
with a stack trace. The value itself is returned to the caller and to no one else: no log
line, no message, no exception carries it (the Secret is read raw, not through the
client's models, and errors are rebuilt from the HTTP status only).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from typing import Any, NoReturn, cast

import kubernetes
from kubernetes.client.exceptions import ApiException

from timeout_budget.clients.kube_paths import SECRETS, KubePaths


class SecretProblem(Exception):
    """The token cannot be read; ``reason`` is a condition reason, the message says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class SecretReader:
    def __init__(self, api_client: kubernetes.client.ApiClient) -> None:
        self._paths = KubePaths(api_client)

    async def read(self, namespace: str, name: str, key: str) -> str:
        where = f"Secret {namespace}/{name}"
        try:
            raw = await asyncio.to_thread(self._paths.get, SECRETS, namespace, name)
        except ApiException as exc:
            raise _problem(where, int(exc.status or 0)) from None
        except Exception as exc:  # connection errors: the next tick tries again
            raise SecretProblem(
                "SecretUnreadable", f"{where} could not be read: {type(exc).__name__}"
            ) from None
        return _value(where, key, json.loads(cast(Any, raw).data))  # raw HTTP response


def _problem(where: str, status: int) -> SecretProblem:
    if status == 404:
        return SecretProblem(
            "SecretNotFound",
            f"{where} not found: create it with the Cloudflare API token "
            "(spec.apiTokenSecretRef names it)",
        )
    if status in (401, 403):
        return SecretProblem(
            "SecretForbidden", f"the operator may not read {where} (RBAC: get secrets)"
        )
    return SecretProblem("SecretUnreadable", f"{where} could not be read (HTTP {status})")


def _value(where: str, key: str, secret: dict[str, Any]) -> str:
    data = secret.get("data") or {}
    encoded = data.get(key) if isinstance(data, dict) else None
    if not isinstance(encoded, str):
        _missing(where, key, ", ".join(sorted(data)) if isinstance(data, dict) and data else "none")
    try:
        token = base64.b64decode(encoded, validate=True).decode().strip()
    except (binascii.Error, UnicodeDecodeError):
        raise SecretProblem(
            "SecretKeyInvalid", f"{where} key {key} is not valid base64 UTF-8 text"
        ) from None
    if not token:
        raise SecretProblem("SecretKeyMissing", f"{where} key {key} is empty")
    return token


def _missing(where: str, key: str, keys: str) -> NoReturn:
    raise SecretProblem(
        "SecretKeyMissing",
        f"{where} has no key {key} (keys: {keys}); set spec.apiTokenSecretRef.key",
    )
