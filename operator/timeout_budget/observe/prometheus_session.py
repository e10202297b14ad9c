"""Reaching Prometheus: one pooled HTTP session behind ``PrometheusConnect``.

The observer runs its queries in worker threads through one ``requests`` session: the
settings' TLS, auth and headers (bearer token, tenant, extra headers, basic auth), a short
retry policy (refused connections and gateway errors, never a read timeout) and a
connection pool as large as the query concurrency.

prometheus-api-client stays the client (its session carries all of that), but its
``custom_query`` puts the query in the URL even with ``method="POST"`` and returns only
``data.result``, dropping the ``warnings`` and ``isPartial`` that say an answer is partial.
``FormQueries.query`` sends the query as a form-encoded body through the same session (the
Prometheus HTTP API's own answer to URL limits) and returns the whole answer. Errors are
raised as the library raises them, so ``query_failures`` reads them alike.

``PromClient`` is the part of the client the observer uses, so a fake can stand in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import requests
from prometheus_api_client.exceptions import PrometheusApiClientException
from prometheus_api_client.prometheus_connect import PrometheusConnect
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from timeout_budget.observe.promql.answers import Answer, parse_answer
from timeout_budget.observe.settings import PrometheusSettings

RETRY_STATUSES = (502, 503, 504)


class PromClient(Protocol):
    """The part of the client the observer uses (a fake can stand in for tests)."""

    def query(self, promql: str, params: Mapping[str, str]) -> Answer:
        """One instant query's whole answer; raises as prometheus-api-client does."""
        ...

    def close(self) -> None: ...


class FormQueries(PrometheusConnect):
    """``PrometheusConnect`` that can send an instant query in a form-encoded body."""

    def __init__(self, *args: Any, form: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.form = form

    def query(self, promql: str, params: Mapping[str, str]) -> Answer:
        fields = {"query": promql, **params}
        url = f"{self.url}/api/v1/query"
        common: dict[str, Any] = {
            "headers": self.headers,
            "auth": self.auth,
            "verify": self._session.verify,
            "cert": self._session.cert,
            "timeout": self._timeout,
        }
        if self.form:
            response = self._session.post(url, data=fields, **common)
        else:
            response = self._session.get(url, params=fields, **common)
        if response.status_code != 200:
            raise PrometheusApiClientException(
                f"HTTP Status Code {response.status_code} ({response.content!r})"
            )
        return parse_answer(response.json())


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
    client = FormQueries(
        url=settings.base_url,
        headers=settings.request_headers or None,
        auth=settings.basic_auth,
        session=session,
        retry=retry,
        # requests takes float seconds; the library annotates int, narrower than it uses.
        timeout=settings.timeout_seconds,
        form=settings.method == "POST",
    )
    # Replace the adapter PrometheusConnect mounted: same retry, a pool as large as the
    # concurrency so worker threads reuse connections instead of opening new ones.
    pool = max(10, settings.max_concurrency)
    session.mount(
        settings.base_url,
        HTTPAdapter(max_retries=retry, pool_connections=1, pool_maxsize=pool),
    )
    return client, session
