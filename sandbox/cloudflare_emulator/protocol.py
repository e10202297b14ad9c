"""Cloudflare's v4 wire protocol, as the emulator speaks it.

Every answer of the real API, success or failure, is the same envelope
``{"success", "errors", "messages", "result"}`` (plus ``result_info`` on lists), and a
failure carries numeric error codes that clients match on. This module keeps that shape
and the codes in one place, so the handlers only say *which* error happened.

The codes below are the ones Cloudflare answers with, as seen in public client code,
issue threads and the OpenAPI extracts; where no public trace was found the choice is
marked as the emulator's own.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

JsonObject = dict[str, Any]


class Code(enum.IntEnum):
    """Cloudflare API error codes the emulator answers with."""

    # "Authentication error": wrong, missing or insufficient API token (HTTP 403/401).
    AUTHENTICATION_ERROR = 10000
    # "Invalid request headers", chained with 6103 when X-Auth-Key is malformed.
    INVALID_REQUEST_HEADERS = 6003
    INVALID_AUTH_KEY_FORMAT = 6103
    # Chained under 6003 for a malformed API token: "Invalid format for Authorization header".
    INVALID_AUTH_HEADER = 6111
    # "Malformed JSON in request body".
    MALFORMED_JSON = 6007
    # "No route for that URI"; 7001 for a known route with the wrong method.
    NO_ROUTE = 7000
    METHOD_NOT_ALLOWED = 7001
    # "Could not route to /zones/..., perhaps your object identifier is invalid?"
    UNKNOWN_OBJECT = 7003
    # HTTP 429 past the per-user limit (EDGE-FACTS: code 10100).
    RATE_LIMITED = 10100
    # Emulator's choice for an injected 5xx; Cloudflare's own 5xx bodies vary.
    INTERNAL_ERROR = 10001
    # Zone settings: unknown name, invalid value, not editable on this plan.
    UNKNOWN_ZONE_SETTING = 1006
    INVALID_ZONE_SETTING_VALUE = 1007
    ZONE_SETTING_NOT_EDITABLE = 1057
    # Rulesets: "could not find entrypoint ruleset in the <phase> phase" (HTTP 404) and
    # request validation errors, which carry a JSON pointer in `source.pointer`.
    RULESET_NOT_FOUND = 10003
    RULESET_VALIDATION = 20217
    # DNS: "DNS Validation Error", "This record type cannot be proxied.",
    # "Record does not exist." (HTTP 404).
    DNS_VALIDATION = 1004
    DNS_NOT_PROXIABLE = 9004
    DNS_RECORD_NOT_FOUND = 81044


@dataclass(frozen=True)
class ErrorItem:
    """One entry of the envelope's ``errors`` list."""

    code: int
    message: str
    pointer: str | None = None
    chain: tuple[ErrorItem, ...] = ()

    def to_json(self) -> JsonObject:
        item: JsonObject = {"code": int(self.code), "message": self.message}
        if self.pointer is not None:
            item["source"] = {"pointer": self.pointer}
        if self.chain:
            item["error_chain"] = [c.to_json() for c in self.chain]
        return item


class ApiError(Exception):
    """A failure the emulated API answers with: an HTTP status and Cloudflare errors."""

    def __init__(
        self,
        status: int,
        errors: Sequence[ErrorItem],
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__("; ".join(f"{e.code}: {e.message}" for e in errors))
        self.status = status
        self.errors = tuple(errors)
        self.headers = dict(headers or {})

    @classmethod
    def one(
        cls,
        status: int,
        code: int,
        message: str,
        *,
        pointer: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ApiError:
        return cls(status, [ErrorItem(code, message, pointer)], headers)


@dataclass(frozen=True)
class Request:
    """An API request after routing: the path is relative to ``/client/v4``."""

    method: str
    path: str
    query: Mapping[str, Sequence[str]]
    body: Any
    params: Mapping[str, str] = field(default_factory=dict)

    def query_value(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    def flag(self, name: str) -> bool:
        return (self.query_value(name) or "").lower() in ("true", "1")


@dataclass(frozen=True)
class Reply:
    """What the server writes back: status, JSON body (None: no body) and headers."""

    status: int
    body: JsonObject | None
    headers: Mapping[str, str] = field(default_factory=dict)


def ok(result: Any, result_info: JsonObject | None = None) -> Reply:
    body: JsonObject = {"success": True, "errors": [], "messages": [], "result": result}
    if result_info is not None:
        body["result_info"] = result_info
    return Reply(200, body)


def failure(error: ApiError) -> Reply:
    body: JsonObject = {
        "success": False,
        "errors": [e.to_json() for e in error.errors],
        "messages": [],
        "result": None,
    }
    return Reply(error.status, body, error.headers)
