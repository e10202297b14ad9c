"""How the operator reaches Prometheus: URL, auth, TLS, timeouts and batching limits.

Production Prometheus usually sits behind an authenticating proxy (bearer token mounted
from a Secret) with a private CA; the sandbox's is plain HTTP on loopback. One small frozen
dataclass carries both, read from the environment the Helm chart sets
(``TBO_PROMETHEUS_*``). The token never appears in ``repr`` or in log lines.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from timeout_budget.model.errors import SettingsError
from timeout_budget.observe.promql.planning import DEFAULT_MAX_QUERY_LENGTH

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
    max_query_length: int = DEFAULT_MAX_QUERY_LENGTH
    coverage_refresh_seconds: float = 300.0
    """Bucket layouts rarely change: re-read a route's ``le`` bounds at most this often."""

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
        return tuple(found)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PrometheusSettings:
        """``TBO_PROMETHEUS_URL`` (required), ``_BEARER_TOKEN_FILE`` (a mounted Secret key) or
        ``_BEARER_TOKEN``, ``_CA_FILE``, ``_INSECURE_SKIP_VERIFY``, ``_CLIENT_CERT_FILE``,
        ``_CLIENT_KEY_FILE``, ``_TIMEOUT_SECONDS``, ``_RETRIES``, ``_MAX_CONCURRENCY``,
        ``_MAX_QUERY_LENGTH``, ``_COVERAGE_REFRESH_SECONDS``."""
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
            try:
                token = Path(token_file).read_text().strip()
            except OSError as exc:  # the path and the reason, never the content
                raise SettingsError(
                    f"{ENV_PREFIX}BEARER_TOKEN_FILE {token_file!r} cannot be read: "
                    f"{exc.strerror or type(exc).__name__}"
                ) from None
        defaults = cls(url=url)
        insecure = (get("INSECURE_SKIP_VERIFY") or "").lower() in ("1", "true", "yes")

        def number(name: str, kind: Callable[[str], Any], default: float) -> Any:
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
            max_query_length=number("MAX_QUERY_LENGTH", int, defaults.max_query_length),
            coverage_refresh_seconds=number(
                "COVERAGE_REFRESH_SECONDS", float, defaults.coverage_refresh_seconds
            ),
        )
