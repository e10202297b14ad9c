"""How the operator reaches Prometheus: URL, auth, TLS, timeouts and batching limits.

Production Prometheus usually sits behind an authenticating proxy (bearer token mounted
from a Secret) with a private CA; the sandbox's is plain HTTP on loopback. One small frozen
dataclass carries both, read from the environment the Helm chart sets
(``TBO_PROMETHEUS_*``). The token never appears in ``repr`` or in log lines.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from timeout_budget.model.errors import SettingsError
from timeout_budget.observe.promql.planning import (
    DEFAULT_MAX_BODY_QUERY_LENGTH,
    DEFAULT_MAX_QUERY_LENGTH,
)

ENV_PREFIX = "TBO_PROMETHEUS_"


@dataclass(frozen=True)
class PrometheusSettings:
    url: str
    bearer_token: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    """PEM bundle to verify Prometheus' certificate (a private CA)."""
    insecure_skip_verify: bool = False
    client_cert_file: str | None = None
    client_key_file: str | None = None
    timeout_seconds: float = 10.0
    """Per HTTP request; also sent as the query's server-side ``timeout``."""
    retries: int = 1
    """Extra attempts on connection errors and 502/503/504 (never on read timeouts)."""
    max_concurrency: int = 4
    """Queries in flight at once (each runs in a worker thread)."""
    max_query_length: int | None = None
    """Characters of one batched query (URL-encoded); ``None``: by ``method``
    (``DEFAULT_MAX_QUERY_LENGTH`` in a URL, ``DEFAULT_MAX_BODY_QUERY_LENGTH`` in a body)."""
    coverage_refresh_seconds: float = 300.0
    """Bucket layouts rarely change: re-read a route's ``le`` bounds at most this often."""
    method: str = "POST"
    """``POST``: the query in a form-encoded body (the Prometheus HTTP API's way around URL
    limits); ``GET``: in the URL, for a proxy that allows only GET."""
    tenant: str | None = None
    """Sent in ``tenant_header`` on every request (Mimir, Cortex, Thanos tenancy)."""
    tenant_header: str = "X-Scope-OrgID"
    headers: Mapping[str, str] = field(default_factory=dict, repr=False, hash=False)
    """Extra headers on every request (from a Secret: may hold credentials)."""
    basic_auth: tuple[str, str] | None = field(default=None, repr=False)
    partial_response: str = "deny"
    """``deny``: ask the backend for a whole answer or an error (Thanos
    ``partial_response=false``, VictoriaMetrics ``deny_partial_response=1``); ``allow``:
    take partial answers, which the operator then holds on (``PartialData``)."""
    evaluation_delay_seconds: float = 0.0
    """Evaluate this far in the past, for backends that hide recent samples
    (VictoriaMetrics' ``-search.latencyOffset``, 30 s by default)."""

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SettingsError(
                f"Prometheus URL {self.display_url!r} must be http(s)://host[:port]"
            )
        if self.insecure_skip_verify and self.ca_file:
            raise SettingsError("set either a CA file or insecure_skip_verify, not both")
        if (self.client_cert_file is None) != (self.client_key_file is None):
            raise SettingsError("a client certificate needs both cert and key files")
        if self.timeout_seconds <= 0 or self.max_concurrency < 1 or self.retries < 0:
            raise SettingsError("timeout must be > 0, concurrency >= 1 and retries >= 0")
        if self.method not in ("GET", "POST"):
            raise SettingsError(f"{ENV_PREFIX}METHOD must be GET or POST, not {self.method!r}")
        if self.partial_response not in ("deny", "allow"):
            raise SettingsError(
                f"{ENV_PREFIX}PARTIAL_RESPONSE must be deny or allow, not {self.partial_response!r}"
            )
        if not 0 <= self.evaluation_delay_seconds <= 600:
            raise SettingsError(f"{ENV_PREFIX}EVALUATION_DELAY_SECONDS must be between 0 and 600")
        if not _HEADER_NAME.match(self.tenant_header):
            raise SettingsError(
                f"{ENV_PREFIX}TENANT_HEADER must be an HTTP header name, not {self.tenant_header!r}"
            )
        if self.max_query_length is not None and self.max_query_length < 1:
            raise SettingsError(f"{ENV_PREFIX}MAX_QUERY_LENGTH must be a positive length")

    @property
    def query_length(self) -> int:
        """The longest batched query to send (``max_query_length``, or by ``method``)."""
        if self.max_query_length is not None:
            return self.max_query_length
        return DEFAULT_MAX_BODY_QUERY_LENGTH if self.method == "POST" else DEFAULT_MAX_QUERY_LENGTH

    @property
    def request_headers(self) -> dict[str, str]:
        """Every header sent with a query: extra ones, the tenant, the bearer token."""
        found = dict(self.headers)
        if self.tenant:
            found[self.tenant_header] = self.tenant
        if self.bearer_token:
            found["Authorization"] = f"Bearer {self.bearer_token}"
        return found

    @property
    def query_params(self) -> dict[str, str]:
        """Form fields asking the backend for whole answers only (``partial_response``);
        Prometheus ignores fields it does not know."""
        if self.partial_response == "allow":
            return {}
        return {"partial_response": "false", "deny_partial_response": "1"}

    @property
    def base_url(self) -> str:
        return self.url.rstrip("/")

    @property
    def display_url(self) -> str:
        """The URL without any ``user:password@`` part, safe for messages."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))

    @property
    def secrets(self) -> tuple[str, ...]:
        """Strings that must never reach a message (token, URL password)."""
        found = [s for s in (self.bearer_token, urlsplit(self.url).password) if s]
        if self.basic_auth is not None:
            found.append(self.basic_auth[1])
        found.extend(v for v in self.headers.values() if len(v) >= 4)
        return tuple(found)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PrometheusSettings:
        """``TBO_PROMETHEUS_URL`` (required), ``_BEARER_TOKEN_FILE`` (a mounted Secret key) or
        ``_BEARER_TOKEN``, ``_CA_FILE``, ``_INSECURE_SKIP_VERIFY``, ``_CLIENT_CERT_FILE``,
        ``_CLIENT_KEY_FILE``, ``_TIMEOUT_SECONDS``, ``_RETRIES``, ``_MAX_CONCURRENCY``,
        ``_MAX_QUERY_LENGTH``, ``_COVERAGE_REFRESH_SECONDS``, ``_METHOD``, ``_TENANT``,
        ``_TENANT_HEADER``, ``_HEADERS_FILE`` (``Name: value`` lines, a mounted Secret),
        ``_BASIC_AUTH_USERNAME`` with ``_BASIC_AUTH_PASSWORD_FILE``, ``_PARTIAL_RESPONSE``,
        ``_EVALUATION_DELAY_SECONDS``."""
        e = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = e.get(ENV_PREFIX + name)
            return value if value else None

        url = get("URL")
        if url is None:
            raise SettingsError(f"{ENV_PREFIX}URL is not set")
        token = get("BEARER_TOKEN")
        token_file = get("BEARER_TOKEN_FILE")
        if token_file is not None:
            token = _read_file("BEARER_TOKEN_FILE", token_file).strip()
        headers_file = get("HEADERS_FILE")
        headers = _headers(_read_file("HEADERS_FILE", headers_file)) if headers_file else {}
        user, password_file = get("BASIC_AUTH_USERNAME"), get("BASIC_AUTH_PASSWORD_FILE")
        if (user is None) != (password_file is None):
            raise SettingsError(
                f"basic auth needs both {ENV_PREFIX}BASIC_AUTH_USERNAME and "
                f"{ENV_PREFIX}BASIC_AUTH_PASSWORD_FILE"
            )
        basic = (
            (user, _read_file("BASIC_AUTH_PASSWORD_FILE", password_file).strip())
            if user is not None and password_file is not None
            else None
        )
        defaults = cls(url=url)
        insecure = (get("INSECURE_SKIP_VERIFY") or "").lower() in ("1", "true", "yes")

        def number(name: str, kind: Callable[[str], Any], default: float | None) -> Any:
            raw = get(name)
            try:
                return kind(raw) if raw is not None else default
            except ValueError:
                raise SettingsError(f"{ENV_PREFIX}{name} must be a number, not {raw!r}") from None

        return cls(
            url=url,
            bearer_token=token,
            ca_file=get("CA_FILE"),
            insecure_skip_verify=insecure,
            client_cert_file=get("CLIENT_CERT_FILE"),
            client_key_file=get("CLIENT_KEY_FILE"),
            timeout_seconds=number("TIMEOUT_SECONDS", float, defaults.timeout_seconds),
            retries=number("RETRIES", int, defaults.retries),
            max_concurrency=number("MAX_CONCURRENCY", int, defaults.max_concurrency),
            max_query_length=number("MAX_QUERY_LENGTH", int, None),
            coverage_refresh_seconds=number(
                "COVERAGE_REFRESH_SECONDS", float, defaults.coverage_refresh_seconds
            ),
            method=(get("METHOD") or defaults.method).upper(),
            tenant=get("TENANT"),
            tenant_header=get("TENANT_HEADER") or defaults.tenant_header,
            headers=headers,
            basic_auth=basic,
            partial_response=(get("PARTIAL_RESPONSE") or defaults.partial_response).lower(),
            evaluation_delay_seconds=number(
                "EVALUATION_DELAY_SECONDS", float, defaults.evaluation_delay_seconds
            ),
        )


_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")


def _read_file(name: str, path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:  # the path and the reason, never the content
        raise SettingsError(
            f"{ENV_PREFIX}{name} {path!r} cannot be read: {exc.strerror or type(exc).__name__}"
        ) from None


def _headers(text: str) -> dict[str, str]:
    """``Name: value`` per line (blank lines and ``#`` comments skipped); the values may be
    credentials, so a bad line is named by its number only."""
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition(":")
        name = name.strip()
        if not sep or not _HEADER_NAME.match(name) or not value.strip():
            raise SettingsError(
                f"{ENV_PREFIX}HEADERS_FILE line {number} is not 'Name: value' with an HTTP "
                "header name"
            )
        found[name] = value.strip()
    return found
