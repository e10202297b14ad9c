"""Classifying a failed Prometheus query: the query's fault, or Prometheus' state.

A query that produced no result becomes ``QueryFailed`` carrying one observation for every
route it served: ``REJECTED`` when Prometheus refused the query itself (400 ``bad_data``,
422 ``execution`` not about its capacity), with Prometheus' own message; ``PARTIAL`` with no
value when a distributed backend refused because one of its stores did not answer and
partial answers are denied; ``UNAVAILABLE``
when Prometheus could not be reached, timed out, or answered another error status, with
the reason. No message ever contains the bearer token or a URL password.
"""

from __future__ import annotations

import ast
import json
import re

import requests
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.exceptions import ReadTimeoutError

from timeout_budget.model.observation import LatencyObservation
from timeout_budget.observe.settings import PrometheusSettings

MAX_MESSAGE_LENGTH = 600
# 422 "execution" errors that are about Prometheus' capacity, not about the query's text.
_CAPACITY_ERRORS = ("query timed out", "context deadline exceeded")
# Refusals for the backend's own limits on one query (Prometheus' --query.max-samples,
# Mimir's and Cortex's per-query limits, a proxy's body size): a smaller query fits.
_LIMIT_ERRORS = (
    "too many samples",
    "err-mimir-",
    "exceeded the maximum",
    "limit",
    "too large",
    "too long",
)
LIMIT_PREFIX = "the backend refused the query for its limits"
# Refusals because part of the backend did not answer while partial answers are denied
# (Thanos ``partial_response=false``: 422 "expanding series: proxy Series(): fetch series
# for {...}: rpc error: code = Unavailable ..." when the store cannot be reached, "receive
# series from Addr: ...: ..." when its stream broke; VictoriaMetrics
# ``deny_partial_response=1``: "cannot fetch query results from vmstorage nodes"). The query
# is fine; the answer would miss data, so these are ``PartialData`` with no value, never
# split or blamed on the query.
_WHOLE_ANSWER_ERRORS = (
    "fetch series for",
    "receive series from",
    "rpc error: code = unavailable",
    "vmstorage",
    "partial response",
)
# Refusals of the request's tenant (Thanos ``--query.enforce-tenancy``: 400 "tenant name not
# valid"; Mimir and Cortex: 401 "no org id"): the operator's settings, not the query.
_TENANT_ERRORS = ("tenant", "no org id", "orgid")
TENANT_HINT = "set TBO_PROMETHEUS_TENANT (and _TENANT_HEADER) to the backend's tenant"
WHOLE_ANSWER_PREFIX = "the backend has no whole answer (partial answers are denied)"
_CLIENT_ERROR_RE = re.compile(r"^HTTP Status Code (\d+) \((b(['\"]).*\3)\)$", re.DOTALL)
_OBJECT_REPR_RE = re.compile(r"<[^<>]* object at 0x[0-9a-f]+>:?\s*")


class QueryFailed(Exception):
    """A query did not produce a result; ``observation`` says how, for every route it served.
    ``too_big``: the backend refused it for its own limits, so a smaller query may pass."""

    def __init__(self, observation: LatencyObservation, too_big: bool = False) -> None:
        super().__init__(observation.message)
        self.observation = observation
        self.too_big = too_big

    @classmethod
    def of(cls, observation: LatencyObservation) -> QueryFailed:
        return cls(observation, too_big=observation.message.startswith(LIMIT_PREFIX))


