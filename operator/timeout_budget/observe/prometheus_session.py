"""Reaching Prometheus: one pooled HTTP session behind ``PrometheusConnect``.

The observer runs its queries in worker threads through one ``requests`` session: the
settings' TLS and bearer token, a short retry policy (refused connections and gateway
errors, never a read timeout) and a connection pool as large as the query concurrency.
``PromClient`` is the part of the client the observer uses, so a fake can stand in.
"""

from __future__ import annotations

from typing import Any, Protocol

import requests
from prometheus_api_client.prometheus_connect import PrometheusConnect
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from timeout_budget.observe.settings import PrometheusSettings

RETRY_STATUSES = (502, 503, 504)


class PromClient(Protocol):
    """The part of ``PrometheusConnect`` the observer uses (a fake can stand in for tests)."""

    def custom_query(self, query: str, params: dict[Any, Any] = ...) -> Any: ...

    def close(self) -> None: ...


def connect(settings: PrometheusSettings) -> tuple[PromClient, requests.Session]:
    """A ``PrometheusConnect`` for ``settings``, and the session it sends through."""
    session = requests.Session()
    session.verify = settings.ca_file or not settings.insecure_skip_verify
    if settings.client_cert_file and settings.client_key_file:
        session.cert = (settings.client_cert_file, settings.client_key_file)
    # Retry refused connections and gateway errors once, quickly; never a read timeout
    # (the query already took timeout_seconds). raise_on_status=False keeps the last
    # response, so the error body reaches the message.
    retry = Retry(
        total=settings.retries,
        connect=settings.retries,
        read=0,
        status=settings.retries,
        other=0,
        backoff_factor=0.2,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "POST"}),
        raise_on_status=False,
    )
    headers = {"Authorization": f"Bearer {settings.bearer_token}"} if settings.bearer_token else {}
    client = PrometheusConnect(
        url=settings.base_url,
        headers=headers,
        session=session,
        retry=retry,
        # requests takes float seconds; the library annotates int, narrower than it uses.
        timeout=settings.timeout_seconds,  # type: ignore[arg-type]
    )
    # Replace the adapter PrometheusConnect mounted: same retry, a pool as large as the
    # concurrency so worker threads reuse connections instead of opening new ones.
    pool = max(10, settings.max_concurrency)
    session.mount(
        settings.base_url,
        HTTPAdapter(max_retries=retry, pool_connections=1, pool_maxsize=pool),
    )
    return client, session
