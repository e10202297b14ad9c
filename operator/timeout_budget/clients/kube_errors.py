"""The Kubernetes API's errors, as the operator's own exceptions (``clients.kube``):

KubeError
├── NotFound        the object does not exist (a user's reference to fix)
├── Conflict        409: someone else wrote first; retried by the caller
└── KubeUnavailable connection errors and 5xx; retried next cycle
"""

from __future__ import annotations

import json

from kubernetes.client.exceptions import ApiException


class KubeError(RuntimeError):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotFound(KubeError):
    pass


class Conflict(KubeError):
    pass


class KubeUnavailable(KubeError):
    pass


def translate(exc: Exception, what: str) -> KubeError:
    """The client library's exception as one of the operator's."""
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        reason = exc.reason or "error"
        if status == 404:
            return NotFound(f"{what}: not found", status)
        if status == 409:
            return Conflict(f"{what}: conflict ({reason})", status)
        if status >= 500 or status == 0:
            return KubeUnavailable(f"{what}: API server error {status} {reason}", status)
        said = _status_message(exc.body)  # e.g. which field the API server found invalid
        return KubeError(f"{what}: {status} {reason}" + (f": {said}" if said else ""), status)
    return KubeUnavailable(f"{what}: {type(exc).__name__}: {exc}")


def _status_message(body: object) -> str:
    """The ``message`` of the API server's ``Status`` answer, if there is one."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if not isinstance(body, str):
        return ""
    try:
        message = json.loads(body).get("message")
    except (ValueError, AttributeError):
        return ""
    return message[:500] if isinstance(message, str) else ""