def classify_failure(exc: BaseException, settings: PrometheusSettings) -> LatencyObservation:
    """Classify an exception from a query into REJECTED or UNAVAILABLE, with a message."""
    where = settings.display_url
    if isinstance(exc, PrometheusApiClientException):
        status, error_type, error = parse_client_error(str(exc))
        capacity = any(s in error.lower() for s in _CAPACITY_ERRORS)
        limited = status == 413 or (
            status in (400, 422) and any(s in error.lower() for s in _LIMIT_ERRORS)
        )
        if status in (422, 500, 503) and any(s in error.lower() for s in _WHOLE_ANSWER_ERRORS):
            return LatencyObservation.partial(
                None, scrub(f"{WHOLE_ANSWER_PREFIX}: HTTP {status}: {error}", settings)
            )
        if status in (400, 401, 403) and any(s in error.lower() for s in _TENANT_ERRORS):
            return LatencyObservation.unavailable(
                scrub(
                    f"Prometheus at {where} refused the tenant (HTTP {status}): {error}; "
                    f"{TENANT_HINT}",
                    settings,
                )
            )
        if limited:
            said = error or f"HTTP {status}"
            return LatencyObservation.rejected(
                scrub(f"{LIMIT_PREFIX} (HTTP {status}): {said}; the batch is split", settings)
            )
        if status in (400, 422) and error_type in ("bad_data", "execution") and not capacity:
            return LatencyObservation.rejected(
                scrub(f"Prometheus rejected the query ({error_type}): {error}", settings)
            )
        detail = f" ({error_type}): {error}" if error_type else f": {error}" if error else ""
        return LatencyObservation.unavailable(
            scrub(f"Prometheus at {where} answered HTTP {status}{detail}", settings)
        )
    if isinstance(exc, requests.Timeout) or _read_timed_out(exc):
        return LatencyObservation.unavailable(
            scrub(
                f"Prometheus at {where} did not answer within "
                f"{settings.timeout_seconds:g}s: {_reason(exc)}",
                settings,
            )
        )
    if isinstance(exc, requests.ConnectionError):
        return LatencyObservation.unavailable(
            scrub(f"cannot reach Prometheus at {where}: {_reason(exc)}", settings)
        )
    if isinstance(exc, requests.RequestException | KeyError | ValueError):
        return LatencyObservation.unavailable(
            scrub(
                f"unexpected answer from Prometheus at {where}: "
                f"{type(exc).__name__}: {_reason(exc)}",
                settings,
            )
        )
    # Anything else is a bug here, not Prometheus' state: let it surface.
    raise exc


def scrub(message: str, settings: PrometheusSettings) -> str:
    """``message`` without the settings' secrets, at most ``MAX_MESSAGE_LENGTH`` long."""
    for secret in settings.secrets:
        message = message.replace(secret, "***")
    if len(message) > MAX_MESSAGE_LENGTH:
        message = message[: MAX_MESSAGE_LENGTH - 3] + "..."
    return message


def parse_client_error(text: str) -> tuple[int | None, str, str]:
    """``(status, errorType, error)`` from ``PrometheusApiClientException``'s text.

    prometheus-api-client 0.7.2 raises ``"HTTP Status Code <n> (<repr of body bytes>)"``;
    Prometheus' body is ``{"status":"error","errorType":...,"error":...}``, a proxy's may be
    anything (its first line is kept).
    """
    match = _CLIENT_ERROR_RE.match(text)
    if not match:
        return None, "", text
    status = int(match.group(1))
    try:
        body = ast.literal_eval(match.group(2))
    except (ValueError, SyntaxError):
        return status, "", ""
    if not isinstance(body, bytes):
        return status, "", ""
    decoded = body.decode("utf-8", errors="replace")
    try:
        payload = json.loads(decoded)
    except ValueError:
        return status, "", decoded.strip().splitlines()[0] if decoded.strip() else ""
    if not isinstance(payload, dict):
        return status, "", decoded.strip()
    return status, str(payload.get("errorType", "")), str(payload.get("error", ""))


def _read_timed_out(exc: BaseException) -> bool:
    """With read retries off, urllib3 wraps a read timeout in ``MaxRetryError``, which
    requests raises as ``ConnectionError``: Prometheus was reached and was slow."""
    inner = exc.args[0] if isinstance(exc, requests.ConnectionError) and exc.args else None
    return isinstance(getattr(inner, "reason", None), ReadTimeoutError)


def _reason(exc: BaseException) -> str:
    """The innermost readable cause ("Connection refused", "Read timed out"), no URLs."""
    cause: object = exc
    for _ in range(5):
        args = getattr(cause, "args", ())
        inner = getattr(cause, "reason", None) or (args[0] if args else None)
        if inner is None or inner is cause or isinstance(inner, str):
            break
        cause = inner
    text = str(cause)
    text = _OBJECT_REPR_RE.sub("", text)
    # urllib3 puts the full request URL (the query) in pool errors: keep the reason only.
    text = re.sub(r"\w+\(host=[^)]*\): ", "", text)
    caused = re.search(r"Max retries exceeded with url: \S+ \(Caused by (.*)\)$", text, re.DOTALL)
    if caused:
        text = caused.group(1)
    return text or type(exc).__name__
