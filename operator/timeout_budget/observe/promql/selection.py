"""One route's selection: its validated histogram selector, or its ``query`` override (pure).

A ``metric``-based latency spec becomes a ``RouteSelector`` (equality pairs and extra
matchers, every value checked); its ``GroupKey`` says which routes can share one query. A
``query`` override gets its ``{{window}}`` / ``{{quantile}}`` placeholders substituted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from timeout_budget.model.spec import Latency
from timeout_budget.observe.promql.literals import (
    SelectorError,
    check_label_name,
    check_metric_name,
    check_window,
    format_quantile,
    promql_string,
)
from timeout_budget.observe.promql.re2 import check_re2

PLACEHOLDER_RE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
PLACEHOLDERS = ("window", "quantile")


@dataclass(frozen=True, order=True)
class LabelMatcher:
    label: str
    operator: str
    value: str

    def render(self) -> str:
        return f"{self.label}{self.operator}{promql_string(self.value)}"


@dataclass(frozen=True)
class RouteSelector:
    """One route's validated histogram selection."""

    metric: str
    quantile: float
    window: str
    equal: tuple[tuple[str, str], ...]
    """Sorted ``(label, value)`` equality pairs: the route's identity inside its group."""
    extra: tuple[LabelMatcher, ...]
    """Sorted ``!=``, ``=~``, ``!~`` matchers; routes share a query only if these are equal."""

    @property
    def group_key(self) -> GroupKey:
        return GroupKey(
            metric=self.metric,
            quantile=self.quantile,
            window=self.window,
            labels=tuple(label for label, _ in self.equal),
            extra=self.extra,
        )

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(value for _, value in self.equal)


def route_selector(latency: Latency) -> RouteSelector:
    """Validate a ``metric``-based latency spec into a selector; ``SelectorError`` if unsafe."""
    if latency.metric is None:
        raise SelectorError("latency.metric is required unless latency.query is set")
    check_metric_name(latency.metric)
    check_window(latency.window)
    format_quantile(latency.quantile)
    equal: dict[str, str] = {}
    for label, value in latency.selector.items():
        check_label_name(label, "latency.selector key")
        promql_string(value)
        equal[label] = value
    extra: set[LabelMatcher] = set()
    for m in latency.matchers:
        check_label_name(m.label, "latency.matchers label")
        promql_string(m.value)
        if m.operator == "=":
            if m.label in equal and equal[m.label] != m.value:
                raise SelectorError(
                    f"label {m.label!r} must equal both {equal[m.label]!r} and {m.value!r}: "
                    "the selector can never match"
                )
            equal[m.label] = m.value
            continue
        if m.operator in ("=~", "!~"):
            check_re2(m.value, f"latency.matchers regex for {m.label!r}")
        extra.add(LabelMatcher(m.label, m.operator, m.value))
    return RouteSelector(
        metric=latency.metric,
        quantile=float(latency.quantile),
        window=latency.window,
        equal=tuple(sorted(equal.items())),
        extra=tuple(sorted(extra)),
    )


@dataclass(frozen=True)
class GroupKey:
    metric: str
    quantile: float
    window: str
    labels: tuple[str, ...]
    extra: tuple[LabelMatcher, ...]


def render_override(query: str, quantile: float, window: str) -> str:
    """The ``query`` override with ``{{window}}`` and ``{{quantile}}`` substituted.

    Placeholders may carry inner spaces (``{{ window }}``); any other ``{{name}}`` is refused
    so a typo does not reach Prometheus as a confusing parse error.
    """
    check_window(window)
    q = format_quantile(quantile)
    if not query.strip():
        raise SelectorError("latency.query is empty")
    for m in PLACEHOLDER_RE.finditer(query):
        if m.group(1) not in PLACEHOLDERS:
            raise SelectorError(
                f"latency.query has an unknown placeholder {m.group(0)!r}; "
                "only {{window}} and {{quantile}} are substituted"
            )
    values = {"window": window, "quantile": q}
    return PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], query)
