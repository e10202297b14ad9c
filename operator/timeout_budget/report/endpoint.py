"""The ``/metrics`` endpoint: where it listens (``MetricsSettings``, from ``TBO_METRICS_*``)
and serving the process registry once per process (``serve``)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.exposition import start_http_server

from timeout_budget.model.errors import SettingsError

log = logging.getLogger("timeout_budget.metrics")

PORT_ENV = "TBO_METRICS_PORT"
ADDRESS_ENV = "TBO_METRICS_ADDRESS"
DEFAULT_PORT = 9090
DEFAULT_ADDRESS = "0.0.0.0"


@dataclass(frozen=True)
class MetricsSettings:
    port: int = DEFAULT_PORT
    """0 turns the endpoint off."""
    address: str = DEFAULT_ADDRESS

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MetricsSettings:
        env = os.environ if env is None else env
        raw = env.get(PORT_ENV) or str(DEFAULT_PORT)
        try:
            port = int(raw)
        except ValueError:
            raise SettingsError(f"{PORT_ENV} must be a port number, not {raw!r}") from None
        if not 0 <= port <= 65535:
            raise SettingsError(f"{PORT_ENV} must be between 0 (off) and 65535, not {port}")
        return cls(port=port, address=env.get(ADDRESS_ENV) or DEFAULT_ADDRESS)


class _Server(Protocol):
    def shutdown(self) -> None: ...


_server: _Server | None = None
_server_lock = threading.Lock()


def serve(settings: MetricsSettings | None = None) -> bool:
    """Serve ``/metrics`` (default registry) once per process; False when turned off."""
    global _server
    settings = MetricsSettings.from_env() if settings is None else settings
    if settings.port == 0:
        log.info("metrics endpoint off (%s=0)", PORT_ENV)
        return False
    with _server_lock:
        if _server is None:
            server, _thread = start_http_server(settings.port, addr=settings.address)
            _server = server
            log.info("metrics served on http://%s:%d/metrics", settings.address, settings.port)
    return True
