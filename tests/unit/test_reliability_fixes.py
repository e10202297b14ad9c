"""Regression tests for what the reliability suite (tests/reliability) found: a clear message
instead of a traceback or a misleading one, each without any server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path

import pytest
import requests
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import MaxRetryError, ReadTimeoutError

from timeout_budget.clients.kube import KubeError, _translate
from timeout_budget.model.observation import Outcome
from timeout_budget.observe.latency import LatencyObserver
from timeout_budget.observe.promql.answers import Answer
from timeout_budget.observe.query_failures import QueryFailed
from timeout_budget.observe.settings import PrometheusSettings, SettingsError
from timeout_budget.settings import OperatorSettings
from timeout_budget.settings import SettingsError as OperatorSettingsError

pytestmark = pytest.mark.unit

URL = {"TBO_PROMETHEUS_URL": "http://prometheus:9090"}


def test_an_unreadable_bearer_token_file_is_a_settings_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-token"
    with pytest.raises(SettingsError) as exc:
        PrometheusSettings.from_env({**URL, "TBO_PROMETHEUS_BEARER_TOKEN_FILE": str(missing)})
    assert "TBO_PROMETHEUS_BEARER_TOKEN_FILE" in str(exc.value)
    assert str(missing) in str(exc.value)


@pytest.mark.parametrize(
    "name", ["TIMEOUT_SECONDS", "RETRIES", "MAX_CONCURRENCY", "MAX_QUERY_LENGTH"]
)
def test_a_malformed_prometheus_number_names_its_variable(name: str) -> None:
    with pytest.raises(SettingsError, match=f"TBO_PROMETHEUS_{name} must be a number, not 'x'"):
        PrometheusSettings.from_env({**URL, f"TBO_PROMETHEUS_{name}": "x"})


@pytest.mark.parametrize("name", ["TBO_PEERING_LIFETIME_SECONDS", "TBO_PEERING_SETTLE_SECONDS"])
def test_a_malformed_peering_number_names_its_variable(name: str) -> None:
    with pytest.raises(OperatorSettingsError, match=f"{name} must be a number, not 'soon'"):
        OperatorSettings.from_env({**URL, name: "soon"})


def test_a_refused_write_carries_the_api_servers_reason() -> None:
    exc = ApiException(status=422, reason="Unprocessable Entity")
    exc.body = json.dumps(
        {
            "kind": "Status",
            "message": 'Service "pool" is invalid: spec.selector: Invalid value: "long running!"',
        }
    )
    error = _translate(exc, "patch service ns/pool")
    assert isinstance(error, KubeError)
    assert str(error) == (
        "patch service ns/pool: 422 Unprocessable Entity: "
        'Service "pool" is invalid: spec.selector: Invalid value: "long running!"'
    )


def test_a_read_timeout_behind_retries_is_reported_as_a_timeout() -> None:
    # With read retries off, urllib3 raises MaxRetryError(ReadTimeoutError) and requests turns
    # that into a ConnectionError: Prometheus was reached, it was slow.
    timeout = ReadTimeoutError(None, "/api/v1/query", "Read timed out. (read timeout=2)")  # type: ignore[arg-type]
    raised = requests.ConnectionError(MaxRetryError(None, "/api/v1/query", timeout))  # type: ignore[arg-type]

    class Slow:
        def query(self, promql: str, params: Mapping[str, str]) -> Answer:
            raise raised

        def close(self) -> None:
            return None

    observer = LatencyObserver(PrometheusSettings(url="http://p:9090", timeout_seconds=2), Slow())
    with pytest.raises(QueryFailed) as failed:
        asyncio.run(observer._query("up", None))
    assert failed.value.observation.outcome is Outcome.UNAVAILABLE
    assert "did not answer within 2s" in failed.value.observation.message
    assert "cannot reach" not in failed.value.observation.message
