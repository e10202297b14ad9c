"""Prometheus' answers: instant vectors and scalars parsed into numbers (pure).

``ResultError`` says what could not be mapped back to routes: a malformed sample, a range
vector where an instant one was expected, or a ``query`` override returning many series.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from timeout_budget.observe.promql.literals import promql_string


class ResultError(ValueError):
    """Prometheus answered with something this module cannot map back to routes."""


def parse_sample_value(raw: object) -> float:
    """Prometheus sends sample values as strings ("1.5", "NaN", "+Inf")."""
    if not isinstance(raw, str):
        raise ResultError(f"sample value {raw!r} is not a string")
    try:
        return float(raw)
    except ValueError as exc:
        raise ResultError(f"sample value {raw!r} is not a number") from exc


@dataclass(frozen=True, slots=True)
class Answer:
    """A query's whole answer: ``data.result`` and what says it may be partial."""

    result: object
    warnings: tuple[str, ...] = ()
    """The backend's ``warnings`` (Thanos: a store did not answer; Prometheus 2.x/3.x may
    warn too)."""
    partial: bool = False
    """VictoriaMetrics' ``isPartial``: some storage nodes did not answer."""

    @property
    def incomplete(self) -> str | None:
        """Why the answer may miss data, or ``None`` when it is whole."""
        if self.partial:
            said = f": {'; '.join(self.warnings)}" if self.warnings else ""
            return f"the backend marked its answer partial (isPartial){said}"
        missing = [w for w in self.warnings if _about_missing_data(w)]
        if missing:
            return f"the backend answered with warnings: {'; '.join(missing)}"
        return None


_NOT_MISSING = ("PromQL info:",)
"""Prometheus 3's annotations about the query's form, not about missing data (they come
in ``infos`` now; older versions put some in ``warnings``)."""


def _about_missing_data(warning: str) -> bool:
    return not warning.startswith(_NOT_MISSING)


def parse_answer(body: object) -> Answer:
    """The JSON body of a successful ``/api/v1/query``."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        raise ResultError("the answer has no data (not a Prometheus API answer)")
    if body.get("status") not in (None, "success"):
        raise ResultError(f"the answer's status is {body.get('status')!r}")
    warnings = body.get("warnings")
    said = tuple(str(w) for w in warnings) if isinstance(warnings, list) else ()
    return Answer(body["data"].get("result"), said, body.get("isPartial") is True)


def parse_vector(result: object) -> list[tuple[dict[str, str], float]]:
    """``data.result`` of an instant vector: ``[{"metric": {...}, "value": [t, "v"]}, ...]``."""
    if not isinstance(result, list):
        raise ResultError(f"expected an instant vector, got {type(result).__name__}")
    out: list[tuple[dict[str, str], float]] = []
    for item in result:
        if not isinstance(item, dict) or "value" not in item:
            raise ResultError("expected an instant vector (a range vector came back?)")
        metric = item.get("metric") or {}
        value = item["value"]
        if not isinstance(metric, dict) or not isinstance(value, list) or len(value) != 2:
            raise ResultError(f"malformed sample {item!r:.200}")
        out.append(({str(k): str(v) for k, v in metric.items()}, parse_sample_value(value[1])))
    return out


def map_override(result: object) -> float | None:
    """The one number a ``query`` override returns: ``None`` if empty; many series refused."""
    if isinstance(result, list) and len(result) == 2 and isinstance(result[0], int | float):
        return parse_sample_value(result[1])  # a scalar result: [t, "v"]
    series = parse_vector(result)
    if not series:
        return None
    if len(series) > 1:
        shown = ", ".join(_format_labels(labels) for labels, _ in series[:3])
        raise ResultError(
            f"latency.query must return one series but returned {len(series)} ({shown}"
            f"{', ...' if len(series) > 3 else ''}); aggregate it, e.g. max(...)"
        )
    return series[0][1]


def max_finite_le(le_values: Iterable[str]) -> float | None:
    """The largest finite bucket bound among ``le`` label values, ``None`` if none."""
    top: float | None = None
    for raw in le_values:
        try:
            bound = float(raw)
        except ValueError:
            continue
        if math.isfinite(bound) and (top is None or bound > top):
            top = bound
    return top


def _format_labels(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{k}={promql_string(v)}" for k, v in sorted(labels.items())) + "}"
