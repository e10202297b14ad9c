"""Hostile label values: quotes, backslashes, newlines, PromQL and regex syntax, Unicode.
A query built from one of them must select exactly that value (unit: ``test_promql``;
against a real Prometheus: ``test_latency_prometheus``)."""

from __future__ import annotations

LABEL_VALUES: list[str] = [
    'quote"inside',
    "back\\slash",
    "trailing\\",
    "line1\nline2",
    "tab\tand\rcr",
    "}",
    "x} or vector(1)",
    " or ",
    '"} or vector(1) #',
    '\\"} or vector(1) #',
    ".*",
    "a|b",
    "(x)[ab]{2}+?^$",
    "Ünïcødé ☃ 日本語 🚀",
]
